//! `core --warm-state`: target-dir snapshots shared through a remote make a fresh machine's
//! misses compile only what changed; a broken sccache never fails a build.
//!
//! Every run here uses the test process's CARGO_HOME: cargo keys registry crates by their
//! absolute source path, so a snapshot is warm only where CARGO_HOME sits at the same path
//! (on CI runners it is always `~/.cargo`). What differs between the "machines" is what
//! matters: the cache dir, hence the checkout and the cargo target dir, at other paths.

use std::collections::BTreeMap;

use crate::remote_servers::Nginx;
use crate::support::{BINARIES, World, assert_ok, fixture_recipe, git_in, records, run_binary, stderr};

/// Runs `core` with its own cache dir `cache`; its stderr.
fn core(world: &World, cache: &str, rev: &str, extra: &[&str], env: &[(&str, &str)]) -> String {
    let recipe = fixture_recipe();
    let mut args = world.core_args_with(rev, &format!("out-{cache}"), &["--targets", BINARIES]);
    if !extra.contains(&"--recipe") {
        args.extend(["--recipe".to_string(), recipe.to_str().unwrap().to_string()]);
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    let cache_dir = world.dir.path().join(cache);
    let mut env = env.to_vec();
    env.push(("TBUILD_CACHE_DIR", cache_dir.to_str().unwrap()));
    let output = world.tbuild_env(&args.iter().map(String::as_str).collect::<Vec<_>>(), &env);
    assert_ok(&output);
    stderr(&output)
}

/// Crate name -> how often cargo compiled it, from every build log of cache dir `cache`.
fn compiled(world: &World, cache: &str) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    let logs = world.dir.path().join(cache).join("v1/logs");
    for entry in walkdir::WalkDir::new(logs).into_iter().filter_map(Result::ok).filter(|e| e.file_type().is_file()) {
        for line in std::fs::read_to_string(entry.path()).unwrap().lines() {
            if let Some(rest) = line.trim_start().strip_prefix("Compiling ") {
                *counts.entry(rest.split(' ').next().unwrap().to_string()).or_default() += 1;
            }
        }
    }
    counts
}

