//! The CI restore step: `tbuild restore`, its GitHub Actions outputs and step summary,
//! `key --format github`, and log groups around builds under Actions.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Output;

use serde_json::Value;

use crate::support::*;

/// `$GITHUB_OUTPUT` and `$GITHUB_STEP_SUMMARY` files of one step, fresh for each call.
struct Step {
    output: PathBuf,
    summary: PathBuf,
}

impl Step {
    fn new(world: &World, name: &str) -> Step {
        let dir = world.out(&format!("gh-{name}"));
        std::fs::create_dir_all(&dir).unwrap();
        Step { output: dir.join("output"), summary: dir.join("summary") }
    }

    fn env(&self) -> Vec<(&'static str, &str)> {
        vec![("GITHUB_OUTPUT", self.output.to_str().unwrap()), ("GITHUB_STEP_SUMMARY", self.summary.to_str().unwrap())]
    }

    /// The outputs, parsed as the runner does (`name=value` and `name<<DELIMITER`).
    fn outputs(&self) -> BTreeMap<String, String> {
        parse_outputs(&std::fs::read_to_string(&self.output).unwrap())
    }

    fn summary(&self) -> String {
        std::fs::read_to_string(&self.summary).unwrap()
    }
}

fn parse_outputs(text: &str) -> BTreeMap<String, String> {
    let mut outputs = BTreeMap::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if let Some((name, delimiter)) = line.split_once("<<") {
            let value: Vec<&str> = lines.by_ref().take_while(|l| *l != delimiter).collect();
            outputs.insert(name.to_string(), value.join("\n"));
        } else {
            let (name, value) = line.split_once('=').unwrap_or_else(|| panic!("not an output line: {line:?}"));
            outputs.insert(name.to_string(), value.to_string());
        }
    }
    outputs
}

/// `tbuild restore` of the fixture's binaries at REV into OUT, with `extra` arguments.
fn restore(world: &World, rev: &str, out: &str, extra: &[&str], env: &[(&str, &str)]) -> Output {
    let (repo, out_dir, recipe) = (world.repo(), world.out(out), fixture_recipe());
    let mut args = vec![
        "restore",
        "--repo",
        repo.to_str().unwrap(),
        "--sha",
        rev,
        "--out",
        out_dir.to_str().unwrap(),
        "--recipe",
        recipe.to_str().unwrap(),
        "--targets",
        BINARIES,
    ];
    args.extend_from_slice(extra);
    world.tbuild_env(&args, env)
}

fn manifest(world: &World, out: &str) -> Value {
    serde_json::from_slice(&std::fs::read(world.out(out).join("manifest.json")).unwrap()).unwrap()
}

fn staging_dirs(world: &World) -> Vec<String> {
    std::fs::read_dir(world.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.contains("tbuild-staging"))
        .collect()
}

#[test]
fn restore_on_a_miss_builds_nothing_and_says_so() {
    let world = World::new();
    let step = Step::new(&world, "strict");
    let output = restore(&world, "base", "out", &["--fail-on-cache-miss"], &step.env());
    assert_eq!(output.status.code(), Some(9), "{}", stderr(&output));
    let err = stderr(&output);
    assert!(err.contains("3 of 3 targets not in the cache") && err.contains("--out was left as it was"), "{err}");
    assert!(!world.out("out").exists(), "a strict miss publishes nothing");
    assert_eq!(staging_dirs(&world), Vec::<String>::new(), "nothing half-written next to --out");
    let outputs = step.outputs();
    assert_eq!(outputs["cache-hit"], "false");
    assert_eq!(outputs["missed"], "tasker-ctl,tasker-server,tasker-worker");
    assert_eq!(outputs["tasker-ctl-hit"], "false");
    assert_eq!(outputs["sha"], world.git(&["rev-parse", "base"]).trim());
    assert!(step.summary().contains("0 of 3 targets restored"), "{}", step.summary());
    assert_eq!(step.summary().matches("❌ miss").count(), 3);

    // Nothing was built, checked out or stored.
    assert!(records(&world.cache()).is_empty());
    let logs = std::fs::read_dir(world.cache().join("v1/logs")).unwrap().count();
    assert_eq!(logs, 0, "no build ran (no build log)");
    for repo in std::fs::read_dir(world.cache().join("repos")).unwrap() {
        assert!(!repo.unwrap().path().join("work").exists(), "restore never checks out");
    }

    // Without the flag a miss is not an error: the manifest says what is missing.
    let lenient = Step::new(&world, "lenient");
    let output = restore(&world, "base", "out", &[], &lenient.env());
    assert_ok(&output);
    assert_eq!(lenient.outputs()["cache-hit"], "false");
    let published = manifest(&world, "out");
    assert_eq!(statuses(&published).values().collect::<Vec<_>>(), ["miss"; 3]);
    assert_eq!(published["targets"]["tasker-ctl"]["source"], "none");
    assert!(snapshot(&world.out("out")).is_empty(), "only the manifest");
}

