//! `tbuild explain`: why a target misses, against the closest stored entry.

use std::path::Path;

use serde_json::Value;

use crate::support::*;

fn explain(world: &World, target: &str, tree: &[&str], recipe: &Path, env: &[(&str, &str)]) -> (Value, String) {
    let repo = world.repo();
    let mut args = vec!["explain", target, "--recipe", recipe.to_str().unwrap()];
    args.extend_from_slice(tree);
    if tree[0] == "--sha" {
        args.extend(["--repo", repo.to_str().unwrap()]);
    }
    let human = world.tbuild_env(&args, env);
    assert_ok(&human);
    args.push("--json");
    let output = world.tbuild_env(&args, env);
    assert_ok(&output);
    (serde_json::from_slice(&output.stdout).unwrap(), String::from_utf8(human.stdout).unwrap())
}

fn strings(value: &Value) -> Vec<String> {
    value.as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect()
}

#[test]
fn a_one_file_change_is_named_and_nothing_else() {
    let world = World::new();
    let recipe = fixture_recipe();
    world.core_targets("base", "out", "tasker-ctl");
    // ctl-only is two commits after base and changes one file of tasker-ctl.
    let (e, human) = explain(&world, "tasker-ctl", &["--sha", "ctl-only"], &recipe, &[]);
    assert_eq!(e["stored"], false);
    assert_eq!(e["closest"]["provenance"], world.git(&["rev-parse", "base"]).trim());
    assert_eq!(e["closest"]["chosen_by"], serde_json::json!({"by": "ancestry", "commits_back": 2}));
    let d = &e["differences"];
    assert_eq!(strings(&d["inputs"]["changed"]), ["crates/tasker-ctl/src/main.rs"]);
    assert!(strings(&d["inputs"]["added"]).is_empty() && strings(&d["inputs"]["removed"]).is_empty());
    assert!(strings(&d["toolchain"]["now"]).is_empty() && strings(&d["env"]["now"]).is_empty());
    assert_eq!(d["recipe"], serde_json::json!([]));
    assert!(human.contains("changed  crates/tasker-ctl/src/main.rs") && human.contains("toolchain: same"), "{human}");

    // The stored commit itself: a hit, nothing to explain.
    let (e, _) = explain(&world, "tasker-ctl", &["--sha", "base"], &recipe, &[]);
    assert_eq!(e["stored"], true);

    // A checkout with an untracked file in the crate: added, found through the checkout's
    // HEAD (base) in its history.
    let co = world.dir.path().join("checkout");
    git_in(world.dir.path(), &["clone", "-q", world.repo().to_str().unwrap(), co.to_str().unwrap()]);
    git_in(&co, &["checkout", "-q", "base"]);
    std::fs::write(co.join("crates/tasker-ctl/src/extra.rs"), "pub fn extra() {}\n").unwrap();
    let (e, _) = explain(&world, "tasker-ctl", &["--path", co.to_str().unwrap()], &recipe, &[]);
    assert_eq!(e["closest"]["chosen_by"]["by"], "ancestry");
    assert_eq!(strings(&e["differences"]["inputs"]["added"]), ["crates/tasker-ctl/src/extra.rs"]);
    assert!(strings(&e["differences"]["inputs"]["changed"]).is_empty());
}

#[test]
fn a_toolchain_upgrade_is_named() {
    let world = World::new();
    // A tool whose version output the test controls.
    let bin = world.dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let tool = bin.join("fake-tool");
    let install = |version: &str| {
        std::fs::write(&tool, format!("#!/bin/sh\necho \"fake-tool {version}\"\n")).unwrap();
        std::fs::set_permissions(&tool, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    };
    install("1.0");
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let env = [("PATH", path.as_str())];

    let recipe = world.dir.path().join("tool.toml");
    std::fs::write(
        &recipe,
        r#"
        [[target]]
        name = "generated"
        kind = "command"
        artifact_dir = "generated"
        inputs = ["proto/**"]
        tools = ["fake-tool"]
        commands = ["fake-tool > generated.txt"]
        [[target.output]]
        path = "generated.txt"
        "#,
    )
    .unwrap();
    let mut args = world.core_args_with("main", "out", &["--recipe", recipe.to_str().unwrap()]);
    args.push("--json".into());
    assert_ok(&world.tbuild_env(&args.iter().map(String::as_str).collect::<Vec<_>>(), &env));

    // Upgraded in place: same path, new executable.
    install("2.0");
    let (e, human) = explain(&world, "generated", &["--sha", "main"], &recipe, &env);
    assert_eq!(e["stored"], false);
    assert_eq!(e["closest"]["chosen_by"], serde_json::json!({"by": "ancestry", "commits_back": 0}));
    let d = &e["differences"];
    assert_eq!(strings(&d["toolchain"]["stored"]), ["fake-tool: fake-tool 1.0"]);
    assert_eq!(strings(&d["toolchain"]["now"]), ["fake-tool: fake-tool 2.0"]);
    for list in ["added", "removed", "changed"] {
        assert!(strings(&d["inputs"][list]).is_empty(), "no input {list}");
    }
    assert!(human.contains("toolchain: changed") && human.contains("+ fake-tool: fake-tool 2.0"), "{human}");
}