#[test]
fn a_snapshot_through_the_remote_makes_a_fresh_machine_compile_only_what_changed() {
    let world = World::new();
    let nginx = Nginx::start(&world.dir.path().join("nginx"));
    let url = nginx.url();
    let warm = ["--warm-state", "--remote", url.as_str(), "--sccache", "never"];

    // Machine A builds `base` cold and saves a snapshot of its target dir.
    let a = core(&world, "cache-a", "base", &warm, &[]);
    assert!(a.contains("no snapshot for this toolchain yet"), "{a}");
    assert!(a.contains("warm state: snapshot saved"), "{a}");
    assert!(compiled(&world, "cache-a").contains_key("itoa"), "A compiles everything");
    let files = snapshot_files(&world.dir.path().join("cache-a"));
    assert!(!files.iter().any(|f| f.contains("/incremental/")), "no incremental state unless asked: {files:?}");

    // Without a snapshot, a fresh machine compiles every crate for ctl-only.
    core(&world, "cache-cold", "ctl-only", &["--sccache", "never"], &[]);
    let cold = compiled(&world, "cache-cold");
    for name in ["itoa", "tasker-shared", "tasker-client", "tasker-ctl"] {
        assert!(cold.contains_key(name), "cold build compiles {name}: {cold:?}");
    }

    // Machine B (its own cache dir, checkout and target dir) builds ctl-only, a change to
    // tasker-ctl's main.rs alone: server and worker are hits from the remote, tasker-ctl
    // misses, and with A's snapshot only tasker-ctl compiles.
    let b = core(&world, "cache-b", "ctl-only", &warm, &[]);
    assert!(b.contains("warm state: restored the exact snapshot"), "{b}");
    // docs-only (three docs files) and ctl-only (main.rs) since base.
    assert!(b.contains("4 source files changed since"), "{b}");
    let warm_compiled = compiled(&world, "cache-b");
    assert_eq!(warm_compiled, BTreeMap::from([("tasker-ctl".to_string(), 1)]), "{b}");
    // What the same machine compiles for the same commit (A, its target dir warm; no remote,
    // where B's tasker-ctl would be a hit): the very same list. tasker-shared's build script
    // watches `proto`, a symlink to a directory, so this holds only when the restore
    // back-dated the link and the directories too, not just the files.
    let same_machine = compiled_by(&world, "cache-a", || {
        core(&world, "cache-a", "ctl-only", &["--warm-state", "--sccache", "never"], &[]);
    });
    assert_eq!(warm_compiled, same_machine, "{b}");
    // B restored under the exact key: nothing new to save.
    assert!(!b.contains("snapshot saved"), "{b}");
    let built =
        std::process::Command::new(world.out("out-cache-b").join("tasker-core-binaries/tasker-ctl")).output().unwrap();
    assert!(String::from_utf8_lossy(&built.stdout).contains("ctl-2"), "the rebuilt binary is ctl-only's");

    // Machine E builds the very commit A built, missing every key (a recipe whose env differs,
    // which cargo does not see): after the restore, cargo finds every unit fresh.
    let recipe = std::fs::read_to_string(fixture_recipe()).unwrap();
    let salted = recipe.replace("SQLX_OFFLINE = \"true\"", "SQLX_OFFLINE = \"true\"\nWARM_TEST_SALT = \"1\"");
    assert_ne!(recipe, salted);
    let salted_path = world.dir.path().join("salted-recipe.toml");
    std::fs::write(&salted_path, salted).unwrap();
    let mut extra = warm.to_vec();
    extra.extend(["--recipe", salted_path.to_str().unwrap()]);
    let e = core(&world, "cache-e", "base", &extra, &[]);
    assert!(e.contains("3 built"), "every key missed: {e}");
    assert!(e.contains("0 source files changed since"), "{e}");
    assert_eq!(compiled(&world, "cache-e"), BTreeMap::new(), "{e}");
    // The back-dated files stay as they are in E's next checkout: its next miss (tasker-ctl,
    // at ctl-only) compiles tasker-ctl alone, not every crate whose files were back-dated.
    let e2 = core(&world, "cache-e", "ctl-only", &extra, &[]);
    assert!(e2.contains("1 built"), "{e2}");
    assert_eq!(compiled(&world, "cache-e"), BTreeMap::from([("tasker-ctl".to_string(), 1)]), "{e2}");

    // Machine F builds lock-change (itoa 1.0.14 -> 1.0.15): no snapshot for its Cargo.lock,
    // so the nearest one (A's, of today) is restored; F's own snapshot leaves out the itoa
    // 1.0.14 units its build no longer used.
    let f = core(&world, "cache-f", "lock-change", &warm, &[]);
    assert!(f.contains("warm state: restored the nearest snapshot"), "{f}");
    assert!(f.contains("warm state: snapshot saved"), "{f}");
    assert!(compiled(&world, "cache-f").contains_key("itoa"), "{f}");
    assert_eq!(itoa_rlibs(&world, "cache-a"), 1);
    assert_eq!(itoa_rlibs(&world, "cache-f"), 1, "the stale itoa is pruned");

    // F's next miss, same Cargo.lock: its target dir is warm (no restore) and the exact
    // snapshot is stored already (no second save).
    let f2 = core(&world, "cache-f", "shared-change", &warm, &[]);
    assert!(f2.contains("3 built"), "{f2}");
    assert!(!f2.contains("warm state:"), "{f2}");
}