#[test]
fn restore_after_core_gives_the_same_bytes_and_reports_the_hit() {
    let world = World::new();
    // Build under (simulated) GitHub Actions: each build's log is folded in a group.
    let core_step = Step::new(&world, "core");
    let mut env = core_step.env();
    env.push(("GITHUB_ACTIONS", "true"));
    let args = world.core_args("base", "built", BINARIES);
    let output = world.tbuild_env(&args.iter().map(String::as_str).collect::<Vec<_>>(), &env);
    assert_ok(&output);
    let built: Value = serde_json::from_slice(&output.stdout).expect("group lines stay off stdout");
    let err = stderr(&output);
    for target in ["tasker-ctl", "tasker-server", "tasker-worker"] {
        let start = err.find(&format!("::group::{target} build log\n")).unwrap_or_else(|| panic!("no group: {err}"));
        let group = &err[start..start + err[start..].find("::endgroup::").expect("group closed")];
        assert!(group.contains("$ cargo build"), "the log is inside the group: {group}");
    }
    assert_eq!(core_step.outputs()["cache-hit"], "false", "core built, so no cache hit");
    assert!(core_step.summary().contains("🔨 built"));

    let step = Step::new(&world, "restore");
    let output = restore(&world, "base", "restored", &["--fail-on-cache-miss"], &step.env());
    assert_ok(&output);
    assert!(!stderr(&output).contains("::group::"), "no groups outside Actions, and nothing built");
    assert_eq!(snapshot(&world.out("restored")), snapshot(&world.out("built")), "the very bytes core published");
    let restored = manifest(&world, "restored");
    assert_eq!(statuses(&restored).values().collect::<Vec<_>>(), ["hit"; 3]);

    let outputs = step.outputs();
    let sha = world.git(&["rev-parse", "base"]).trim().to_string();
    assert_eq!(outputs["cache-hit"], "true");
    assert_eq!(outputs["sha"], sha);
    assert_eq!(outputs["missed"], "");
    let summary = step.summary();
    assert!(summary.starts_with(&format!("### tbuild restore `{}`\n", &sha[..12])), "{summary}");
    assert!(summary.contains("3 of 3 targets restored from the cache."));
    assert!(summary.contains("| target | key | hit/miss | source | size | time |\n|---|---|---|---|---|---|\n"));
    for target in ["tasker-ctl", "tasker-server", "tasker-worker"] {
        let key = built["targets"][target]["key"].as_str().unwrap();
        assert_eq!(outputs[&format!("{target}-hit")], "true");
        assert_eq!(outputs[&format!("{target}-key")], key);
        let row = format!("| {target} | `{}` | ✅ hit | local | ", &key[..12]);
        let line = summary.lines().find(|l| l.starts_with(&row)).unwrap_or_else(|| panic!("no {row}: {summary}"));
        assert!(line.ends_with(" ms |") || line.ends_with(" s |"), "size and time: {line}");
        assert!(line.contains("iB |") || line.contains(" B |"), "size: {line}");
    }

    // ctl-only changes tasker-ctl's inputs: a partial hit publishes the other two.
    let partial = Step::new(&world, "partial");
    assert_ok(&restore(&world, "ctl-only", "partial", &[], &partial.env()));
    let outputs = partial.outputs();
    assert_eq!(
        (outputs["cache-hit"].as_str(), outputs["tasker-ctl-hit"].as_str(), outputs["tasker-server-hit"].as_str()),
        ("false", "false", "true")
    );
    assert_eq!(outputs["missed"], "tasker-ctl");
    assert_eq!(
        snapshot(&world.out("partial")).keys().collect::<Vec<_>>(),
        ["tasker-core-binaries/tasker-server", "tasker-core-binaries/tasker-worker"]
    );
    assert_eq!(manifest(&world, "partial")["targets"]["tasker-ctl"]["status"], "miss");

    // A strict restore that misses leaves an earlier output exactly as it was.
    let before = (snapshot(&world.out("restored")), std::fs::read(world.out("restored/manifest.json")).unwrap());
    let output = restore(&world, "ctl-only", "restored", &["--fail-on-cache-miss"], &[]);
    assert_eq!(output.status.code(), Some(9), "{}", stderr(&output));
    let after = (snapshot(&world.out("restored")), std::fs::read(world.out("restored/manifest.json")).unwrap());
    assert!(before == after, "--out untouched by a strict miss");
    assert_eq!(staging_dirs(&world), Vec::<String>::new());
}

#[test]
fn key_format_github_writes_the_keys_as_outputs() {
    let world = World::new();
    let keys = world.keys("base");
    let recipe = fixture_recipe();
    let repo = world.repo();
    let key = |rev: &str, extra: &[&str], env: &[(&str, &str)]| {
        let mut args =
            vec!["key", "--repo", repo.to_str().unwrap(), "--sha", rev, "--recipe", recipe.to_str().unwrap()];
        args.extend(["--targets", BINARIES]);
        args.extend_from_slice(extra);
        world.tbuild_env(&args, env)
    };

    let step = Step::new(&world, "key");
    let output = key("base", &["--format", "github"], &step.env());
    assert_ok(&output);
    assert!(output.stdout.is_empty(), "with $GITHUB_OUTPUT set the keys go there");
    let outputs = step.outputs();
    for (target, k) in &keys {
        assert_eq!(&outputs[&format!("{target}-key")], k);
    }
    let set_key = &outputs["key"];
    assert!(set_key.len() == 64 && set_key.bytes().all(|b| b.is_ascii_hexdigit()), "{set_key}");
    assert_eq!(outputs.len(), keys.len() + 1);

    // Unset: the same lines on stdout.
    let output = key("base", &["--format", "github"], &[]);
    assert_ok(&output);
    assert_eq!(parse_outputs(&String::from_utf8(output.stdout).unwrap()), outputs);

    // The set's key follows any target's key.
    let changed = parse_outputs(&String::from_utf8(key("ctl-only", &["--format", "github"], &[]).stdout).unwrap());
    assert_ne!(changed["key"], outputs["key"]);
    assert_eq!(changed["tasker-server-key"], outputs["tasker-server-key"]);

    // --json stays the short form of --format json, and the two cannot be mixed.
    let json = key("base", &["--json"], &[]);
    assert_eq!(key("base", &["--format", "json"], &[]).stdout, json.stdout);
    assert_eq!(parse_keys(&json.stdout), keys);
    assert_eq!(key("base", &["--json", "--format", "text"], &[]).status.code(), Some(2));
}
