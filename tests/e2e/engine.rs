//! The pipeline end to end: build, store, restore, publish.

use std::process::Command;

use crate::support::*;

const ALL: [&str; 3] = ["tasker-ctl", "tasker-server", "tasker-worker"];

#[test]
fn cold_run_builds_and_second_run_restores_byte_identical() {
    let world = World::new();
    let first = world.core("main", "out");
    assert_eq!(statuses(&first).values().collect::<Vec<_>>(), ["built"; 3]);
    assert_eq!(first["sha"], world.git(&["rev-parse", "main"]).trim());
    let bins = world.out("out").join("tasker-core-binaries");
    assert_eq!(run_binary(&bins.join("tasker-ctl")), "tasker-ctl ctl-2 shared-2");
    assert_eq!(run_binary(&bins.join("tasker-server")), "tasker-server orch-1 shared-2");
    assert_eq!(run_binary(&bins.join("tasker-worker")), "tasker-worker worker-1 shared-2");
    let before = snapshot(&world.out("out"));
    assert_eq!(
        before.keys().collect::<Vec<_>>(),
        ["tasker-core-binaries/tasker-ctl", "tasker-core-binaries/tasker-server", "tasker-core-binaries/tasker-worker"]
    );

    let second = world.core("main", "out");
    assert_eq!(statuses(&second).values().collect::<Vec<_>>(), ["hit"; 3]);
    assert_eq!(snapshot(&world.out("out")), before, "a restore gives the very bytes the build gave");
    for target in ALL {
        assert_eq!(first["targets"][target]["key"], second["targets"][target]["key"]);
        assert_eq!(first["targets"][target]["files"], second["targets"][target]["files"]);
    }
    assert_eq!(records(&world.cache()).len(), 3);
}

#[test]
fn archives_are_readable_by_stock_tar() {
    let world = World::new();
    let manifest = world.core("main", "out");
    let digest = manifest["targets"]["tasker-ctl"]["artifact_digest"].as_str().unwrap();
    let blob = world.cache().join(format!("v1/blobs/{}/{digest}.tar.zst", &digest[..2]));
    let dest = world.out("stock");
    std::fs::create_dir_all(&dest).unwrap();
    let status = Command::new("tar").arg("--zstd").arg("-xf").arg(&blob).arg("-C").arg(&dest).status().unwrap();
    assert!(status.success());
    let stock = std::fs::read(dest.join("tasker-core-binaries/tasker-ctl")).unwrap();
    assert_eq!(stock, std::fs::read(world.out("out").join("tasker-core-binaries/tasker-ctl")).unwrap());
    let listing = Command::new("tar").arg("--zstd").arg("-tvf").arg(&blob).output().unwrap();
    let listing = String::from_utf8_lossy(&listing.stdout);
    assert!(listing.contains("rwxr-xr-x 0/0") && listing.contains("1970-01-01"), "normalised headers: {listing}");
}

#[test]
fn unchanged_inputs_restore_and_changed_closures_rebuild() {
    let world = World::new();
    assert_eq!(statuses(&world.core("base", "out")).values().collect::<Vec<_>>(), ["built"; 3]);
    let docs = world.core("docs-only", "out");
    assert_eq!(statuses(&docs).values().collect::<Vec<_>>(), ["hit"; 3], "a docs-only commit rebuilds nothing");
    let ctl = world.core("ctl-only", "out");
    let s = statuses(&ctl);
    assert_eq!(
        (s["tasker-ctl"].as_str(), s["tasker-server"].as_str(), s["tasker-worker"].as_str()),
        ("built", "hit", "hit")
    );
    assert_eq!(run_binary(&world.out("out").join("tasker-core-binaries/tasker-ctl")), "tasker-ctl ctl-2 shared-1");
    // Back to an older commit: everything is still in the cache.
    assert_eq!(statuses(&world.core("base", "out")).values().collect::<Vec<_>>(), ["hit"; 3]);
    assert_eq!(run_binary(&world.out("out").join("tasker-core-binaries/tasker-ctl")), "tasker-ctl ctl-1 shared-1");
}

#[test]
fn corrupted_archive_is_reported_dropped_and_rebuilt() {
    let world = World::new();
    let first = world.core("main", "out");
    let digest = first["targets"]["tasker-worker"]["artifact_digest"].as_str().unwrap().to_string();
    let blob = world.cache().join(format!("v1/blobs/{}/{digest}.tar.zst", &digest[..2]));
    let mut bytes = std::fs::read(&blob).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(&blob, bytes).unwrap();

    let out = world.out("out2");
    let output = world.run_core("main", "out2", BINARIES);
    assert_ok(&output);
    let err = stderr(&output);
    assert!(err.contains("cache entry of tasker-worker is corrupt") && err.contains("rebuilding"), "{err}");
    let manifest: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let s = statuses(&manifest);
    assert_eq!((s["tasker-worker"].as_str(), s["tasker-ctl"].as_str()), ("built", "hit"));
    assert_eq!(
        manifest["targets"]["tasker-worker"]["artifact_digest"].as_str().unwrap(),
        digest,
        "rebuilt to the same bytes"
    );
    assert_eq!(
        blake3::hash(&std::fs::read(&blob).unwrap()).to_hex().to_string(),
        digest,
        "the stored archive is whole again"
    );
    assert_eq!(run_binary(&out.join("tasker-core-binaries/tasker-worker")), "tasker-worker worker-1 shared-2");
}

