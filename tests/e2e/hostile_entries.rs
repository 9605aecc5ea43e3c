//! Hostile entries that must never wedge a run, crafted by hand the way an attacker with
//! write access would (tar + zstd after cache-layout.md, a record whose digests and sizes
//! agree with it, signed with the key when the remote is signed): layouts that cannot be
//! unpacked (a file that is also a parent dir, a link under a file, two links on one name),
//! an archive a restore refuses, and an honest record listing more than --max-entry-size.
//!
//! Each case runs through every link mode and both tiers (the local cache, and a signed
//! nginx WebDAV remote on 127.0.0.1), and each run must: exit 0 having rebuilt, leave
//! nothing outside --out and the cache created, changed or deleted, and leave no link in
//! --out that resolves outside it; the next run then exits 0 with the right bytes. `cache
//! verify` must report each planted entry (exit 7) and `verify --fix` remove it. Last, two
//! writers with different signing keys share a remote: the wrong key never evicts the
//! trusted entry.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Output;

use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::remote_servers::Nginx;
use crate::support::*;

const CTL: &str = "tasker-core-binaries/tasker-ctl";
const LINK_MODES: [&str; 3] = ["copy", "hardlink", "reflink"];
/// `--max-entry-size` of every run here: above the fixture's tasker-ctl, below the bomb.
const CAP: u64 = 48 << 20;
const BOMB: u64 = 64 << 20;

/// One member of a crafted archive.
enum Member {
    File(&'static str, Vec<u8>),
    /// A file of `size` zero bytes (compresses to almost nothing).
    Zeros(&'static str, u64),
    Link(&'static str, &'static str),
}

/// The cases: name, members in archive order, and what the refusal must mention. A layout
/// case may be refused as the archive unpacks ("refused") or already when its record's
/// `files` are validated ("corrupt"): both warnings end "dropped, rebuilding".
fn cases() -> Vec<(&'static str, Vec<Member>, &'static str)> {
    use Member::*;
    vec![
        (
            "file_is_a_parent",
            vec![
                File(CTL, b"#!/bin/sh\necho evil\n".to_vec()),
                File("tasker-core-binaries/tasker-ctl/x", b"x".to_vec()),
            ],
            "dropped, rebuilding",
        ),
        (
            "link_under_a_file",
            vec![File("tasker-core-binaries/a", b"a".to_vec()), Link("tasker-core-binaries/a/l", "x")],
            "dropped, rebuilding",
        ),
        ("two_links_one_name", vec![Link(CTL, "tasker-worker"), Link(CTL, "tasker-server")], "dropped, rebuilding"),
        ("escaping_link", vec![Link(CTL, "../../../escaped")], "dropped, rebuilding"),
        ("disk_bomb", vec![Zeros(CTL, BOMB)], "--max-entry-size"),
    ]
}

/// The archive of `members` (GNU tar headers, zstd) and the `files` list its record gives.
fn craft(members: &[Member]) -> (Vec<u8>, Vec<Value>) {
    let mut tar = tar::Builder::new(Vec::new());
    let mut files = Vec::new();
    for member in members {
        let mut header = tar::Header::new_gnu();
        header.set_mtime(0);
        match member {
            File(path, bytes) => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_mode(0o755);
                header.set_size(bytes.len() as u64);
                tar.append_data(&mut header, path, bytes.as_slice()).unwrap();
                let digest = blake3::hash(bytes).to_hex().to_string();
                files.push(json!({"path": path, "mode": 493, "size": bytes.len(), "digest": digest}));
            }
            Zeros(path, size) => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_mode(0o755);
                header.set_size(*size);
                tar.append_data(&mut header, path, std::io::repeat(0).take(*size)).unwrap();
                let mut hasher = blake3::Hasher::new();
                std::io::copy(&mut std::io::repeat(0).take(*size), &mut hasher).unwrap();
                files.push(
                    json!({"path": path, "mode": 493, "size": size, "digest": hasher.finalize().to_hex().to_string()}),
                );
            }
            Link(path, target) => {
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_mode(0o777);
                header.set_size(0);
                tar.append_link(&mut header, path, target).unwrap();
                files.push(json!({"path": path, "mode": 511, "size": 0, "link": target}));
            }
        }
    }
    let archive = zstd::encode_all(tar.into_inner().unwrap().as_slice(), 3).unwrap();
    files.sort_by(|a, b| a["path"].as_str().cmp(&b["path"].as_str()));
    (archive, files)
}
use Member::{File, Link, Zeros};

