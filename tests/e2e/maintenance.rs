//! `tbuild cache dir | ls | du | verify | gc | clean` on real caches filled by `tbuild core`.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, SystemTime};

use serde_json::Value;

use crate::support::*;

const DAY: Duration = Duration::from_secs(86_400);

fn record_path(cache: &Path, key: &str) -> PathBuf {
    cache.join(format!("v1/actions/{}/{key}.json", &key[..2]))
}

fn blob_path(cache: &Path, digest: &str) -> PathBuf {
    cache.join(format!("v1/blobs/{}/{digest}.tar.zst", &digest[..2]))
}

/// Makes `key`'s entry look last used `ago` (its record's mtime is its last use).
fn set_last_use(cache: &Path, key: &str, ago: Duration) {
    let file = File::options().write(true).open(record_path(cache, key)).unwrap();
    file.set_modified(SystemTime::now() - ago).unwrap();
}

fn mtime_age(path: &Path) -> Duration {
    std::fs::metadata(path).unwrap().modified().unwrap().elapsed().unwrap_or_default()
}

/// The size gc counts for an entry: its record plus its archive.
fn entry_bytes(cache: &Path, manifest: &Value, target: &str) -> u64 {
    let t = &manifest["targets"][target];
    let record = std::fs::metadata(record_path(cache, t["key"].as_str().unwrap())).unwrap().len();
    let blob = std::fs::metadata(blob_path(cache, t["artifact_digest"].as_str().unwrap())).unwrap().len();
    record + blob
}

/// `tbuild cache ls --json`: target -> entry.
fn ls(world: &World) -> BTreeMap<String, Value> {
    let output = world.tbuild(&["cache", "ls", "--json"]);
    assert_ok(&output);
    let entries: Vec<Value> = serde_json::from_slice(&output.stdout).unwrap();
    entries.into_iter().map(|e| (e["target"].as_str().unwrap().to_string(), e)).collect()
}

fn json_out(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&output.stdout)))
}

fn blob_count(cache: &Path) -> usize {
    walk_files(&cache.join("v1/blobs")).len()
}

fn walk_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return found };
    for entry in entries.flatten() {
        if entry.file_type().unwrap().is_dir() {
            found.extend(walk_files(&entry.path()));
        } else {
            found.push(entry.path());
        }
    }
    found
}

#[test]
fn hits_record_last_use_and_gc_evicts_least_recently_used_first() {
    let world = World::new();
    let cache = world.cache();
    let built = world.core("main", "out");
    let key = |t: &str| built["targets"][t]["key"].as_str().unwrap().to_string();
    set_last_use(&cache, &key("tasker-ctl"), 3 * DAY);
    set_last_use(&cache, &key("tasker-server"), 2 * DAY);
    set_last_use(&cache, &key("tasker-worker"), DAY);

    // A hit refreshes its record's mtime, and only the mtime.
    let before = std::fs::read(record_path(&cache, &key("tasker-ctl"))).unwrap();
    assert_eq!(statuses(&world.core_targets("main", "hit", "tasker-ctl"))["tasker-ctl"], "hit");
    assert!(mtime_age(&record_path(&cache, &key("tasker-ctl"))) < Duration::from_secs(600));
    assert_eq!(std::fs::read(record_path(&cache, &key("tasker-ctl"))).unwrap(), before, "records are never rewritten");
    assert!(mtime_age(&record_path(&cache, &key("tasker-server"))) > DAY, "entries not hit keep their last use");

    // Least recently used now: server (2 days), worker (1 day), ctl (just hit). A limit that
    // holds exactly two entries evicts the server only.
    let limit = entry_bytes(&cache, &built, "tasker-ctl") + entry_bytes(&cache, &built, "tasker-worker");
    let output = world.tbuild(&["cache", "gc", "--max-size", &format!("{limit}B"), "--json"]);
    assert_ok(&output);
    let report = json_out(&output);
    let evicted: Vec<&str> =
        report["evicted"].as_array().unwrap().iter().map(|e| e["target"].as_str().unwrap()).collect();
    assert_eq!(evicted, ["tasker-server"]);
    assert_eq!(report["kept_bytes"], limit);
    assert_eq!(ls(&world).keys().collect::<Vec<_>>(), ["tasker-ctl", "tasker-worker"]);
    let server_blob = blob_path(&cache, built["targets"]["tasker-server"]["artifact_digest"].as_str().unwrap());
    assert!(!server_blob.exists(), "the evicted entry's archive is swept");
    assert_eq!(blob_count(&cache), 2);

    // --max-age: the worker was last used a day ago, the ctl just now.
    let output = world.tbuild(&["cache", "gc", "--max-age", "12h"]);
    assert_ok(&output);
    assert!(stderr(&output).contains("evicted 1 entries"), "{}", stderr(&output));
    assert_eq!(ls(&world).keys().collect::<Vec<_>>(), ["tasker-ctl"]);
    assert_eq!(blob_count(&cache), 1);
    assert_ok(&world.tbuild(&["cache", "verify"]));

    // What gc evicted is rebuilt, what it kept is restored (into a new --out: into "out" the
    // repeat would be a no-op, its outputs being in place).
    let s = statuses(&world.core("main", "out-after-gc"));
    assert_eq!(
        (s["tasker-ctl"].as_str(), s["tasker-server"].as_str(), s["tasker-worker"].as_str()),
        ("hit", "built", "built")
    );
}