#[test]
fn concurrent_runs_on_one_commit_build_once() {
    let world = World::new();
    let spawn = |out: &str| {
        let args = world.core_args("main", out, BINARIES);
        world
            .command(&args.iter().map(String::as_str).collect::<Vec<_>>(), &[])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn("a"), spawn("b"));
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    assert_ok(&a);
    assert_ok(&b);
    let (ma, mb): (serde_json::Value, serde_json::Value) =
        (serde_json::from_slice(&a.stdout).unwrap(), serde_json::from_slice(&b.stdout).unwrap());
    for target in ALL {
        let built = [&ma, &mb].iter().filter(|m| m["targets"][target]["status"] == "built").count();
        assert_eq!(built, 1, "{target} must be built exactly once across both runs");
    }
    assert_eq!(snapshot(&world.out("a")), snapshot(&world.out("b")));
    assert_eq!(records(&world.cache()).len(), 3);
}

#[test]
fn out_dir_is_replaced_whole_and_foreign_dirs_are_refused() {
    let world = World::new();
    world.core("main", "out");
    std::fs::write(world.out("out").join("tasker-core-binaries/stale"), b"old").unwrap();
    world.core("main", "out");
    assert!(!world.out("out").join("tasker-core-binaries/stale").exists(), "a run replaces the out dir as a whole");

    let foreign = world.out("foreign");
    std::fs::create_dir_all(&foreign).unwrap();
    std::fs::write(foreign.join("precious.txt"), b"keep me").unwrap();
    let output = world.run_core("main", "foreign", BINARIES);
    assert_eq!(output.status.code(), Some(8), "{}", stderr(&output));
    assert!(stderr(&output).contains("refusing to replace --out"), "{}", stderr(&output));
    assert_eq!(std::fs::read(foreign.join("precious.txt")).unwrap(), b"keep me");
    let leftovers: Vec<_> = std::fs::read_dir(world.dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains("staging"))
        .collect();
    assert!(leftovers.is_empty(), "no staging dir left behind");
}

#[test]
fn targets_flag_builds_a_subset() {
    let world = World::new();
    let out = world.out("out");
    let output = world.run_core("main", "out", "tasker-ctl");
    assert_ok(&output);
    let manifest: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(statuses(&manifest).keys().collect::<Vec<_>>(), ["tasker-ctl"]);
    assert_eq!(snapshot(&out).keys().collect::<Vec<_>>(), ["tasker-core-binaries/tasker-ctl"]);
}

#[test]
fn the_builtin_recipe_builds_the_fixture_binaries() {
    let world = World::new();
    let out = world.out("out");
    let output = world.core_with("main", "out", &["--targets", "tasker-ctl", "--json"]);
    assert_ok(&output);
    let manifest: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(manifest["recipe"], "the built-in tasker-core recipe (crates/ layout)");
    assert_eq!(run_binary(&out.join("tasker-core-binaries/tasker-ctl")), "tasker-ctl ctl-2 shared-2");
}

#[test]
fn the_checkout_is_updated_in_place_so_unchanged_files_keep_their_mtime() {
    let world = World::new();
    world.core("base", "out");
    let work = std::fs::read_dir(world.cache().join("repos")).unwrap().next().unwrap().unwrap().path().join("work");
    let mtime = |rel: &str| std::fs::metadata(work.join(rel)).unwrap().modified().unwrap();
    let untouched = mtime("crates/tasker-pgmq/src/lib.rs");
    // A build that scribbles on a tracked file must not leak into the next commit's checkout.
    std::fs::write(work.join("crates/tasker-shared/src/lib.rs"), "scribbled by a build").unwrap();
    std::fs::write(work.join("crates/tasker-ctl/leftover.txt"), "untracked").unwrap();

    world.core("ctl-only", "out");
    assert_eq!(mtime("crates/tasker-pgmq/src/lib.rs"), untouched, "unchanged files are not rewritten");
    let shared = std::fs::read_to_string(work.join("crates/tasker-shared/src/lib.rs")).unwrap();
    assert!(shared.contains("SHARED_REV"), "a modified tracked file is restored");
    assert!(std::fs::read_to_string(work.join("crates/tasker-ctl/src/main.rs")).unwrap().contains("ctl-2"));
    assert!(work.join("crates/tasker-ctl/leftover.txt").exists(), "untracked files (build state) stay");
    assert_eq!(run_binary(&world.out("out").join("tasker-core-binaries/tasker-ctl")), "tasker-ctl ctl-2 shared-1");
}

#[test]
fn a_killed_run_leaves_no_partial_out_dir_and_its_staging_is_cleaned_up() {
    let world = World::new();
    world.core("base", "out");
    let before = snapshot(&world.out("out"));
    // Kill a run in the middle of its build.
    let args = world.core_args("ctl-only", "out", BINARIES);
    let mut child = world
        .command(&args.iter().map(String::as_str).collect::<Vec<_>>(), &[])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stderr));
    assert!(lines.any(|l| l.unwrap().contains(": build")), "the run reached its build");
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(snapshot(&world.out("out")), before, "the out dir is the previous run's, whole");
    let staging = |dir: &std::path::Path| {
        std::fs::read_dir(dir)
            .unwrap()
            .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().contains("staging"))
            .count()
    };
    assert_eq!(staging(world.dir.path()), 1, "the killed run left its staging dir");
    world.core("ctl-only", "out");
    assert_eq!(staging(world.dir.path()), 0, "the next run removes it");
    assert_eq!(run_binary(&world.out("out").join("tasker-core-binaries/tasker-ctl")), "tasker-ctl ctl-2 shared-1");
}