/// An action record for ARCHIVE, fields in the order tbuild writes them (the signature
/// covers the record as tbuild serialises it).
fn record(key: &str, archive: &[u8], files: Vec<Value>) -> Value {
    json!({
        "format": 1, "target": "tasker-ctl", "key": key,
        "artifact_digest": blake3::hash(archive).to_hex().to_string(), "artifact_size": archive.len(),
        "files": files, "build_duration_ms": 1, "provenance": "planted", "toolchain": "x", "created_at": 0
    })
}

fn plant_local(cache: &Path, key: &str, archive: &[u8], record: &Value) {
    let digest = record["artifact_digest"].as_str().unwrap();
    let blob = cache.join(format!("v1/blobs/{}/{digest}.tar.zst", &digest[..2]));
    std::fs::create_dir_all(blob.parent().unwrap()).unwrap();
    std::fs::write(&blob, archive).unwrap();
    let action = cache.join(format!("v1/actions/{}/{key}.json", &key[..2]));
    std::fs::create_dir_all(action.parent().unwrap()).unwrap();
    std::fs::write(&action, serde_json::to_vec(record).unwrap()).unwrap();
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// `hmac-sha256:` over the remote record as cache-layout.md describes it.
fn sign(signing_key: &str, record: &Value, archive_sha256: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(signing_key.as_bytes()).unwrap();
    mac.update(b"tbuild remote record v2\0");
    mac.update(archive_sha256.as_bytes());
    mac.update(b"\0");
    mac.update(&serde_json::to_vec(record).unwrap());
    let tag = mac.finalize().into_bytes();
    format!("hmac-sha256:{}", hex::encode(tag))
}

fn plant_remote(nginx: &Nginx, key: &str, archive: &[u8], record: &Value, signing_key: &str) {
    let sha256 = sha256_hex(archive);
    let remote = json!({
        "format": 2, "record": record, "archive_sha256": sha256, "signature": sign(signing_key, record, &sha256)
    });
    let cache = nginx.data.join("cache");
    std::fs::create_dir_all(cache.join("ac")).unwrap();
    std::fs::create_dir_all(cache.join("cas")).unwrap();
    std::fs::write(cache.join("ac").join(key), serde_json::to_vec(&remote).unwrap()).unwrap();
    std::fs::write(cache.join("cas").join(&sha256), archive).unwrap();
}

/// How a run is made: which cache dir, link mode, remote and signing key.
struct Run<'a> {
    world: &'a World,
    cache: &'a str,
    remote: Option<(&'a str, &'a str)>,
}

impl Run<'_> {
    fn core(&self, out: &str, link_mode: &str) -> Output {
        let args = self.world.core_args("main", out, "tasker-ctl");
        let mut args: Vec<&str> = args.iter().map(String::as_str).collect();
        args.extend(["--link-mode", link_mode]);
        self.tbuild(&args)
    }

    fn tbuild(&self, args: &[&str]) -> Output {
        let mut args = args.to_vec();
        if let Some((url, _)) = self.remote
            && args[0] == "core"
        {
            args.extend(["--remote", url]);
        }
        let mut command = self.world.command(&args, &[]);
        for var in
            ["TBUILD_REMOTE", "TBUILD_SIGNING_KEY", "TBUILD_REMOTE_TOKEN", "TBUILD_REMOTE_REQUIRED", "TBUILD_LINK_MODE"]
        {
            command.env_remove(var);
        }
        if let Some((_, key)) = self.remote {
            command.env("TBUILD_SIGNING_KEY", key);
        }
        command.env("TBUILD_MAX_ENTRY_SIZE", format!("{CAP}B"));
        command.env("TBUILD_CACHE_DIR", self.world.dir.path().join(self.cache)).output().unwrap()
    }

    fn cache_dir(&self) -> PathBuf {
        self.world.dir.path().join(self.cache)
    }
}