#[test]
fn gc_removes_unreferenced_archives_and_stale_temp_files_and_dry_run_removes_nothing() {
    let world = World::new();
    let cache = world.cache();
    world.core_targets("main", "out", "tasker-ctl");
    let orphan = blob_path(&cache, &"ab".repeat(32));
    std::fs::create_dir_all(orphan.parent().unwrap()).unwrap();
    std::fs::write(&orphan, b"no record points here").unwrap();
    let stale = cache.join("v1/tmp/.tmp-left-by-a-crash");
    let fresh = cache.join("v1/tmp/.tmp-being-written");
    std::fs::write(&stale, b"x").unwrap();
    std::fs::write(&fresh, b"y").unwrap();
    File::options()
        .write(true)
        .open(&stale)
        .unwrap()
        .set_modified(SystemTime::now() - 2 * 3600 * Duration::from_secs(1))
        .unwrap();

    let dry = json_out(&world.tbuild(&["cache", "gc", "--max-size", "0", "--dry-run", "--json"]));
    assert_eq!(dry["evicted"].as_array().unwrap().len(), 1);
    assert_eq!((dry["orphan_archives"].as_u64(), dry["temp_files"].as_u64()), (Some(1), Some(1)));
    assert!(orphan.exists() && stale.exists() && ls(&world).len() == 1, "a dry run removes nothing");

    let report = json_out(&world.tbuild(&["cache", "gc", "--json"]));
    assert_eq!(report["evicted"].as_array().unwrap().len(), 0, "no limits: no entry is evicted");
    assert_eq!((report["orphan_archives"].as_u64(), report["temp_files"].as_u64()), (Some(1), Some(1)));
    assert!(!orphan.exists() && !stale.exists());
    assert!(fresh.exists(), "a temp file a live writer may own is kept");
    assert_eq!(ls(&world).len(), 1);

    // --prune-target-dirs empties the warm cargo dirs, counted in the report.
    let report = json_out(&world.tbuild(&["cache", "gc", "--prune-target-dirs", "--json"]));
    let pruned = report["target_dirs"].as_array().unwrap();
    assert_eq!(pruned.len(), 1);
    assert!(pruned[0]["bytes"].as_u64().unwrap() > 1_000_000);
    assert!(!Path::new(pruned[0]["path"].as_str().unwrap()).exists());
    let rebuilt = world.core_targets("main", "out", "tasker-ctl");
    assert_eq!(statuses(&rebuilt)["tasker-ctl"], "hit", "pruning build dirs keeps the entries");
}

#[test]
fn gc_running_during_core_breaks_neither() {
    let world = World::new();
    world.core("main", "out");
    for round in 0..3 {
        let out = format!("out{round}");
        let args = world.core_args("main", &out, BINARIES);
        let mut core = world
            .command(&args.iter().map(String::as_str).collect::<Vec<_>>(), &[])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Evict everything not in use, over and over, while the run restores or rebuilds.
        let mut gc_args = vec!["cache", "gc", "--max-size", "0"];
        if round == 2 {
            gc_args.push("--prune-target-dirs");
        }
        let mut gcs = 0;
        let started = std::time::Instant::now();
        let core = loop {
            assert_ok(&world.tbuild(&gc_args));
            gcs += 1;
            if gcs >= 2 && core.try_wait().unwrap().is_some() {
                break core.wait_with_output().unwrap();
            }
            assert!(started.elapsed() < Duration::from_secs(600), "core did not finish");
            std::thread::sleep(Duration::from_millis(20));
        };
        assert_ok(&core);
        let manifest: Value = serde_json::from_slice(&core.stdout).unwrap();
        assert!(statuses(&manifest).values().all(|s| s == "hit" || s == "built"), "{manifest}");
        let bins = world.out(&out).join("tasker-core-binaries");
        assert_eq!(run_binary(&bins.join("tasker-ctl")), "tasker-ctl ctl-2 shared-2");
        assert_eq!(run_binary(&bins.join("tasker-worker")), "tasker-worker worker-1 shared-2");
        // Whatever survived is whole: no record points at a missing or wrong archive.
        assert_ok(&world.tbuild(&["cache", "verify"]));
    }
}

