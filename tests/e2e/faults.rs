//! Faults the cache must survive: records that lie, many runs at once, full disks, a
//! read-only cache, a cache on another file system than --out, no HOME.
//!
//! The disk tests mount small tmpfs file systems, which needs root (CI runs as root). They
//! fail, not skip, when they cannot mount: a fault test that quietly passes proves nothing.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

use crate::support::*;

/// The action record file of `key` in `cache`.
fn record_path(cache: &Path, key: &str) -> PathBuf {
    cache.join(format!("v1/actions/{}/{key}.json", &key[..2]))
}

#[test]
fn records_that_are_broken_or_lie_are_refused_and_rebuilt() {
    let world = World::new();
    let first = world.core_targets("main", "out", "tasker-ctl,tasker-server");
    let key = first["targets"]["tasker-ctl"]["key"].as_str().unwrap().to_string();
    let other_digest = first["targets"]["tasker-server"]["artifact_digest"].as_str().unwrap().to_string();
    let good = std::fs::read(record_path(&world.cache(), &key)).unwrap();
    let victim = world.dir.path().join("victim.tar.zst");
    std::fs::write(&victim, b"precious").unwrap();
    let edit = |f: &dyn Fn(&mut Value)| {
        let mut record: Value = serde_json::from_slice(&good).unwrap();
        f(&mut record);
        serde_json::to_vec(&record).unwrap()
    };
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("truncated", good[..good.len() / 2].to_vec(), "unreadable action record"),
        ("not json", b"\x00\x01 not json at all".to_vec(), "unreadable action record"),
        ("smaller sizes", edit(&|r| r["files"][0]["size"] = 10.into()), "expands beyond the 10 bytes"),
        (
            "wrong file digest",
            edit(&|r| r["files"][0]["digest"] = "00".repeat(32).into()),
            "differ from its action record",
        ),
        ("missing archive", edit(&|r| r["artifact_digest"] = "ab".repeat(32).into()), "archive is missing"),
        ("another target's archive", edit(&|r| r["artifact_digest"] = other_digest.clone().into()), "expands beyond"),
        ("digest is a path", edit(&|r| r["artifact_digest"] = "../../victim".into()), "not a blake3 hex digest"),
        ("another key", edit(&|r| r["key"] = "cd".repeat(32).into()), "says it is"),
        ("fewer files", edit(&|r| r["files"] = Value::Array(vec![])), "more than the 0 entries"),
    ];
    for (case, bytes, expected) in cases {
        std::fs::write(record_path(&world.cache(), &key), &bytes).unwrap();
        // A fresh --out each time: into the last one the run would be a no-op repeat.
        let out = format!("out-{}", case.replace(' ', "-"));
        let output = world.run_core("main", &out, "tasker-ctl");
        assert_ok(&output);
        let manifest: Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(manifest["targets"]["tasker-ctl"]["status"], "built", "{case}: rebuilt");
        let err = stderr(&output);
        assert!(err.contains(expected) && err.contains("rebuilding"), "{case}: {err}");
        let bin = world.out(&out).join("tasker-core-binaries/tasker-ctl");
        assert_eq!(run_binary(&bin), "tasker-ctl ctl-2 shared-2", "{case}: the served binary is the right one");
        let rewritten: Value =
            serde_json::from_slice(&std::fs::read(record_path(&world.cache(), &key)).unwrap()).unwrap();
        assert_eq!(rewritten["files"], serde_json::from_slice::<Value>(&good).unwrap()["files"], "{case}");
    }
    // Were the digest used as a path, the corrupt entry's archive would be this file.
    assert!(victim.exists(), "a record's digest never names a file outside the blob store");
    // The other target's archive was only read, never dropped or changed.
    let again = world.core_targets("main", "out-again", "tasker-ctl,tasker-server");
    assert_eq!(statuses(&again).values().collect::<Vec<_>>(), ["hit", "hit"]);
}