/// Path -> (kind, size, mtime, link target) of everything under ROOT but the SKIPPED
/// top-level names: what a run must leave alone.
fn fingerprint(root: &Path, skipped: &dyn Fn(&str) -> bool) -> BTreeMap<PathBuf, String> {
    let mut seen = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let rel = path.strip_prefix(root).unwrap().to_path_buf();
            let top = rel.components().next().unwrap().as_os_str().to_string_lossy().into_owned();
            if skipped(&top) {
                continue;
            }
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let link = std::fs::read_link(&path).ok();
            seen.insert(rel, format!("{:?} {} {:?} {link:?}", meta.file_type(), meta.len(), meta.modified().ok()));
            if meta.is_dir() {
                stack.push(path);
            }
        }
    }
    seen
}

/// Every symlink under OUT that resolves must resolve inside it.
fn assert_links_stay_inside(out: &Path, case: &str) {
    let real_out = out.canonicalize().unwrap();
    let mut stack = vec![out.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            if meta.is_dir() {
                stack.push(path);
            } else if meta.file_type().is_symlink()
                && let Ok(resolved) = path.canonicalize()
            {
                assert!(
                    resolved.starts_with(&real_out),
                    "{case}: {} resolves to {}",
                    path.display(),
                    resolved.display()
                );
            }
        }
    }
}

/// One hostile run and the run after it: rebuilt, nothing outside touched, right bytes.
fn assert_rebuilt_then_hit(run: &Run, case: &str, expected: &str, out: &str, mode: &str, good: &str) {
    let world = run.world;
    let skipped = |top: &str| top.starts_with("cache") || top.starts_with("out-") || top == "nginx";
    let before = fingerprint(world.dir.path(), &skipped);
    let first = run.core(out, mode);
    let err = stderr(&first);
    assert!(first.status.success(), "{case} {mode}: exit {:?}: {err}", first.status.code());
    assert!(err.contains("tasker-ctl") && err.contains(expected), "{case} {mode}: a clear message: {err}");
    let manifest: Value = serde_json::from_slice(&first.stdout).unwrap();
    assert_eq!(manifest["targets"]["tasker-ctl"]["status"], "built", "{case} {mode}: {err}");
    assert!(
        err.contains("1 target: 0 restored, 1 built"),
        "{case} {mode}: a refused entry is not counted as restored: {err}"
    );
    if run.remote.is_some() {
        assert!(err.contains(": 0 restored, 1 refused"), "{case} {mode}: the remote line counts it refused: {err}");
    }
    assert_eq!(fingerprint(world.dir.path(), &skipped), before, "{case} {mode}: something outside --out changed");
    assert!(!world.dir.path().join("escaped").exists(), "{case} {mode}");
    assert_links_stay_inside(&world.out(out), case);
    assert_eq!(run_binary(&world.out(out).join(CTL)), good, "{case} {mode}");

    let next = run.core(&format!("{out}-next"), mode);
    assert!(next.status.success(), "{case} {mode}: the next run is not wedged: {}", stderr(&next));
    let manifest: Value = serde_json::from_slice(&next.stdout).unwrap();
    assert_eq!(manifest["targets"]["tasker-ctl"]["status"], "hit", "{case} {mode}: {}", stderr(&next));
    assert_eq!(run_binary(&world.out(&format!("{out}-next")).join(CTL)), good, "{case} {mode}");
}

/// The key of tasker-ctl at main, and its built bytes' output, from a first build in RUN.
fn first_build(run: &Run) -> (String, String) {
    let keys = run.world.keys_of("main", "tasker-ctl");
    let built = run.core("out-first", "copy");
    assert_ok(&built);
    let ctl = run.world.out("out-first").join(CTL);
    assert!(std::fs::metadata(&ctl).unwrap().len() < CAP, "the fixture's tasker-ctl must fit under the cap");
    (keys["tasker-ctl"].clone(), run_binary(&ctl))
}

