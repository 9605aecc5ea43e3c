//! Per-target lock slices: a dependency bump outside a target's build leaves its key alone;
//! one inside (a build-dependency, a platform-specific dependency, a feature of an inherited
//! workspace dependency) changes it. History: the fixture's `lock-slices` branch.

use crate::support::*;

const ALL: &str = "tasker-server,tasker-worker,tasker-ctl,python";

#[test]
fn a_lock_bump_changes_the_keys_of_the_targets_that_build_it_only() {
    let world = World::new();
    let keys = |rev: &str| world.keys_of(rev, ALL);
    let binaries = ["tasker-server", "tasker-worker", "tasker-ctl"];
    let base = keys("slice-base");

    let outside = keys("slice-outside");
    for target in binaries {
        assert_eq!(
            outside[target], base[target],
            "{target}: tasker-py's dependency, a dev-dependency and an unused workspace dependency are not built"
        );
    }
    assert_ne!(outside["python"], base["python"], "python builds tasker-py's dependency");

    let build_dep = keys("slice-build-dep");
    for target in ["tasker-server", "tasker-worker", "tasker-ctl", "python"] {
        assert_ne!(build_dep[target], outside[target], "{target}: tasker-shared's build-dependency is built");
    }
    let target_dep = keys("slice-target-dep");
    for target in ["tasker-worker", "python"] {
        assert_ne!(target_dep[target], build_dep[target], "{target}: tasker-worker's cfg(unix) dependency");
    }
    let feature = keys("slice-feature");
    for target in ["tasker-server", "tasker-worker", "tasker-ctl", "python"] {
        assert_ne!(feature[target], target_dep[target], "{target}: a feature of an inherited dependency");
    }
}

/// One `key --range` run reuses its lock slices across commits (by blob ids): what it reports
/// each commit rebuilds must be what separate `key --sha` runs (fresh processes) say.
#[test]
fn a_range_run_rebuilds_what_separate_runs_key_differently() {
    let world = World::new();
    let revs = ["slice-base", "slice-outside", "slice-build-dep", "slice-target-dep", "slice-feature"];
    let keys: Vec<_> = revs.iter().map(|rev| world.keys_of(rev, ALL)).collect();
    let (repo, recipe) = (world.repo(), fixture_recipe());
    let output = world.tbuild(&[
        "key",
        "--repo",
        repo.to_str().unwrap(),
        "--recipe",
        recipe.to_str().unwrap(),
        "--targets",
        ALL,
        "--range",
        "slice-base..slice-feature",
        "--json",
    ]);
    assert_ok(&output);
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let commits = report["commits"].as_array().unwrap();
    assert_eq!(commits.len(), revs.len() - 1);
    for (i, commit) in commits.iter().enumerate() {
        let mut changed: Vec<&str> =
            commit["changed"].as_array().unwrap().iter().map(|c| c.as_str().unwrap()).collect();
        changed.sort();
        let expected: Vec<&str> =
            keys[i + 1].iter().filter(|(t, k)| keys[i].get(*t) != Some(k)).map(|(t, _)| t.as_str()).collect();
        assert!(!expected.is_empty(), "{}: every step of the branch changes some key", revs[i + 1]);
        assert_eq!(changed, expected, "{}", revs[i + 1]);
    }
}
