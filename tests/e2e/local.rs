//! `--path`: a checkout on disk built as it is, with the same keys as its commit.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::support::*;

/// A clone of the fixture checked out at `rev`, in the world's dir.
fn checkout(world: &World, name: &str, rev: &str) -> PathBuf {
    let dir = world.dir.path().join(name);
    git_in(world.dir.path(), &["clone", "-q", world.repo().to_str().unwrap(), dir.to_str().unwrap()]);
    git_in(&dir, &["checkout", "-q", rev]);
    dir
}

/// `tbuild core --path DIR` of the fixture's binaries, asserting success; the manifest.
fn core_path(world: &World, dir: &Path, out: &str) -> Value {
    let (recipe, out) = (fixture_recipe(), world.out(out));
    let args = [
        "core",
        "--path",
        dir.to_str().unwrap(),
        "--recipe",
        recipe.to_str().unwrap(),
        "--targets",
        BINARIES,
        "--out",
        out.to_str().unwrap(),
        "--json",
    ];
    let output = world.tbuild(&args);
    assert_ok(&output);
    serde_json::from_slice(&output.stdout).unwrap()
}

#[test]
fn a_clean_checkout_hits_its_commits_entries_and_an_edit_rebuilds_its_closure_only() {
    let world = World::new();
    let by_sha = world.core("main", "out");
    let co = checkout(&world, "checkout", "main");

    let clean = core_path(&world, &co, "out-path");
    assert_eq!(statuses(&clean).values().collect::<Vec<_>>(), ["hit"; 3], "same tree, same keys");
    assert_eq!(clean["sha"], format!("path:{}", co.canonicalize().unwrap().display()));
    for target in ["tasker-ctl", "tasker-server", "tasker-worker"] {
        assert_eq!(clean["targets"][target]["key"], by_sha["targets"][target]["key"]);
    }

    // An uncommitted edit: only the target whose closure holds the file misses, and the build
    // sees the edit.
    let main_rs = co.join("crates/tasker-ctl/src/main.rs");
    let text = std::fs::read_to_string(&main_rs).unwrap();
    std::fs::write(&main_rs, text.replace("\"ctl-2\"", "\"ctl-local\"")).unwrap();
    let edited = core_path(&world, &co, "out-path");
    let s = statuses(&edited);
    assert_eq!(
        (s["tasker-ctl"].as_str(), s["tasker-server"].as_str(), s["tasker-worker"].as_str()),
        ("built", "hit", "hit")
    );
    let ctl = world.out("out-path").join("tasker-core-binaries/tasker-ctl");
    assert_eq!(run_binary(&ctl), "tasker-ctl ctl-local shared-2");
    assert!(!co.join("target").exists(), "builds run in a copy, never in the user's checkout");
    assert_eq!(std::fs::read_to_string(&main_rs).unwrap(), text.replace("\"ctl-2\"", "\"ctl-local\""));

    // And the other way: committing the edit gives a commit whose entries --path stored.
    git_in(&co, &["-c", "user.name=t", "-c", "user.email=t@t.invalid", "commit", "-q", "-am", "local edit"]);
    let head = git_in(&co, &["rev-parse", "HEAD"]).trim().to_string();
    let recipe = fixture_recipe();
    let out = world.out("out-committed");
    let output = world.tbuild(&[
        "core",
        "--repo",
        co.to_str().unwrap(),
        "--sha",
        &head,
        "--recipe",
        recipe.to_str().unwrap(),
        "--targets",
        BINARIES,
        "--out",
        out.to_str().unwrap(),
        "--json",
    ]);
    assert_ok(&output);
    let committed: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(statuses(&committed).values().collect::<Vec<_>>(), ["hit"; 3]);
}

#[test]
fn the_file_set_of_a_checkout_is_what_git_status_sees() {
    let world = World::new();
    // A tracked file that .gitignore matches (force-added) is part of the commit, so it must
    // be part of the checkout's keys too.
    let before = world.git(&["rev-parse", "main"]).trim().to_string();
    std::fs::write(world.repo().join("crates/tasker-ctl/src/vendored.so"), b"force-added").unwrap();
    world.git(&["add", "-f", "crates/tasker-ctl/src/vendored.so"]);
    let sha = world.commit_all("vendor a prebuilt library");
    let co = checkout(&world, "checkout", &sha);
    let committed = world.keys(&sha);
    assert_eq!(world.keys_of_dir(&co), committed, "a clean checkout keys like its commit");

    // Ignored files stay out; an untracked, unignored file is an input of its crate.
    std::fs::write(co.join("crates/tasker-ctl/src/scratch.so"), b"ignored").unwrap();
    assert_eq!(world.keys_of_dir(&co), committed);
    std::fs::write(co.join("crates/tasker-ctl/src/new_module.rs"), b"pub fn f() {}\n").unwrap();
    let untracked = world.keys_of_dir(&co);
    assert_ne!(untracked["tasker-ctl"], committed["tasker-ctl"]);
    assert_eq!(untracked["tasker-server"], committed["tasker-server"]);
    std::fs::remove_file(co.join("crates/tasker-ctl/src/new_module.rs")).unwrap();

    // A tracked file deleted on disk is gone from the tree, as `git status` says.
    std::fs::remove_file(co.join("crates/tasker-ctl/src/vendored.so")).unwrap();
    assert_eq!(world.keys_of_dir(&co)["tasker-ctl"], world.keys(&before)["tasker-ctl"]);
}

#[test]
fn file_modes_of_a_checkout_are_read_as_git_records_them() {
    use std::os::unix::fs::PermissionsExt;
    let world = World::new();
    let co = checkout(&world, "checkout", "main");
    let commit_keys = |message: &str| {
        git_in(&co, &["-c", "user.name=t", "-c", "user.email=t@t.invalid", "commit", "-q", "-am", message]);
        let head = git_in(&co, &["rev-parse", "HEAD"]);
        let output = world.key_from(co.to_str().unwrap(), head.trim(), &[]);
        assert_ok(&output);
        parse_keys(&output.stdout)
    };
    let main_rs = co.join("crates/tasker-ctl/src/main.rs");
    let before = world.keys_of_dir(&co);
    // Only the owner's execute bit makes a file 100755 in git.
    std::fs::set_permissions(&main_rs, std::fs::Permissions::from_mode(0o654)).unwrap();
    assert_eq!(world.keys_of_dir(&co), before);
    std::fs::set_permissions(&main_rs, std::fs::Permissions::from_mode(0o744)).unwrap();
    let executable = world.keys_of_dir(&co);
    assert_ne!(executable["tasker-ctl"], before["tasker-ctl"]);
    assert_eq!(executable, commit_keys("make main.rs executable"), "git records the same mode");
}