#[test]
fn a_file_removed_under_a_watched_directory_reruns_the_build_script_on_a_fresh_machine_too() {
    let world = World::new();
    let nginx = Nginx::start(&world.dir.path().join("nginx"));
    let url = nginx.url();
    // One build at a time: both machines then build the targets in the same order.
    let warm = ["--warm-state", "--remote", url.as_str(), "--sccache", "never", "--jobs", "1"];
    // tasker-shared's build script watches proto/ (through its `proto` symlink). Removing a
    // file there changes no file that stays, only proto/'s own mtime: back-dating a
    // directory whose entries changed would hide it from cargo.
    world.git(&["checkout", "-q", "-b", "extra-proto", "base"]);
    std::fs::write(world.repo().join("proto/extra.proto"), "syntax = \"proto3\";\n").unwrap();
    let with_extra = world.commit_all("add proto/extra.proto");
    world.git(&["rm", "-q", "proto/extra.proto"]);
    let without = world.commit_all("remove proto/extra.proto");

    // As on CI (and as rust-cache sets it): no incremental state, which a snapshot leaves out.
    let env = [("CARGO_INCREMENTAL", "0")];
    core(&world, "cache-a", &with_extra, &warm, &env);
    let fresh = compiled_by(&world, "cache-b", || {
        let b = core(&world, "cache-b", &without, &warm, &env);
        assert!(b.contains("warm state: restored the exact snapshot"), "{b}");
    });
    let mut a = String::new();
    let same_machine = compiled_by(&world, "cache-a", || {
        let extra = ["--warm-state", "--sccache", "never", "--jobs", "1", "--explain-rebuild"];
        a = core(&world, "cache-a", &without, &extra, &env);
    });
    assert!(same_machine.contains_key("tasker-shared"), "the build script reran: {same_machine:?}");
    assert_eq!(fresh, same_machine, "{a}");
}

#[test]
fn a_path_checkout_builds_in_the_target_dir_its_repositorys_commits_warmed() {
    let world = World::new();
    // The same machine builds a commit, then a checkout of it with one file edited.
    core(&world, "cache", "ctl-only", &["--sccache", "never"], &[]);
    assert!(compiled(&world, "cache").contains_key("itoa"));
    let co = world.dir.path().join("checkout");
    git_in(world.dir.path(), &["clone", "-q", world.repo().to_str().unwrap(), co.to_str().unwrap()]);
    git_in(&co, &["checkout", "-q", "ctl-only"]);
    let main_rs = co.join("crates/tasker-ctl/src/main.rs");
    let text = std::fs::read_to_string(&main_rs).unwrap();
    std::fs::write(&main_rs, text.replace("\"ctl-2\"", "\"ctl-local\"")).unwrap();

    let by_path = compiled_by(&world, "cache", || {
        let (recipe, out, repo) = (fixture_recipe(), world.out("out-path"), world.repo());
        let args = [
            "core",
            "--repo",
            repo.to_str().unwrap(),
            "--path",
            co.to_str().unwrap(),
            "--recipe",
            recipe.to_str().unwrap(),
            "--targets",
            BINARIES,
            "--out",
            out.to_str().unwrap(),
            "--sccache",
            "never",
        ];
        assert_ok(&world.tbuild(&args));
    });
    // --path used the commit's work dir and target dir: only the edited crate compiled.
    assert_eq!(by_path, BTreeMap::from([("tasker-ctl".to_string(), 1)]));
    let ctl = world.out("out-path").join("tasker-core-binaries/tasker-ctl");
    assert_eq!(run_binary(&ctl), "tasker-ctl ctl-local shared-1");
}