#[test]
fn hostile_local_entries_are_refused_rebuilt_and_reported_by_verify_in_every_link_mode() {
    let world = World::new();
    let run = Run { world: &world, cache: "cache", remote: None };
    let (key, good) = first_build(&run);
    for (case, members, expected) in cases() {
        let (archive, files) = craft(&members);
        let record = record(&key, &archive, files);
        for mode in LINK_MODES {
            plant_local(&run.cache_dir(), &key, &archive, &record);
            assert_rebuilt_then_hit(&run, case, expected, &format!("out-{case}-{mode}"), mode, &good);
        }
        // verify finds the planted entry, --fix removes it, and then all is sound.
        plant_local(&run.cache_dir(), &key, &archive, &record);
        let verify = run.tbuild(&["cache", "verify"]);
        assert_eq!(verify.status.code(), Some(7), "{case}: {}", stderr(&verify));
        let listed = String::from_utf8_lossy(&verify.stdout).into_owned();
        // Refused by the test-unpack, or already by the record's layout rules.
        let named =
            listed.contains(&key) && (listed.contains("a restore refuses it") || listed.contains("corrupt record"));
        assert!(named, "{case}: verify names the entry and why: {listed}");
        let fix = run.tbuild(&["cache", "verify", "--fix"]);
        assert_eq!(fix.status.code(), Some(7), "{case}: {}", stderr(&fix));
        assert!(String::from_utf8_lossy(&fix.stdout).contains("(removed)"), "{case}");
        let after = run.tbuild(&["cache", "verify"]);
        assert_ok(&after);
        assert!(!run.cache_dir().join(format!("v1/actions/{}/{key}.json", &key[..2])).exists(), "{case}");
        // The dropped entry is rebuilt by the next run, as any miss.
        let rebuilt = run.core(&format!("out-{case}-after-fix"), "copy");
        assert_ok(&rebuilt);
    }
}

#[test]
fn hostile_signed_remote_entries_are_refused_rebuilt_and_replaced_in_every_link_mode() {
    let world = World::new();
    let nginx = Nginx::start(&world.dir.path().join("nginx"));
    let url = nginx.url();
    let run = Run { world: &world, cache: "cache", remote: Some((&url, "trusted-key")) };
    let (key, good) = first_build(&run);
    let action = run.cache_dir().join(format!("v1/actions/{}/{key}.json", &key[..2]));
    let good_digest = records(&run.cache_dir())[0]["artifact_digest"].clone();
    for (case, members, expected) in cases() {
        let (archive, files) = craft(&members);
        let record = record(&key, &archive, files);
        for mode in LINK_MODES {
            // Signed with the trusted key (a leaked key, or a trusted writer gone bad): the
            // signature passes, the restore still refuses it.
            plant_remote(&nginx, &key, &archive, &record, "trusted-key");
            std::fs::remove_file(&action).unwrap();
            assert_rebuilt_then_hit(&run, case, expected, &format!("out-{case}-{mode}"), mode, &good);
            // The rebuild's upload replaced the poisoned record (it is signed with our key).
            let remote: Value =
                serde_json::from_slice(&std::fs::read(nginx.data.join("cache/ac").join(&key)).unwrap()).unwrap();
            assert_eq!(remote["record"]["artifact_digest"], good_digest, "{case} {mode}: the poison stayed");
        }
    }
}

