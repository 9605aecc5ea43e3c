//! Helpers shared by the end-to-end tests.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// The fixture's recipe (all four kinds); see `tests/fixture-recipe.toml`.
pub fn fixture_recipe() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixture-recipe.toml")
}

/// The binaries: the engine tests build only these (the language targets take longer).
pub const BINARIES: &str = "tasker-server,tasker-worker,tasker-ctl";

/// A fixture repository and a cache dir of one test's own.
pub struct World {
    pub dir: tempfile::TempDir,
}

impl World {
    pub fn new() -> World {
        let dir = tempfile::tempdir().unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/make-fixture.sh");
        let status = Command::new("bash")
            .arg(script)
            .arg(dir.path().join("repo"))
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "make-fixture.sh failed");
        World { dir }
    }

    pub fn repo(&self) -> PathBuf {
        self.dir.path().join("repo")
    }

    pub fn cache(&self) -> PathBuf {
        self.dir.path().join("cache")
    }

    pub fn out(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `tbuild ARGS` with this world's cache, plain output, no inherited tbuild settings.
    pub fn tbuild(&self, args: &[&str]) -> Output {
        self.tbuild_env(args, &[])
    }

    pub fn tbuild_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        self.command(args, env).output().unwrap()
    }

    pub fn command(&self, args: &[&str], env: &[(&str, &str)]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tbuild"));
        cmd.args(args)
            .env("TBUILD_CACHE_DIR", self.cache())
            .env_remove("TBUILD_CORE_REPO")
            // A config file of the machine running the tests must not reach them.
            .env_remove("TBUILD_CONFIG")
            .env("XDG_CONFIG_HOME", self.dir.path().join("config-home"))
            // Under GitHub Actions these are set for the test process too; tests set their own.
            .env_remove("GITHUB_ACTIONS")
            .env_remove("GITHUB_OUTPUT")
            .env_remove("GITHUB_STEP_SUMMARY")
            .env("CI", "true")
            .current_dir(self.dir.path());
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd
    }

    /// `tbuild core` of the fixture's binaries at REV into DIR, asserting success; the manifest.
    pub fn core(&self, rev: &str, out: &str) -> Value {
        self.core_targets(rev, out, BINARIES)
    }

    /// `tbuild core` of TARGETS (comma-separated) at REV into DIR, asserting success.
    pub fn core_targets(&self, rev: &str, out: &str, targets: &str) -> Value {
        let out_dir = self.out(out);
        let output = self.run_core(rev, out, targets);
        assert_ok(&output);
        let manifest: Value = serde_json::from_slice(&output.stdout).unwrap();
        let on_disk: Value = serde_json::from_slice(&std::fs::read(out_dir.join("manifest.json")).unwrap()).unwrap();
        assert_eq!(manifest, on_disk, "--json prints the manifest");
        manifest
    }

    /// `tbuild core` of TARGETS, whatever its outcome.
    pub fn run_core(&self, rev: &str, out: &str, targets: &str) -> Output {
        self.tbuild(&self.core_args(rev, out, targets).iter().map(String::as_str).collect::<Vec<_>>())
    }

    /// The arguments of `tbuild core` on the fixture with its recipe, `--json`.
    pub fn core_args(&self, rev: &str, out: &str, targets: &str) -> Vec<String> {
        let recipe = fixture_recipe();
        self.core_args_with(rev, out, &["--recipe", recipe.to_str().unwrap(), "--targets", targets, "--json"])
    }

    /// `core --repo <fixture> --sha REV --out DIR` followed by `extra`.
    pub fn core_args_with(&self, rev: &str, out: &str, extra: &[&str]) -> Vec<String> {
        let (repo, out_dir) = (self.repo(), self.out(out));
        let base = ["core", "--repo", repo.to_str().unwrap(), "--sha", rev, "--out", out_dir.to_str().unwrap()];
        base.iter().chain(extra).map(|s| s.to_string()).collect()
    }

    /// `tbuild core` on the fixture at REV into DIR with `extra` arguments, whatever its outcome.
    pub fn core_with(&self, rev: &str, out: &str, extra: &[&str]) -> Output {
        self.tbuild(&self.core_args_with(rev, out, extra).iter().map(String::as_str).collect::<Vec<_>>())
    }

    /// target -> key of the binaries, from `tbuild key --sha REV --json`.
    pub fn keys(&self, rev: &str) -> BTreeMap<String, String> {
        self.keys_of(rev, BINARIES)
    }

    pub fn keys_of(&self, rev: &str, targets: &str) -> BTreeMap<String, String> {
        let output = self.key_from(self.repo().to_str().unwrap(), rev, &["--targets", targets]);
        assert_ok(&output);
        parse_keys(&output.stdout)
    }

    /// `tbuild key --repo REPO --sha REV --json` with the fixture recipe (binaries unless
    /// `extra` names --targets), whatever its outcome.
    pub fn key_from(&self, repo: &str, rev: &str, extra: &[&str]) -> Output {
        let recipe = fixture_recipe();
        let mut args = vec!["key", "--repo", repo, "--sha", rev, "--recipe", recipe.to_str().unwrap(), "--json"];
        if !extra.contains(&"--targets") {
            args.extend(["--targets", BINARIES]);
        }
        args.extend_from_slice(extra);
        self.tbuild(&args)
    }

    /// target -> key of the binaries of a checkout on disk, from `tbuild key --path DIR --json`.
    pub fn keys_of_dir(&self, dir: &Path) -> BTreeMap<String, String> {
        let recipe = fixture_recipe();
        let args = [
            "key",
            "--path",
            dir.to_str().unwrap(),
            "--recipe",
            recipe.to_str().unwrap(),
            "--targets",
            BINARIES,
            "--json",
        ];
        let output = self.tbuild(&args);
        assert_ok(&output);
        parse_keys(&output.stdout)
    }

    /// `git ARGS` in the fixture repository.
    pub fn git(&self, args: &[&str]) -> String {
        git_in(&self.repo(), args)
    }

    /// Commits the fixture's work tree as it is, returning the new SHA.
    pub fn commit_all(&self, message: &str) -> String {
        self.git(&["add", "-A"]);
        self.git(&["-c", "user.name=t", "-c", "user.email=t@t.invalid", "commit", "-q", "-m", message]);
        self.git(&["rev-parse", "HEAD"]).trim().to_string()
    }
}