#[test]
fn explain_rebuild_names_the_first_stale_item_of_each_dirty_unit() {
    let world = World::new();
    core(&world, "cache", "python-only", &["--sccache", "never"], &[]);
    // proto-change edits proto/tasker.proto, which tasker-shared's build script watches
    // through its `proto` symlink: the build script reruns and everything above it compiles.
    let err = core(&world, "cache", "proto-change", &["--sccache", "never", "--explain-rebuild"], &[]);
    assert!(
        err.contains(
            "tasker-shared v0.1.0 build script run: changed file crates/tasker-shared/proto \
             (newer than target/debug/build/tasker-shared-"
        ),
        "{err}"
    );
    let summary = err.lines().find(|l| l.contains("cargo found")).expect("a summary line");
    assert!(summary.contains("because a dependency was rebuilt, 0 never built here"), "{summary}");
    // Without the flag, no fingerprint log and no explanation.
    let quiet = core(&world, "cache", "base", &["--sccache", "never"], &[]);
    assert!(!quiet.contains("cargo found"), "{quiet}");
}

/// What the builds of `run` compiled in cache dir `cache` (see [`compiled`]).
fn compiled_by(world: &World, cache: &str, run: impl FnOnce()) -> BTreeMap<String, usize> {
    let before = compiled(world, cache);
    run();
    let mut after = compiled(world, cache);
    for (name, n) in before {
        let left = after[&name] - n;
        if left == 0 {
            after.remove(&name);
        } else {
            after.insert(name, left);
        }
    }
    after
}

/// How many itoa libraries the snapshots of cache dir `cache` hold (each snapshot is stored
/// under two keys naming one archive: those must agree).
fn itoa_rlibs(world: &World, cache: &str) -> usize {
    let snapshots: Vec<_> =
        records(&world.dir.path().join(cache)).into_iter().filter(|r| r["target"] == "warm-state").collect();
    assert_eq!(snapshots.len(), 2, "an exact key and today's alias");
    assert_eq!(snapshots[0]["artifact_digest"], snapshots[1]["artifact_digest"]);
    let files = snapshots[0]["files"].as_array().unwrap();
    let rlib = |f: &&serde_json::Value| {
        let path = f["path"].as_str().unwrap();
        path.starts_with("target/debug/deps/libitoa-") && path.ends_with(".rlib")
    };
    files.iter().filter(rlib).count()
}

