//! Bad input: each a clear message, a documented exit code, and no cache entry written.

use crate::support::*;

/// `tbuild core` of the fixture's binaries with its recipe, or with the one in `extra`.
fn core(world: &World, rev: &str, extra: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let (out, repo) = (world.out("out"), world.repo());
    let mut args = vec!["core", "--repo", repo.to_str().unwrap(), "--sha", rev, "--out", out.to_str().unwrap()];
    let recipe = fixture_recipe();
    if !extra.contains(&"--recipe") {
        args.extend(["--recipe", recipe.to_str().unwrap()]);
    }
    if !extra.contains(&"--targets") {
        args.extend(["--targets", BINARIES]);
    }
    args.extend_from_slice(extra);
    world.tbuild_env(&args, env)
}

fn assert_fails(output: &std::process::Output, code: i32, needles: &[&str]) {
    let err = stderr(output);
    assert_eq!(output.status.code(), Some(code), "{err}");
    for needle in needles {
        assert!(err.contains(needle), "expected {needle:?} in:\n{err}");
    }
}

#[test]
fn unknown_sha_is_a_source_error() {
    let world = World::new();
    let output = core(&world, "0123456789abcdef0123456789abcdef01234567", &[], &[]);
    assert_fails(&output, 3, &["0123456789abcdef0123456789abcdef01234567", "is not in", "check the SHA"]);
    assert!(records(&world.cache()).is_empty());
    let output = core(&world, "no-such-branch", &[], &[]);
    assert_fails(&output, 3, &["no-such-branch"]);
}

#[test]
fn ambiguous_short_sha_is_a_source_error() {
    let world = World::new();
    // Enough reachable objects that two share a 4-hex-digit prefix.
    std::fs::create_dir_all(world.repo().join("bulk")).unwrap();
    for i in 0..1200 {
        std::fs::write(world.repo().join(format!("bulk/{i}.txt")), format!("{i}\n")).unwrap();
    }
    world.commit_all("bulk");
    let objects = world.git(&["rev-list", "--objects", "--all"]);
    let mut seen = std::collections::HashMap::new();
    let prefix = objects
        .lines()
        .map(|l| l[..4].to_string())
        .find(|p| seen.insert(p.clone(), ()).is_some())
        .expect("1200+ objects share some 4-digit prefix");
    let output = core(&world, &prefix, &[], &[]);
    assert_fails(&output, 3, &[&prefix, "ambiguous", "more hex digits"]);
}

#[test]
fn offline_without_the_commit_mirrored_is_a_source_error() {
    let world = World::new();
    // A URL is never fetched offline (a local path is: reading it needs no network, see
    // first_hour.rs).
    let url = format!("file://{}", world.repo().display());
    let output = world.key_from(&url, "main", &["--offline"]);
    assert_fails(&output, 3, &["--offline"]);
    // Once mirrored, offline works for a SHA, with the network (here: the repo path) gone.
    let sha = world.git(&["rev-parse", "base"]).trim().to_string();
    world.keys(&sha);
    std::fs::rename(world.repo(), world.dir.path().join("moved")).unwrap();
    let output = world.key_from(world.repo().to_str().unwrap(), &sha, &["--offline"]);
    assert_ok(&output);
}

#[test]
fn unreachable_repository_is_a_source_error() {
    let world = World::new();
    let output = world.tbuild(&["core", "--repo", "file:///nonexistent/tasker-core.git", "--sha", "main"]);
    assert_fails(&output, 3, &["cannot fetch file:///nonexistent/tasker-core.git", "--offline"]);
}

#[test]
fn missing_toolchain_is_reported_before_anything_is_built() {
    let world = World::new();
    let output = core(&world, "main", &[], &[("PATH", "/usr/bin:/bin")]);
    assert_fails(&output, 5, &["`cargo` is not on PATH", "rustup", "nothing was built"]);
    assert!(records(&world.cache()).is_empty());
    assert!(!world.out("out").exists());
}

#[test]
fn failing_build_names_the_target_shows_its_log_and_stores_nothing_for_it() {
    let world = World::new();
    let main_rs = world.repo().join("crates/tasker-ctl/src/main.rs");
    std::fs::write(&main_rs, "fn main() { this is not rust }\n").unwrap();
    let sha = world.commit_all("break tasker-ctl");
    let output = core(&world, &sha, &[], &[]);
    assert_fails(&output, 6, &["target tasker-ctl failed", "--bin tasker-ctl", "last lines of", "error", ".log"]);
    let stored: Vec<String> =
        records(&world.cache()).iter().map(|r| r["target"].as_str().unwrap().to_string()).collect();
    assert!(!stored.contains(&"tasker-ctl".to_string()), "no entry for the failed target: {stored:?}");
    assert_eq!(stored.len(), 2, "the other targets' artifacts are kept");
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(world.out("out").join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["targets"]["tasker-ctl"]["status"], "failed");
    assert!(!world.out("out").join("tasker-core-binaries/tasker-ctl").exists());
    assert!(world.out("out").join("tasker-core-binaries/tasker-server").exists());
}

#[test]
fn malformed_recipe_and_unknown_layout_are_recipe_errors() {
    let world = World::new();
    let recipe = world.dir.path().join("bad.toml");
    std::fs::write(&recipe, "[[target]]\nname = \"x\"\nkind = \"cargo\"\n").unwrap();
    let output = core(&world, "main", &["--recipe", recipe.to_str().unwrap()], &[]);
    assert_fails(&output, 4, &["malformed recipe", "bad.toml", "artifact_dir"]);

    std::fs::write(world.repo().join("tbuild.toml"), "this is = not [toml").unwrap();
    let sha = world.commit_all("broken tbuild.toml");
    let in_tree = |rev: &str| world.tbuild(&["core", "--repo", world.repo().to_str().unwrap(), "--sha", rev]);
    assert_fails(&in_tree(&sha), 4, &["malformed recipe tbuild.toml in the repository"]);

    world.git(&["rm", "-q", "-r", "crates", "tbuild.toml"]);
    let sha = world.commit_all("not tasker-core any more");
    assert_fails(&in_tree(&sha), 4, &["no built-in recipe matches", "tbuild.toml"]);

    assert_fails(&core(&world, "base", &["--targets", "nope"], &[]), 4, &["no target named \"nope\"", "tasker-ctl"]);
    assert!(records(&world.cache()).is_empty());
}