#[test]
fn eight_concurrent_runs_on_one_commit_build_each_target_once() {
    let world = World::new();
    let children: Vec<_> = (0..8)
        .map(|i| {
            let args = world.core_args("main", &format!("out{i}"), BINARIES);
            world
                .command(&args.iter().map(String::as_str).collect::<Vec<_>>(), &[])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outputs: Vec<Output> = children.into_iter().map(|c| c.wait_with_output().unwrap()).collect();
    let manifests: Vec<Value> = outputs
        .iter()
        .map(|o| {
            assert_ok(o);
            serde_json::from_slice(&o.stdout).unwrap()
        })
        .collect();
    for target in ["tasker-ctl", "tasker-server", "tasker-worker"] {
        let built = manifests.iter().filter(|m| m["targets"][target]["status"] == "built").count();
        let hit = manifests.iter().filter(|m| m["targets"][target]["status"] == "hit").count();
        assert_eq!((built, hit), (1, 7), "{target} is built once and restored seven times");
    }
    let first = snapshot(&world.out("out0"));
    assert_eq!(first.len(), 3);
    for i in 1..8 {
        assert_eq!(snapshot(&world.out(&format!("out{i}"))), first, "run {i} published the same bytes");
    }
    assert_eq!(records(&world.cache()).len(), 3);
}

#[test]
fn no_home_and_no_cache_dir_is_a_usage_error_that_names_the_fix() {
    let world = World::new();
    let args = world.core_args("main", "out", BINARIES);
    let output = world
        .command(&args.iter().map(String::as_str).collect::<Vec<_>>(), &[])
        .env_remove("TBUILD_CACHE_DIR")
        .env_remove("HOME")
        .env_remove("XDG_CACHE_HOME")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    let err = stderr(&output);
    assert!(err.contains("HOME") && err.contains("TBUILD_CACHE_DIR"), "{err}");
    assert!(!world.out("out").exists());
}

/// A tmpfs of `size` mounted at a fresh dir, unmounted on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let dir = tempfile::tempdir().unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tbuild-test"])
            .arg(dir.path())
            .status()
            .expect("mount(8) runs");
        assert!(status.success(), "the disk fault tests mount a tmpfs and need root (CI runs as root)");
        Tmpfs { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn remount_read_only(&self) {
        let status = Command::new("mount").args(["-o", "remount,ro"]).arg(self.path()).status().unwrap();
        assert!(status.success());
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.dir.path()).status();
    }
}

/// A recipe with one target that writes `bytes` of incompressible data.
fn big_output_recipe(dir: &Path, bytes: u64) -> PathBuf {
    let recipe = dir.join("big.toml");
    let text = format!(
        r#"
        [[target]]
        name = "big"
        kind = "command"
        artifact_dir = "big"
        commands = ["head -c {bytes} /dev/urandom > big.bin"]
        [[target.output]]
        path = "big.bin"
        "#
    );
    std::fs::write(&recipe, text).unwrap();
    recipe
}

/// Files of `dir`, recursively, whose path contains `needle`.
fn files_named(dir: &Path, needle: &str) -> Vec<PathBuf> {
    walk(dir).into_iter().filter(|p| p.to_string_lossy().contains(needle)).collect()
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() && !path.is_symlink() {
                stack.push(path);
            } else {
                found.push(path);
            }
        }
    }
    found
}