#[test]
fn a_writer_with_the_wrong_signing_key_never_evicts_the_trusted_entry() {
    let world = World::new();
    let nginx = Nginx::start(&world.dir.path().join("nginx"));
    let url = nginx.url();
    let trusted = Run { world: &world, cache: "cache", remote: Some((&url, "trusted-key")) };
    let (key, good) = first_build(&trusted);
    let ac = nginx.data.join("cache/ac").join(&key);
    let trusted_record = std::fs::read(&ac).unwrap();

    // A pull request with another key: it cannot use the trusted entry (refused, rebuilt),
    // and its upload leaves the trusted record alone. Same local cache dir, entry dropped,
    // so that it reaches the remote and builds incrementally.
    let wrong = Run { world: &world, cache: "cache", remote: Some((&url, "pull-request-key")) };
    let action = wrong.cache_dir().join(format!("v1/actions/{}/{key}.json", &key[..2]));
    for round in 0..2 {
        std::fs::remove_file(&action).unwrap();
        let pr = wrong.core(&format!("out-pr-{round}"), "copy");
        assert_ok(&pr);
        let err = stderr(&pr);
        assert!(err.contains("does not match TBUILD_SIGNING_KEY"), "{err}");
        assert!(err.contains("not replaced") && err.contains("1 kept (signed with another key)"), "{err}");
        assert_eq!(std::fs::read(&ac).unwrap(), trusted_record, "round {round}: the trusted record was replaced");

        // A trusted reader with an empty local cache still hits it.
        let reader =
            Run { world: &world, cache: &format!("cache-reader-{round}"), remote: Some((&url, "trusted-key")) };
        let out = format!("out-reader-{round}");
        let hit = reader.core(&out, "copy");
        assert_ok(&hit);
        let manifest: Value = serde_json::from_slice(&hit.stdout).unwrap();
        assert_eq!(manifest["targets"]["tasker-ctl"]["source"], "remote", "{}", stderr(&hit));
        assert_eq!(run_binary(&world.out(&out).join(CTL)), good);
    }
}

#[test]
fn an_out_in_the_cache_a_target_named_dot_dot_and_a_full_out_are_refused_naming_the_fix() {
    let world = World::new();
    let run = Run { world: &world, cache: "cache", remote: None };
    let keys = world.keys_of("main", "tasker-ctl");
    let key = &keys["tasker-ctl"];
    // Files tbuild writes follow the umask, as any tool's do (they were 0600).
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let umask = u32::from_str_radix(status.lines().find_map(|l| l.strip_prefix("Umask:")).unwrap().trim(), 8).unwrap();
    use std::os::unix::fs::PermissionsExt;
    let tag = std::fs::metadata(run.cache_dir().join("CACHEDIR.TAG")).unwrap();
    assert_eq!(tag.permissions().mode() & 0o777, 0o666 & !umask);

    // --out inside the cache dir: the cache's temp sweep would delete it.
    let inside = run.core("cache/v1/tmp/out", "copy");
    assert_eq!(inside.status.code(), Some(2), "{}", stderr(&inside));
    assert!(stderr(&inside).contains("is inside the cache dir"), "{}", stderr(&inside));
    assert!(!run.cache_dir().join("v1/tmp/out").exists());

    // A target named `..` would put its log and staging dir one level up.
    let recipe = world.dir.path().join("dotdot.toml");
    std::fs::write(
        &recipe,
        "[[target]]\nname = \"..\"\nkind = \"command\"\nartifact_dir = \"x\"\ncommands = [\"true\"]\n",
    )
    .unwrap();
    let args = world.core_args_with("main", "out-dotdot", &["--recipe", recipe.to_str().unwrap()]);
    let dotdot = run.tbuild(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(dotdot.status.code(), Some(4), "{}", stderr(&dotdot));
    assert!(stderr(&dotdot).contains("not be `.` or `..`"), "{}", stderr(&dotdot));

    // A record listing more than --out's file system has free: refused before anything is
    // unpacked, naming the target and both sizes (rebuilding would not fit either).
    let (archive, _) = craft(&[File(CTL, b"small".to_vec())]);
    let huge = vec![json!({"path": CTL, "mode": 493, "size": 1u64 << 50, "digest": "0".repeat(64)})];
    plant_local(&run.cache_dir(), key, &archive, &record(key, &archive, huge));
    let args = world.core_args("main", "out-full", "tasker-ctl");
    let mut command = world.command(&args.iter().map(String::as_str).collect::<Vec<_>>(), &[]);
    let full = command.env("TBUILD_MAX_ENTRY_SIZE", "4096TiB").output().unwrap();
    assert_eq!(full.status.code(), Some(8), "{}", stderr(&full));
    let err = stderr(&full);
    assert!(
        err.contains("not enough free space to restore tasker-ctl") && err.contains("1125899906842624 bytes"),
        "{err}"
    );
    assert!(!world.out("out-full").exists(), "nothing was published");
}
