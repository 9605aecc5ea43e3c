//! The Ruby, Python and TypeScript targets next to the binaries: real, loadable artifacts.

use std::process::Command;

use crate::support::*;

const ALL: &str = "tasker-server,tasker-worker,tasker-ctl,ruby,python,typescript";

/// Loads each language artifact the way its users would and returns what it reports.
fn load_all(out: &std::path::Path) -> (String, String, String) {
    let ruby = Command::new("ruby")
        .arg("-e")
        .arg("$LOAD_PATH.unshift(ARGV[0]); require 'tasker_core'; puts TaskerCore.marker")
        .arg(out.join("tasker-core-ruby/lib"))
        .output()
        .unwrap();
    assert!(ruby.status.success(), "ruby: {}", String::from_utf8_lossy(&ruby.stderr));

    let venv = out.parent().unwrap().join(format!("venv-{}", out.file_name().unwrap().to_string_lossy()));
    assert!(Command::new("python3").arg("-m").arg("venv").arg(&venv).status().unwrap().success());
    let wheels: Vec<_> =
        std::fs::read_dir(out.join("tasker-core-python/wheels")).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(wheels.len(), 1, "{wheels:?}");
    let pip =
        Command::new(venv.join("bin/pip")).args(["install", "-q", "--no-index"]).arg(&wheels[0]).output().unwrap();
    assert!(pip.status.success(), "pip: {}", String::from_utf8_lossy(&pip.stderr));
    let python = Command::new(venv.join("bin/python"))
        .args(["-c", "import tasker_py; print(tasker_py.marker())"])
        .output()
        .unwrap();
    assert!(python.status.success(), "python: {}", String::from_utf8_lossy(&python.stderr));

    let bun = Command::new("bun").arg(out.join("tasker-core-typescript/dist/index.js")).output().unwrap();
    assert!(bun.status.success(), "bun: {}", String::from_utf8_lossy(&bun.stderr));
    let text = |o: &std::process::Output| String::from_utf8_lossy(&o.stdout).trim().to_string();
    (text(&ruby), text(&python), text(&bun))
}

#[test]
fn four_kinds_build_loadable_artifacts_then_restore_byte_identical() {
    let world = World::new();
    let first = world.core_targets("main", "out", ALL);
    assert!(statuses(&first).values().all(|s| s == "built"), "{first}");
    let out = world.out("out");
    for dir in ["tasker-core-binaries", "tasker-core-ruby", "tasker-core-python", "tasker-core-typescript"] {
        assert!(out.join(dir).is_dir(), "{dir}");
    }
    assert!(out.join("tasker-core-ruby/lib/tasker_core/tasker_rb.so").is_file());
    assert!(out.join("tasker-core-typescript/package.json").is_file());
    assert_eq!(load_all(&out), ("rb-1 shared-2".into(), "py-2 shared-2".into(), "ts-1 shared-2".into()));
    let before = snapshot(&out);

    let second = world.core_targets("main", "out2", ALL);
    assert!(statuses(&second).values().all(|s| s == "hit"), "{second}");
    assert_eq!(snapshot(&world.out("out2")), before);
    assert_eq!(load_all(&world.out("out2")), ("rb-1 shared-2".into(), "py-2 shared-2".into(), "ts-1 shared-2".into()));
}

#[test]
fn only_the_targets_whose_inputs_changed_rebuild() {
    let world = World::new();
    let built = |manifest: &serde_json::Value| -> Vec<String> {
        statuses(manifest).into_iter().filter(|(_, s)| s == "built").map(|(t, _)| t).collect()
    };
    world.core_targets("lock-change", "out", ALL);
    let shared = world.core_targets("shared-change", "out", ALL);
    assert_eq!(built(&shared).len(), 6, "the shared crate is in every closure: {shared}");
    let secure = world.core_targets("secure-only", "out", ALL);
    assert!(built(&secure).is_empty(), "a dev-dependency feeds nothing: {secure}");
    let python = world.core_targets("python-only", "out", ALL);
    assert_eq!(built(&python), ["python"], "{python}");
    let (_, py, _) = load_all(&world.out("out"));
    assert_eq!(py, "py-2 shared-2");
}

#[test]
fn a_failing_target_keeps_the_others_artifacts() {
    let world = World::new();
    std::fs::write(world.repo().join("crates/tasker-py/src/lib.rs"), "this does not compile\n").unwrap();
    let sha = world.commit_all("break the python extension");
    let output = world.run_core(&sha, "out", ALL);
    assert_eq!(output.status.code(), Some(6), "{}", stderr(&output));
    let err = stderr(&output);
    assert!(err.contains("target python failed") && err.contains("maturin build"), "{err}");
    let manifest: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let s = statuses(&manifest);
    assert_eq!(s["python"], "failed");
    for target in ["ruby", "typescript", "tasker-server", "tasker-worker", "tasker-ctl"] {
        assert_eq!(s[target], "built", "{target}");
    }
    let stored: Vec<String> =
        records(&world.cache()).iter().map(|r| r["target"].as_str().unwrap().to_string()).collect();
    assert_eq!(stored.len(), 5, "{stored:?}");
    assert!(!stored.contains(&"python".to_string()));
    // The next run restores the five and fails the same way, building only python.
    let again = world.run_core(&sha, "out", ALL);
    let manifest: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
    let hits = statuses(&manifest).values().filter(|s| *s == "hit").count();
    assert_eq!(hits, 5);
}

#[test]
fn registry_placeholders_in_env_point_at_a_crate_source() {
    let world = World::new();
    // itoa 1.0.15 is what the fixture's lock pins at main.
    world.core("main", "warm");
    let recipe = world.dir.path().join("registry.toml");
    std::fs::write(
        &recipe,
        r#"
        [[target]]
        name = "license"
        kind = "command"
        artifact_dir = "registry"
        tools = ["cp"]
        commands = ["cp \"$ITOA_DIR/Cargo.toml\" itoa-manifest.toml"]
        env = { ITOA_DIR = "{registry:itoa@1.0.15}" }
        [[target.output]]
        path = "itoa-manifest.toml"
        "#,
    )
    .unwrap();
    let out = world.out("reg");
    assert_ok(&world.core_with("main", "reg", &["--recipe", recipe.to_str().unwrap()]));
    let manifest = std::fs::read_to_string(out.join("registry/itoa-manifest.toml")).unwrap();
    assert!(manifest.contains("name = \"itoa\"") && manifest.contains("version = \"1.0.15\""), "{manifest}");
}

#[test]
fn offline_builds_keep_cargo_offline() {
    let world = World::new();
    let sha = world.git(&["rev-parse", "main"]).trim().to_string();
    world.keys(&sha); // mirrors the commit
    let recipe = world.dir.path().join("probe.toml");
    std::fs::write(
        &recipe,
        r#"
        [[target]]
        name = "probe"
        kind = "command"
        artifact_dir = "probe"
        commands = ["echo \"CARGO_NET_OFFLINE=${CARGO_NET_OFFLINE:-unset}\" > env.txt"]
        [[target.output]]
        path = "env.txt"
        "#,
    )
    .unwrap();
    let out = world.out("probe");
    assert_ok(&world.core_with(&sha, "probe", &["--recipe", recipe.to_str().unwrap(), "--offline"]));
    assert_eq!(std::fs::read_to_string(out.join("probe/env.txt")).unwrap().trim(), "CARGO_NET_OFFLINE=true");
}