pub fn git_in(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("git").args(args).current_dir(dir).output().unwrap();
    assert!(output.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap()
}

pub fn parse_keys(stdout: &[u8]) -> BTreeMap<String, String> {
    let reports: Vec<Value> = serde_json::from_slice(stdout).unwrap();
    reports
        .iter()
        .map(|r| (r["target"].as_str().unwrap().to_string(), r["key"].as_str().unwrap().to_string()))
        .collect()
}

pub fn assert_ok(output: &Output) {
    assert!(
        output.status.success(),
        "tbuild failed ({:?}):\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stderr)
    );
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// target -> status ("hit", "built", "failed").
pub fn statuses(manifest: &Value) -> BTreeMap<String, String> {
    manifest["targets"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v["status"].as_str().unwrap().to_string()))
        .collect()
}

/// Every file under `dir` (but manifest.json) with its bytes; symlinks by their target.
pub fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            let rel = path.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            if meta.is_dir() {
                stack.push(path);
            } else if meta.file_type().is_symlink() {
                files.insert(rel, std::fs::read_link(&path).unwrap().to_string_lossy().into_owned().into_bytes());
            } else if rel != "manifest.json" {
                files.insert(rel, std::fs::read(&path).unwrap());
            }
        }
    }
    files
}

/// Runs a built binary and returns its stdout.
pub fn run_binary(path: &Path) -> String {
    let output = Command::new(path).output().unwrap();
    assert!(output.status.success(), "{} failed", path.display());
    String::from_utf8(output.stdout).unwrap().trim().to_string()
}

/// All action records in the cache, by target name.
pub fn records(cache: &Path) -> Vec<Value> {
    let actions = cache.join("v1/actions");
    let mut found = Vec::new();
    if let Ok(shards) = std::fs::read_dir(&actions) {
        for shard in shards {
            for entry in std::fs::read_dir(shard.unwrap().path()).unwrap() {
                found.push(serde_json::from_slice(&std::fs::read(entry.unwrap().path()).unwrap()).unwrap());
            }
        }
    }
    found
}
