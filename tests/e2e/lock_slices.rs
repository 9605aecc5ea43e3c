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
