//! sccache as rustc's wrapper: per-crate compile caching that complements target-dir
//! snapshots (a snapshot skips whole fresh units; sccache serves the units cargo does
//! rebuild, from any commit that compiled them the same way before).
//!
//! A wrapper that does not work would fail every compile, so it is probed first (it must
//! run and start its server); if that fails the build runs without it, with one warning.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::cache::remote::RemoteConfig;
use crate::cli::SccacheMode;
use crate::report::Reporter;

/// How long the probe may take: starting the server may touch its storage.
const PROBE_TIMEOUT: Duration = Duration::from_secs(20);

/// The environment the builds get: `RUSTC_WRAPPER` and the sccache storage settings that
/// follow from `--remote`, or nothing when sccache is off, absent or broken.
pub fn build_env(mode: SccacheMode, remote: &RemoteConfig, reporter: &Reporter) -> BTreeMap<String, String> {
    if mode == SccacheMode::Never {
        return BTreeMap::new();
    }
    let Some(path) = crate::toolchain::find_on_path("sccache") else {
        if mode == SccacheMode::Always {
            reporter.warn("--sccache always: sccache is not on PATH; building without it (cargo install sccache)");
        }
        return BTreeMap::new();
    };
    let mut env =
        storage_env(remote.remote.as_deref(), remote.s3_endpoint.as_deref(), |name| std::env::var_os(name).is_some());
    match probe(&path, &env) {
        Ok(()) => {
            env.insert("RUSTC_WRAPPER".into(), path.display().to_string());
            reporter.info(&format!("compiling through sccache ({})", path.display()));
            env
        }
        Err(reason) => {
            reporter.warn(&format!("sccache at {} does not work ({reason}); building without it", path.display()));
            BTreeMap::new()
        }
    }
}

/// sccache's settings for tbuild's remote, where one maps onto a backend of sccache's:
/// `gha` onto its GitHub Actions cache, `s3://bucket/prefix` onto its S3 one (under
/// `<prefix>/sccache/`). Settings already in the environment (`is_set`) win.
pub fn storage_env(
    remote: Option<&str>,
    s3_endpoint: Option<&str>,
    is_set: impl Fn(&str) -> bool,
) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    match remote {
        Some("gha") => {
            env.insert("SCCACHE_GHA_ENABLED".to_string(), "true".to_string());
        }
        Some(url) if url.starts_with("s3://") => {
            let rest = &url["s3://".len()..];
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            let prefix = prefix.trim_matches('/');
            env.insert("SCCACHE_BUCKET".into(), bucket.into());
            let prefix = if prefix.is_empty() { "sccache".to_string() } else { format!("{prefix}/sccache") };
            env.insert("SCCACHE_S3_KEY_PREFIX".into(), prefix);
            if let Some(endpoint) = s3_endpoint {
                env.insert("SCCACHE_ENDPOINT".into(), endpoint.into());
                // tbuild addresses S3-compatible endpoints path-style; so must sccache.
                env.insert("SCCACHE_S3_USE_SSL".into(), endpoint.starts_with("https://").to_string());
            }
        }
        _ => {}
    }
    env.retain(|name, _| !is_set(name));
    env
}

/// Runs `sccache --version`, then `sccache --start-server` (a running server is fine).
fn probe(path: &Path, env: &BTreeMap<String, String>) -> Result<(), String> {
    run(path, &["--version"], env)?;
    match run(path, &["--start-server"], env) {
        Ok(()) => Ok(()),
        // Already running: `--show-stats` talks to it.
        Err(_) => run(path, &["--show-stats"], env),
    }
}

fn run(path: &Path, args: &[&str], env: &BTreeMap<String, String>) -> Result<(), String> {
    let mut child = Command::new(path)
        .args(args)
        .envs(env)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run it: {e}"))?;
    let started = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => return Err(format!("`sccache {}` exited with {status}", args.join(" "))),
            Ok(None) if started.elapsed() > PROBE_TIMEOUT => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("`sccache {}` did not finish in {}s", args.join(" "), PROBE_TIMEOUT.as_secs()));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remotes_map_onto_sccache_backends() {
        let none = |_: &str| false;
        assert_eq!(storage_env(Some("gha"), None, none)["SCCACHE_GHA_ENABLED"], "true");
        let s3 = storage_env(Some("s3://bucket/ci/tbuild"), Some("http://127.0.0.1:9000"), none);
        assert_eq!(s3["SCCACHE_BUCKET"], "bucket");
        assert_eq!(s3["SCCACHE_S3_KEY_PREFIX"], "ci/tbuild/sccache");
        assert_eq!(s3["SCCACHE_ENDPOINT"], "http://127.0.0.1:9000");
        assert_eq!(s3["SCCACHE_S3_USE_SSL"], "false");
        assert!(storage_env(Some("https://cache.example/x"), None, none).is_empty());
        let user_set = storage_env(Some("s3://b"), None, |name| name == "SCCACHE_BUCKET");
        assert!(!user_set.contains_key("SCCACHE_BUCKET"));
        assert_eq!(user_set["SCCACHE_S3_KEY_PREFIX"], "sccache");
    }
}
