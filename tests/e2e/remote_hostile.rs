//! A remote entry whose record and archive agree with each other (the sha256 and blake3 are
//! right, a signature would be too) but whose archive is hostile, or whose record lies about
//! the files: the remote's digests pass, the unpacking refuses it with a clear error, nothing
//! is written outside the destination, the target is rebuilt, and the rebuild's upload
//! replaces the poisoned record, so the next reader gets a sound entry.

use std::path::Path;

use serde_json::Value;
use sha2::Digest;

use crate::hostile::{craft, generous_files};
use crate::remote_servers::Nginx;
use crate::support::*;

/// `tbuild core` of tasker-ctl with cache dir CACHE and the remote.
pub(crate) fn run(world: &World, cache: &str, out: &str, remote: &str) -> std::process::Output {
    core_command(world, cache, out, Some(remote), &[]).output().unwrap()
}

/// `tbuild core` of tasker-ctl into OUT with cache dir CACHE, the remote if any, and `extra`
/// arguments; no remote setting of the environment reaches it.
pub(crate) fn core_command(
    world: &World,
    cache: &str,
    out: &str,
    remote: Option<&str>,
    extra: &[&str],
) -> std::process::Command {
    let args = world.core_args("main", out, "tasker-ctl");
    let mut args: Vec<&str> = args.iter().map(String::as_str).collect();
    if let Some(remote) = remote {
        args.extend(["--remote", remote]);
    }
    args.extend_from_slice(extra);
    let mut command = world.command(&args, &[]);
    for var in ["TBUILD_REMOTE", "TBUILD_SIGNING_KEY", "TBUILD_REMOTE_TOKEN", "TBUILD_REMOTE_REQUIRED"] {
        command.env_remove(var);
    }
    command.env("TBUILD_CACHE_DIR", world.dir.path().join(cache));
    command
}

/// Replaces the remote's entry of the one key by ARCHIVE with a record that agrees with it.
fn poison(nginx: &Nginx, archive: &[u8], files: Option<Value>) {
    let ac = &nginx.objects("ac")[0];
    let mut remote: Value = serde_json::from_slice(&std::fs::read(ac).unwrap()).unwrap();
    let sha256 = hex::encode(sha2::Sha256::digest(archive));
    let record = &mut remote["record"];
    record["artifact_digest"] = blake3::hash(archive).to_hex().to_string().into();
    record["artifact_size"] = archive.len().into();
    record["files"] = files.unwrap_or_else(generous_files);
    remote["archive_sha256"] = sha256.clone().into();
    std::fs::write(ac, serde_json::to_vec(&remote).unwrap()).unwrap();
    std::fs::write(nginx.data.join("cache/cas").join(&sha256), archive).unwrap();
}

#[test]
fn hostile_remote_archives_and_lying_remote_records_are_refused_and_rebuilt() {
    let world = World::new();
    let nginx = Nginx::start(&world.dir.path().join("nginx"));
    let url = nginx.url();
    let a = run(&world, "cache-a", "out-a", &url);
    assert_ok(&a);
    let good = std::fs::read(&nginx.objects("cas")[0]).unwrap();
    let good_record: Value = serde_json::from_slice(&std::fs::read(&nginx.objects("ac")[0]).unwrap()).unwrap();
    let scratch = world.dir.path().join("crafted");
    let escaped = world.dir.path().join("escaped");
    let absolute = Path::new("/tmp/tbuild-e2e-absolute-escape");

    let lying_sizes = {
        let mut files = good_record["record"]["files"].clone();
        files[0]["size"] = 10.into();
        files
    };
    let cases: Vec<(&str, Vec<u8>, Option<Value>, &str)> = vec![
        ("parent_dir", craft(&scratch, "parent_dir"), None, "refusing archive entry"),
        ("absolute", craft(&scratch, "absolute"), None, "refusing archive entry"),
        ("escaping_symlink", craft(&scratch, "escaping_symlink"), None, "refusing archive entry"),
        ("hard_link", craft(&scratch, "hard_link"), None, "refusing archive entry"),
        ("lying sizes", good.clone(), Some(lying_sizes), "expands beyond the 10 bytes"),
    ];
    for (i, (case, archive, files, expected)) in cases.into_iter().enumerate() {
        poison(&nginx, &archive, files);
        // A fresh cache dir: the entry can only come from the remote.
        let out = format!("out-{i}");
        let b = run(&world, &format!("cache-{i}"), &out, &url);
        assert_ok(&b);
        let err = stderr(&b);
        let manifest: Value = serde_json::from_slice(&b.stdout).unwrap();
        let ctl = &manifest["targets"]["tasker-ctl"];
        assert_eq!((ctl["status"].as_str(), ctl["source"].as_str()), (Some("built"), Some("build")), "{case}: {err}");
        assert!(err.contains("tasker-ctl") && err.contains(expected), "{case}: a clear error: {err}");
        assert!(!escaped.exists() && !absolute.exists(), "{case}: wrote outside the destination");
        assert_eq!(run_binary(&world.out(&out).join("tasker-core-binaries/tasker-ctl")), "tasker-ctl ctl-2 shared-2");
        // The poisoned archive did not stay in the local cache.
        let digest = blake3::hash(&archive).to_hex().to_string();
        let local = world.dir.path().join(format!("cache-{i}/v1/blobs/{}/{digest}.tar.zst", &digest[..2]));
        assert!(case == "lying sizes" || !local.exists(), "{case}: the hostile archive is dropped");

        // The rebuild was uploaded over the poisoned record: a new reader hits, soundly.
        let c = run(&world, &format!("cache-{i}-next"), &format!("{out}-next"), &url);
        assert_ok(&c);
        let manifest: Value = serde_json::from_slice(&c.stdout).unwrap();
        assert_eq!(manifest["targets"]["tasker-ctl"]["source"], "remote", "{case}: repaired: {}", stderr(&c));
        assert_eq!(
            run_binary(&world.out(&format!("{out}-next")).join("tasker-core-binaries/tasker-ctl")),
            "tasker-ctl ctl-2 shared-2"
        );
    }
}