#[test]
fn a_broken_sccache_on_path_warns_and_the_build_succeeds() {
    let world = World::new();
    let bin = world.dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let fake = bin.join("sccache");
    std::fs::write(&fake, "#!/bin/sh\necho 'sccache: broken on purpose' >&2\nexit 3\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let err = core(&world, "cache", "base", &[], &[("PATH", path.as_str())]);
    assert_eq!(err.matches("does not work").count(), 1, "one warning: {err}");
    assert!(err.contains(&format!("sccache at {} does not work", fake.display())), "{err}");
}

#[test]
fn a_working_sccache_wraps_rustc_with_the_remote_mapped_onto_its_storage() {
    let world = World::new();
    let bin = world.dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let calls = world.dir.path().join("sccache-calls");
    // A stand-in that works: probes succeed, compiles run the real rustc and are logged
    // with the storage settings sccache would use.
    let script = format!(
        "#!/bin/sh\ncase \"$1\" in --version|--start-server|--show-stats) exit 0;; esac\n\
         echo \"bucket=$SCCACHE_BUCKET prefix=$SCCACHE_S3_KEY_PREFIX $*\" >> {}\nexec \"$@\"\n",
        calls.display()
    );
    let fake = bin.join("sccache");
    std::fs::write(&fake, script).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    // The S3 remote itself is unreachable (port 9): tbuild warns and builds locally.
    let remote = ["--sccache", "always", "--remote", "s3://bucket/ci", "--s3-endpoint", "http://127.0.0.1:9"];
    let env =
        [("PATH", path.as_str()), ("AWS_ACCESS_KEY_ID", "x"), ("AWS_SECRET_ACCESS_KEY", "x"), ("AWS_REGION", "x")];
    let err = core(&world, "cache", "base", &remote, &env);
    assert!(err.contains(&format!("compiling through sccache ({})", fake.display())), "{err}");
    let calls = std::fs::read_to_string(calls).unwrap();
    assert!(calls.lines().any(|l| l.contains("--crate-name tasker_ctl")), "{calls}");
    assert!(calls.lines().all(|l| l.starts_with("bucket=bucket prefix=ci/sccache ")), "{calls}");
}

#[test]
fn incremental_state_goes_into_a_snapshot_on_request_and_split_debuginfo_never_does() {
    let world = World::new();
    let nginx = Nginx::start(&world.dir.path().join("nginx"));
    let url = nginx.url();
    let warm = ["--warm-state", "--warm-state-incremental", "--remote", url.as_str(), "--sccache", "never"];
    // As tasker-core's Cargo.toml sets it: a `.dwo` beside every object in deps/.
    let env = [("CARGO_PROFILE_DEV_SPLIT_DEBUGINFO", "unpacked")];
    let [path, aside_a, aside_b] = ["cache", "cache-a", "cache-b"].map(|c| world.dir.path().join(c));

    // Machine A builds base and saves a snapshot with rustc's incremental state.
    let a = core(&world, "cache", "base", &warm, &env);
    assert!(a.contains("warm state: snapshot saved"), "{a}");
    assert!(!target_files(&path, "debug/deps", ".dwo").is_empty(), "A's build wrote split debuginfo");
    let files = snapshot_files(&path);
    assert!(files.iter().any(|f| f.starts_with("target/debug/incremental/tasker_shared-")), "{files:?}");
    assert!(!files.iter().any(|f| f.starts_with("target/debug/deps/") && f.ends_with(".dwo")), "{files:?}");

    // A fresh machine at the same cache dir path (as on CI runners) restores it and builds
    // ctl-only: tasker-ctl alone compiles; tasker-shared's incremental state is there for
    // its next edit, though tasker-shared did not compile here.
    std::fs::rename(&path, &aside_a).unwrap();
    let fresh = compiled_by(&world, "cache", || {
        let b = core(&world, "cache", "ctl-only", &warm, &env);
        assert!(b.contains("warm state: restored the exact snapshot"), "{b}");
    });
    assert_eq!(fresh, BTreeMap::from([("tasker-ctl".to_string(), 1)]));
    let incremental = target_files(&path, "debug/incremental", "");
    assert!(incremental.iter().any(|d| d.starts_with("tasker_shared-")), "{incremental:?}");
    let dwo = target_files(&path, "debug/deps", ".dwo");
    assert!(dwo.iter().all(|f| f.starts_with("tasker_ctl-")), "only the crate compiled here has them: {dwo:?}");

    // The same machine, same commit: the same list.
    std::fs::rename(&path, &aside_b).unwrap();
    std::fs::rename(&aside_a, &path).unwrap();
    let same_machine = compiled_by(&world, "cache", || {
        core(&world, "cache", "ctl-only", &["--warm-state", "--warm-state-incremental", "--sccache", "never"], &env);
    });
    assert_eq!(fresh, same_machine);
}

/// The paths in the warm-state snapshot of cache dir `cache` (both keys name one archive).
fn snapshot_files(cache: &std::path::Path) -> Vec<String> {
    let snapshot = records(cache).into_iter().find(|r| r["target"] == "warm-state").expect("a snapshot");
    snapshot["files"].as_array().unwrap().iter().map(|f| f["path"].as_str().unwrap().to_string()).collect()
}

/// Names in `<cargo target dir>/<dir>` of cache dir `cache` that end with `suffix`.
fn target_files(cache: &std::path::Path, dir: &str, suffix: &str) -> Vec<String> {
    let repos = std::fs::read_dir(cache.join("repos")).unwrap().map(|e| e.unwrap().path());
    let mut names = Vec::new();
    for repo in repos {
        for entry in std::fs::read_dir(repo.join("cargo-target").join(dir)).into_iter().flatten() {
            let name = entry.unwrap().file_name().to_string_lossy().into_owned();
            if name.ends_with(suffix) {
                names.push(name);
            }
        }
    }
    names
}