#[test]
fn full_disk_while_packing_fails_the_target_and_stores_nothing() {
    let world = World::new();
    let disk = Tmpfs::mount("12m");
    let cache = disk.path().join("cache");
    // The output (7 MB, incompressible) fits; its archive next to it does not.
    let recipe = big_output_recipe(world.dir.path(), 7_000_000);
    let args = world.core_args_with("main", "out", &["--recipe", recipe.to_str().unwrap()]);
    let output = world
        .command(&args.iter().map(String::as_str).collect::<Vec<_>>(), &[("TBUILD_CACHE_DIR", cache.to_str().unwrap())])
        .output()
        .unwrap();
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(7), "{err}");
    assert!(err.contains("No space left on device") && err.contains("file system is full"), "{err}");
    assert!(err.contains("big: FAILED"), "names the target: {err}");
    assert_eq!(files_named(&cache.join("v1/actions"), ".json"), Vec::<PathBuf>::new(), "no record");
    assert_eq!(files_named(&cache.join("v1/blobs"), ".tar.zst"), Vec::<PathBuf>::new(), "no archive");
    assert_eq!(walk(&cache.join("v1/tmp")), Vec::<PathBuf>::new(), "no temp file left behind");
    // The run publishes what succeeded (here nothing) with a manifest that says what failed.
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(world.out("out").join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["targets"]["big"]["status"], "failed");
    assert!(!world.out("out").join("big").exists(), "no partial artifact published");
}

#[test]
fn full_disk_while_restoring_into_out_leaves_no_partial_out_dir() {
    let world = World::new();
    world.core("main", "warm");
    // --out on its own small file system: another file system than the cache's, too small.
    let disk = Tmpfs::mount("1m");
    let out = disk.path().join("out");
    let args = world.core_args("main", "unused", BINARIES);
    let mut args: Vec<String> = args;
    let at = args.iter().position(|a| a == "--out").unwrap();
    args[at + 1] = out.to_str().unwrap().to_string();
    let output = world.tbuild(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(8), "{err}");
    // Refused before unpacking, naming what it needs and what is free.
    assert!(err.contains("not enough free space to restore") && err.contains("bytes) are free"), "{err}");
    assert_eq!(walk(disk.path()), Vec::<PathBuf>::new(), "no partial out dir or staging left");
    // The entries themselves are fine: the same restore into a roomy dir hits.
    assert_eq!(statuses(&world.core("main", "roomy")).values().collect::<Vec<_>>(), ["hit"; 3]);
}

#[test]
fn cache_on_another_file_system_than_out_restores() {
    let world = World::new();
    let disk = Tmpfs::mount("64m");
    let out = disk.path().join("out");
    let mut args = world.core_args("main", "unused", BINARIES);
    let at = args.iter().position(|a| a == "--out").unwrap();
    args[at + 1] = out.to_str().unwrap().to_string();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    assert_ok(&world.tbuild(&args));
    let output = world.tbuild(&args);
    assert_ok(&output);
    let manifest: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(statuses(&manifest).values().collect::<Vec<_>>(), ["hit"; 3]);
    assert_eq!(run_binary(&out.join("tasker-core-binaries/tasker-ctl")), "tasker-ctl ctl-2 shared-2");
}

#[test]
fn read_only_cache_serves_hits_and_names_the_problem_on_a_miss() {
    let world = World::new();
    let disk = Tmpfs::mount("256m");
    let cache = disk.path().join("cache");
    let env = [("TBUILD_CACHE_DIR", cache.to_str().unwrap())];
    let run = |rev: &str, out: &str| {
        let args = world.core_args(rev, out, BINARIES);
        world.command(&args.iter().map(String::as_str).collect::<Vec<_>>(), &env).output().unwrap()
    };
    // Full SHAs: a branch name would make tbuild fetch, which a read-only mirror cannot.
    let (main, ctl_only) = (world.git(&["rev-parse", "main"]), world.git(&["rev-parse", "ctl-only"]));
    assert_ok(&run(main.trim(), "warm"));
    disk.remount_read_only();
    let hit = run(main.trim(), "out");
    assert_ok(&hit);
    let manifest: Value = serde_json::from_slice(&hit.stdout).unwrap();
    assert_eq!(statuses(&manifest).values().collect::<Vec<_>>(), ["hit"; 3]);
    assert_eq!(snapshot(&world.out("out")), snapshot(&world.out("warm")));

    let miss = run(ctl_only.trim(), "miss");
    let err = stderr(&miss);
    assert_eq!(miss.status.code(), Some(7), "{err}");
    assert!(err.contains("Read-only file system"), "{err}");
    assert!(!world.out("miss").exists());
}
