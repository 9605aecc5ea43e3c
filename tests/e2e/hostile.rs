//! A cache entry whose archive is hostile (planted in a shared or restored cache dir) is
//! refused, nothing is written outside the destination, and the target is rebuilt.

use std::io::Write;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::{Value, json};

use crate::support::*;

/// One entry of an archive written by hand, byte by byte after cache-layout.md, so that any
/// name and any order can be crafted (stock tar refuses or rewrites the interesting ones).
pub(crate) enum Raw<'a> {
    File(&'a str, &'a [u8], u32),
    Symlink(&'a str, &'a str),
}

/// A tar (ustar headers, 512-byte blocks) of `entries` in order, compressed by the stock
/// `zstd` binary: an archive as an attacker would make it.
pub(crate) fn tar_zst(entries: &[Raw]) -> Vec<u8> {
    let mut tar = Vec::new();
    for entry in entries {
        let (name, kind, link, data, mode): (&str, u8, &str, &[u8], u32) = match entry {
            Raw::File(name, data, mode) => (name, b'0', "", data, *mode),
            Raw::Symlink(name, target) => (name, b'2', target, b"", 0o777),
        };
        let mut header = [0u8; 512];
        let field =
            |header: &mut [u8; 512], at: usize, bytes: &[u8]| header[at..at + bytes.len()].copy_from_slice(bytes);
        field(&mut header, 0, name.as_bytes());
        field(&mut header, 100, format!("{mode:07o}\0").as_bytes());
        field(&mut header, 108, b"0000000\0");
        field(&mut header, 116, b"0000000\0");
        field(&mut header, 124, format!("{:011o}\0", data.len()).as_bytes());
        field(&mut header, 136, b"00000000000\0");
        field(&mut header, 148, b"        ");
        header[156] = kind;
        field(&mut header, 157, link.as_bytes());
        field(&mut header, 257, b"ustar\0");
        field(&mut header, 263, b"00");
        let sum: u32 = header.iter().map(|&b| u32::from(b)).sum();
        field(&mut header, 148, format!("{sum:06o}\0 ").as_bytes());
        tar.extend_from_slice(&header);
        tar.extend_from_slice(data);
        tar.extend(std::iter::repeat_n(0u8, (512 - data.len() % 512) % 512));
    }
    tar.extend(std::iter::repeat_n(0u8, 1024));
    let mut zstd =
        Command::new("zstd").args(["-q", "-c"]).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
    zstd.stdin.take().unwrap().write_all(&tar).unwrap();
    let output = zstd.wait_with_output().unwrap();
    assert!(output.status.success(), "zstd failed");
    output.stdout
}

/// The `files` of a record that lists `entries` truthfully (paths sorted, blake3 digests).
pub(crate) fn honest_files(entries: &[Raw]) -> Value {
    let mut files: Vec<(String, Value)> = entries
        .iter()
        .map(|entry| match entry {
            Raw::File(path, data, mode) => (
                path.to_string(),
                json!({"path": path, "mode": mode, "size": data.len(), "digest": blake3::hash(data).to_hex().to_string()}),
            ),
            Raw::Symlink(path, target) => (path.to_string(), json!({"path": path, "mode": 511, "size": 0, "link": target})),
        })
        .collect();
    files.sort_by(|a, b| a.0.cmp(&b.0));
    Value::Array(files.into_iter().map(|(_, f)| f).collect())
}

/// A record listing 8 files of 1 MiB: generous enough that the size limits let any small
/// archive reach the path checks of unpacking.
pub(crate) fn generous_files() -> Value {
    (0..8).map(|i| json!({"path": format!("f{i}"), "mode": 420, "size": 1 << 20, "digest": "0".repeat(64)})).collect()
}

/// An action record for `key` whose digest and size agree with `archive`.
pub(crate) fn record_for(key: &str, archive: &[u8], files: Value) -> Value {
    json!({
        "format": 1, "target": "tasker-ctl", "key": key,
        "artifact_digest": blake3::hash(archive).to_hex().to_string(),
        "artifact_size": archive.len(), "files": files, "build_duration_ms": 1,
        "provenance": "planted", "toolchain": "x", "created_at": 0
    })
}

pub(crate) fn action_path(cache: &Path, key: &str) -> PathBuf {
    cache.join(format!("v1/actions/{}/{key}.json", &key[..2]))
}

