//! `tbuild key --range A..B --stats` over the fixture's history: which targets each commit
//! rebuilds, and the totals.

use serde_json::Value;

use crate::support::*;

/// The fixture's main line after `base`, with what each commit must rebuild.
const EXPECTED: &[(&str, &[&str])] = &[
    ("docs-only", &[]),
    ("ctl-only", &["tasker-ctl"]),
    ("lock-change", &["python", "ruby", "tasker-ctl", "tasker-server", "tasker-worker", "typescript"]),
    ("shared-change", &["python", "ruby", "tasker-ctl", "tasker-server", "tasker-worker", "typescript"]),
    ("secure-only", &[]),
    ("python-only", &["python"]),
    ("proto-change", &["python", "ruby", "tasker-ctl", "tasker-server", "tasker-worker", "typescript"]),
];

fn range(world: &World, extra: &[&str]) -> std::process::Output {
    let (repo, recipe) = (world.repo(), fixture_recipe());
    let mut args = vec!["key", "--repo", repo.to_str().unwrap(), "--recipe", recipe.to_str().unwrap()];
    args.extend_from_slice(extra);
    world.tbuild(&args)
}

#[test]
fn range_stats_report_each_commits_rebuilds_and_the_totals() {
    let world = World::new();
    let output = range(&world, &["--range", "base..main", "--stats", "--json"]);
    assert_ok(&output);
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    let commits = report["commits"].as_array().unwrap();
    assert_eq!(commits.len(), EXPECTED.len(), "first-parent walk of base..main: {report}");
    for (commit, (tag, changed)) in commits.iter().zip(EXPECTED) {
        assert_eq!(
            commit["sha"].as_str().unwrap(),
            world.git(&["rev-parse", &format!("{tag}^{{commit}}")]).trim(),
            "{tag}"
        );
        assert_eq!(commit["parent"].as_str().unwrap(), world.git(&["rev-parse", &format!("{tag}^")]).trim(), "{tag}");
        let got: Vec<&str> = commit["changed"].as_array().unwrap().iter().map(|c| c.as_str().unwrap()).collect();
        assert_eq!(got, *changed, "{tag}");
        assert_eq!(commit["targets"], 6, "{tag}");
    }

    let stats = &report["stats"];
    assert_eq!(stats["commits"], 7);
    assert_eq!(stats["no_rebuild"], 2, "docs-only and secure-only");
    let mean = stats["mean_rebuilt_share"].as_f64().unwrap();
    let expected_mean = (1.0 + 6.0 * 3.0 + 1.0) / 6.0 / 7.0;
    assert!((mean - expected_mean).abs() < 1e-9, "mean share {mean}, expected {expected_mean}");
    assert_eq!(stats["per_target"]["tasker-ctl"]["rebuilt"], 4);
    assert_eq!(stats["per_target"]["python"]["rebuilt"], 4);
    assert_eq!(stats["per_target"]["tasker-server"]["rebuilt"], 3);
    assert_eq!(stats["per_target"]["tasker-server"]["commits"], 7);

    // --targets narrows the comparison; the plain output names the same commits.
    let output = range(&world, &["--range", "ctl-only..secure-only", "--targets", BINARIES, "--stats"]);
    assert_ok(&output);
    let text = String::from_utf8(output.stdout).unwrap();
    let lines: Vec<&str> = text.lines().take(3).collect();
    assert!(lines[0].contains("3/3 rebuilt") && lines[0].contains("deps: update itoa"), "{text}");
    assert!(lines[1].contains("3/3 rebuilt") && lines[1].contains("shared: bump marker"), "{text}");
    assert!(lines[2].contains("0/3 rebuilt  no rebuild") && lines[2].contains("secure: bump marker"), "{text}");
    assert!(text.contains("3 commits: 1 (33%) need no rebuild"), "{text}");
}

#[test]
fn a_malformed_or_empty_range_is_a_usage_error() {
    let world = World::new();
    for bad in ["main", "base...main", "..main"] {
        let output = range(&world, &["--range", bad]);
        assert_eq!(output.status.code(), Some(2), "{bad}: {}", stderr(&output));
        assert!(stderr(&output).contains("is not A..B"), "{bad}: {}", stderr(&output));
    }
    let output = range(&world, &["--range", "main..base"]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(stderr(&output).contains("no commits"), "{}", stderr(&output));
    let output = range(&world, &["--range", "base..no-such-tag"]);
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
}

/// The memo files `key --range` wrote (`v1/memo/range-keys/<d0d1>/<name>.json`).
fn range_memo_entries(world: &World) -> Vec<std::path::PathBuf> {
    let dir = world.cache().join("v1/memo/range-keys");
    let Ok(shards) = std::fs::read_dir(&dir) else { return Vec::new() };
    shards.flatten().flat_map(|s| std::fs::read_dir(s.path()).unwrap().flatten().map(|e| e.path())).collect()
}

/// The range memo (a commit's tree -> its keys) changes nothing a range reports: cold, warm,
/// with every entry damaged and with the memo gone, the output is the same, and the commits
/// it says rebuild something are those whose `key --sha` keys differ from their parent's.
#[test]
fn range_output_is_the_same_with_the_memo_cold_warm_damaged_and_absent() {
    let world = World::new();
    let args = ["--range", "base..main", "--stats", "--json"];
    let cold = range(&world, &args);
    assert_ok(&cold);
    let entries = range_memo_entries(&world);
    assert!(entries.len() >= EXPECTED.len(), "one entry per distinct tree: {entries:?}");

    let warm = range(&world, &args);
    assert_ok(&warm);
    assert_eq!(String::from_utf8_lossy(&warm.stdout), String::from_utf8_lossy(&cold.stdout), "warm");

    for entry in &entries {
        let text = std::fs::read_to_string(entry).unwrap();
        std::fs::write(entry, text.replacen("\"keys\"", "\"keyz\"", 1)).unwrap();
    }
    let damaged = range(&world, &args);
    assert_ok(&damaged);
    assert_eq!(String::from_utf8_lossy(&damaged.stdout), String::from_utf8_lossy(&cold.stdout), "damaged");

    std::fs::remove_dir_all(world.cache().join("v1/memo/range-keys")).unwrap();
    let absent = range(&world, &args);
    assert_ok(&absent);
    assert_eq!(String::from_utf8_lossy(&absent.stdout), String::from_utf8_lossy(&cold.stdout), "absent");

    // Against separate `key --sha` runs (the binaries: their toolchain is on every test machine).
    let probed = BINARIES;
    let report: Value = serde_json::from_slice(&warm.stdout).unwrap();
    let tags: Vec<&str> = std::iter::once("base").chain(EXPECTED.iter().map(|(tag, _)| *tag)).collect();
    let keys: Vec<_> = tags.iter().map(|tag| world.keys_of(tag, probed)).collect();
    for (i, commit) in report["commits"].as_array().unwrap().iter().enumerate() {
        let changed: Vec<&str> = commit["changed"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap())
            .filter(|t| probed.split(',').any(|p| p == *t))
            .collect();
        let expected: Vec<&str> =
            keys[i + 1].iter().filter(|(t, k)| keys[i].get(*t) != Some(k)).map(|(t, _)| t.as_str()).collect();
        assert_eq!(changed, expected, "{}", tags[i + 1]);
    }
}
