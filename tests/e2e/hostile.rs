//! A cache entry whose archive is hostile (planted in a shared or restored cache dir) is
//! refused, nothing is written outside the destination, and the target is rebuilt.

use crate::support::*;

enum Raw<'a> {
    File(&'a str, &'a [u8]),
    Symlink(&'a str, &'a str),
    HardLink(&'a str, &'a str),
}

fn craft(entries: &[Raw]) -> Vec<u8> {
    let mut bytes = Vec::new();
    for entry in entries {
        let mut header = tar::Header::new_old();
        let (name, kind, link, data): (&str, tar::EntryType, Option<&str>, &[u8]) = match entry {
            Raw::File(n, d) => (n, tar::EntryType::Regular, None, d),
            Raw::Symlink(n, t) => (n, tar::EntryType::Symlink, Some(t), b""),
            Raw::HardLink(n, t) => (n, tar::EntryType::Link, Some(t), b""),
        };
        let old = header.as_old_mut();
        old.name[..name.len()].copy_from_slice(name.as_bytes());
        if let Some(link) = link {
            old.linkname[..link.len()].copy_from_slice(link.as_bytes());
        }
        header.set_entry_type(kind);
        header.set_mode(0o755);
        header.set_size(data.len() as u64);
        header.set_cksum();
        bytes.extend_from_slice(header.as_bytes());
        bytes.extend_from_slice(data);
        bytes.extend(std::iter::repeat_n(0u8, (512 - data.len() % 512) % 512));
    }
    bytes.extend(std::iter::repeat_n(0u8, 1024));
    zstd::encode_all(&bytes[..], 3).unwrap()
}

#[test]
fn hostile_cache_entries_are_refused_and_rebuilt() {
    let world = World::new();
    let escape_target = world.dir.path().join("escaped");
    let cases: Vec<(&str, Vec<Raw>)> = vec![
        ("parent_dir", vec![Raw::File("../../escaped", b"evil")]),
        ("absolute", vec![Raw::File("/tmp/tbuild-e2e-absolute-escape", b"evil")]),
        ("escaping_symlink", vec![Raw::Symlink("tasker-core-binaries/tasker-ctl", "../../../escaped")]),
        (
            "hard_link",
            vec![
                Raw::File("tasker-core-binaries/a", b"a"),
                Raw::HardLink("tasker-core-binaries/tasker-ctl", "/etc/passwd"),
            ],
        ),
    ];
    let keys = world.keys("main");
    let key = &keys["tasker-ctl"];
    for (name, entries) in cases {
        // Plant a consistent entry (digest and record agree) whose archive is hostile.
        let archive = craft(&entries);
        let digest = blake3::hash(&archive).to_hex().to_string();
        let blob = world.cache().join(format!("v1/blobs/{}/{digest}.tar.zst", &digest[..2]));
        std::fs::create_dir_all(blob.parent().unwrap()).unwrap();
        std::fs::write(&blob, &archive).unwrap();
        let record = serde_json::json!({
            "format": 1, "target": "tasker-ctl", "key": key, "artifact_digest": digest,
            "artifact_size": archive.len(), "files": [], "build_duration_ms": 1,
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