pub(crate) fn blob_path(cache: &Path, digest: &str) -> PathBuf {
    cache.join(format!("v1/blobs/{}/{digest}.tar.zst", &digest[..2.min(digest.len())]))
}

/// Writes `record` (and `archive`, if any, under the record's `artifact_digest`) into the
/// local cache at `cache`, the way anyone with write access to the cache dir could. Returns
/// the archive's path.
pub(crate) fn plant_local(cache: &Path, key: &str, record: &Value, archive: Option<&[u8]>) -> PathBuf {
    let digest = record["artifact_digest"].as_str().unwrap_or_default();
    let blob = blob_path(cache, blake3::hash(archive.unwrap_or_default()).to_hex().as_str());
    if let Some(archive) = archive {
        assert_eq!(digest, blake3::hash(archive).to_hex().as_str(), "a consistent entry");
        std::fs::create_dir_all(blob.parent().unwrap()).unwrap();
        std::fs::write(&blob, archive).unwrap();
    }
    let action = action_path(cache, key);
    std::fs::create_dir_all(action.parent().unwrap()).unwrap();
    let _ = std::fs::remove_file(&action);
    std::fs::write(&action, serde_json::to_vec(record).unwrap()).unwrap();
    blob
}

/// A hostile archive made with stock GNU tar, the way an attacker would: `-P` keeps `..` and
/// absolute names, `--transform` renames the payload, links are archived as links.
pub(crate) fn craft(scratch: &Path, case: &str) -> Vec<u8> {
    let dir = scratch.join(case);
    std::fs::create_dir_all(dir.join("tasker-core-binaries")).unwrap();
    std::fs::write(dir.join("payload"), b"evil").unwrap();
    let (transform, members): (Option<&str>, &[&str]) = match case {
        "parent_dir" => (Some("s,^payload,../../escaped,"), &["payload"]),
        "absolute" => (Some("s,^payload,/tmp/tbuild-e2e-absolute-escape,"), &["payload"]),
        "escaping_symlink" => {
            symlink("../../../escaped", dir.join("tasker-core-binaries/tasker-ctl")).unwrap();
            (None, &["tasker-core-binaries/tasker-ctl"])
        }
        "hard_link" => {
            std::fs::hard_link(dir.join("payload"), dir.join("tasker-core-binaries/tasker-ctl")).unwrap();
            (None, &["payload", "tasker-core-binaries/tasker-ctl"])
        }
        other => panic!("no case {other}"),
    };
    let archive = scratch.join(format!("{case}.tar.zst"));
    let mut tar = Command::new("tar");
    tar.arg("--zstd").arg("-P").arg("-cf").arg(&archive).arg("-C").arg(&dir);
    if let Some(transform) = transform {
        tar.arg(format!("--transform={transform}"));
    }
    assert!(tar.args(members).status().unwrap().success(), "tar failed for {case}");
    std::fs::read(archive).unwrap()
}

#[test]
fn hostile_cache_entries_are_refused_and_rebuilt() {
    let world = World::new();
    let escape_target = world.dir.path().join("escaped");
    let scratch = world.dir.path().join("crafted");
    let keys = world.keys("main");
    let key = &keys["tasker-ctl"];
    for name in ["parent_dir", "absolute", "escaping_symlink", "hard_link"] {
        // Plant a consistent entry (digest and record agree) whose archive is hostile.
        let archive = craft(&scratch, name);
        let record = record_for(key, &archive, generous_files());
        let blob = plant_local(&world.cache(), key, &record, Some(&archive));

        let out = world.out(&format!("out-{name}"));
        let output = world.run_core("main", &format!("out-{name}"), "tasker-ctl");
        assert_ok(&output);
        let err = stderr(&output);
        assert!(
            err.contains("cache entry of tasker-ctl refused") && err.contains("refusing archive entry"),
            "{name}: {err}"
        );
        let manifest: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(manifest["targets"]["tasker-ctl"]["status"], "built", "{name}");
        assert!(!escape_target.exists(), "{name} wrote outside the destination");
        assert!(!std::path::Path::new("/tmp/tbuild-e2e-absolute-escape").exists(), "{name}");
        assert!(!blob.exists(), "{name}: the hostile archive is dropped");
        assert_eq!(run_binary(&out.join("tasker-core-binaries/tasker-ctl")), "tasker-ctl ctl-2 shared-2");
    }
}