#[test]
fn verify_finds_a_corrupted_archive_and_fix_removes_it() {
    let world = World::new();
    let cache = world.cache();
    let built = world.core_targets("main", "out", "tasker-ctl,tasker-server");
    assert_ok(&world.tbuild(&["cache", "verify"]));
    let ctl = &built["targets"]["tasker-ctl"];
    let blob = blob_path(&cache, ctl["artifact_digest"].as_str().unwrap());
    let mut bytes = std::fs::read(&blob).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&blob, bytes).unwrap();

    let output = world.tbuild(&["cache", "verify"]);
    assert_eq!(output.status.code(), Some(7), "corruption is exit 7: {}", stderr(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains(&format!("corrupt archive {}: its content hashes to", blob.display())), "{stdout}");
    assert!(stdout.contains("corrupt record of tasker-ctl") && stdout.contains("its archive is corrupt"), "{stdout}");
    assert!(!stdout.contains("tasker-server"), "the sound entry is not reported: {stdout}");
    assert!(stderr(&output).contains("2 corrupt cache files found"), "{}", stderr(&output));
    assert!(blob.exists(), "without --fix nothing is removed");

    let output = world.tbuild(&["cache", "verify", "--fix", "--json"]);
    assert_eq!(output.status.code(), Some(7));
    let report = json_out(&output);
    let problems = report["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 2);
    assert!(problems.iter().all(|p| p["removed"] == true));
    assert!(!blob.exists() && !record_path(&cache, ctl["key"].as_str().unwrap()).exists());
    assert_ok(&world.tbuild(&["cache", "verify"]));
    assert_eq!(ls(&world).keys().collect::<Vec<_>>(), ["tasker-server"]);
}

#[test]
fn ls_and_du_describe_the_cache() {
    let world = World::new();
    let cache = world.cache();
    let output = world.tbuild(&["cache", "dir"]);
    assert_ok(&output);
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), cache.to_str().unwrap());

    let built = world.core_targets("main", "out", "tasker-ctl");
    let entries = ls(&world);
    let entry = &entries["tasker-ctl"];
    let record: Value =
        serde_json::from_slice(&std::fs::read(record_path(&cache, entry["key"].as_str().unwrap())).unwrap()).unwrap();
    assert_eq!(entry["key"], built["targets"]["tasker-ctl"]["key"]);
    assert_eq!(entry["artifact_digest"], built["targets"]["tasker-ctl"]["artifact_digest"]);
    assert_eq!(entry["provenance"], built["sha"]);
    assert_eq!(entry["size"], record["artifact_size"]);
    assert_eq!(entry["created_at"], record["created_at"]);
    assert_eq!(entry["files"], 1);
    let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs();
    let last_used = entry["last_used"].as_u64().unwrap();
    assert!(last_used >= record["created_at"].as_u64().unwrap() && last_used <= now);
    let table = world.tbuild(&["cache", "ls"]);
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(table.contains("tasker-ctl") && table.contains(&entry["key"].as_str().unwrap()[..12]), "{table}");

    let du = json_out(&world.tbuild(&["cache", "du", "--json"]));
    let kinds =
        ["records", "archives", "memo", "logs", "temp", "git_mirrors", "cargo_target_dirs", "work_dirs", "other"];
    let sum: u64 = kinds.iter().map(|k| du[k].as_u64().unwrap_or_else(|| panic!("du has {k}"))).sum();
    assert_eq!(du["total"].as_u64(), Some(sum));
    assert_eq!(
        du["archives"].as_u64(),
        Some(std::fs::metadata(blob_path(&cache, entry["artifact_digest"].as_str().unwrap())).unwrap().len())
    );
    for kind in ["records", "memo", "logs", "git_mirrors", "cargo_target_dirs", "work_dirs"] {
        assert!(du[kind].as_u64().unwrap() > 0, "{kind} is counted: {du}");
    }
}

#[test]
fn clean_is_refused_while_a_tbuild_uses_the_cache_and_all_keeps_nothing() {
    let world = World::new();
    let cache = world.cache();
    world.core_targets("main", "out", "tasker-ctl");
    let repo_dir = std::fs::read_dir(cache.join("repos")).unwrap().next().unwrap().unwrap().path();

    // What a running tbuild holds for its whole run.
    let in_use = File::open(cache.join("tbuild.lock")).unwrap();
    in_use.lock_shared().unwrap();
    let output = world.tbuild(&["cache", "clean"]);
    assert_eq!(output.status.code(), Some(7));
    assert!(stderr(&output).contains("another tbuild is using the cache dir"), "{}", stderr(&output));
    assert_eq!(ls(&world).len(), 1, "nothing was removed");
    drop(in_use);

    assert_ok(&world.tbuild(&["cache", "clean"]));
    assert!(ls(&world).is_empty());
    assert!(repo_dir.join("mirror.git").is_dir(), "clean keeps the git mirrors");
    assert!(!repo_dir.join("cargo-target").exists() && !repo_dir.join("work").exists());
    let again = world.core_targets("main", "out", "tasker-ctl");
    assert_eq!(statuses(&again)["tasker-ctl"], "built");

    assert_ok(&world.tbuild(&["cache", "clean", "--all"]));
    let left: Vec<String> =
        std::fs::read_dir(&cache).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    let mut left = left;
    left.sort();
    assert_eq!(left, ["CACHEDIR.TAG", "tbuild.lock"]);
}
