//! A cache entry whose archive is hostile (planted in a shared or restored cache dir) is
//! refused, nothing is written outside the destination, and the target is rebuilt.

use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::Command;

use crate::support::*;

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
        let digest = blake3::hash(&archive).to_hex().to_string();
        let blob = world.cache().join(format!("v1/blobs/{}/{digest}.tar.zst", &digest[..2]));
        std::fs::create_dir_all(blob.parent().unwrap()).unwrap();
        std::fs::write(&blob, &archive).unwrap();
        // A record generous enough that the size limits let the archive reach the checks.
        let listed: Vec<_> =
            (0..8).map(|i| serde_json::json!({"path": format!("f{i}"), "mode": 420, "size": 1 << 20})).collect();
        let record = serde_json::json!({
            "format": 1, "target": "tasker-ctl", "key": key, "artifact_digest": digest,
            "artifact_size": archive.len(), "files": listed, "build_duration_ms": 1,
            "provenance": "planted", "toolchain": "x", "created_at": 0
        });
        let action = world.cache().join(format!("v1/actions/{}/{key}.json", &key[..2]));
        std::fs::create_dir_all(action.parent().unwrap()).unwrap();
        std::fs::write(&action, serde_json::to_vec(&record).unwrap()).unwrap();

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
