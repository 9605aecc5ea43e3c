//! The toolchain memo: a tool's version fingerprint is probed once per *stamp* and reused
//! while the stamp holds, so a warm run spawns no `ruby -v` or pyenv shim (0.2-0.6 s each).
//!
//! Contract: a memoised fingerprint is used only when everything that could select a
//! different version is as it was when it was probed. The stamp is blake3 over:
//! - the tool's name, the probe's argv and working dir, and `PATH`;
//! - the executable found on PATH and its canonical path (symlinks followed): device, inode,
//!   size, mode, mtime and ctime in nanoseconds; for a script, the same of its interpreter
//!   (`#!/usr/bin/env ruby` resolves `ruby` on PATH);
//! - what picks the version behind a shim: every variable named `PYENV_*`, `RBENV_*`,
//!   `ASDF_*`, `MISE_*`, `RUSTUP_*`, plus `CARGO_HOME`, `GEM_HOME`, `GEM_PATH` and `HOME`; the
//!   content of the version files the managers read, from the probe's working dir up to `/`
//!   (`.python-version`, `.ruby-version`, `.tool-versions`, `mise.toml`, `.mise.toml`,
//!   `rust-toolchain`, `rust-toolchain.toml`) and their global files (`$PYENV_ROOT/version`,
//!   `$RBENV_ROOT/version`, `~/.tool-versions`, mise's `config.toml`, rustup's
//!   `settings.toml`); and the stat of `bin/<tool>` in every rustup toolchain, which
//!   `rustup update` replaces while the proxy and the settings stay as they were.
//!
//! A file whose mtime or ctime is within [`RACY`] of the probe may change again within the
//! filesystem's timestamp granularity without changing its stat, so its stamp is not
//! memoised (git's racy-clean rule). Entries older than [`MAX_AGE`] are probed again, which
//! bounds how long a change nothing above sees (a gem installed behind an unchanged wrapper)
//! can go unnoticed, and are dropped from the file.
//!
//! On disk: `v1/memo/toolchains.json` (see `cache-layout.md`), read whole, written atomically
//! only when a probe ran. Derived data: an unreadable file is an empty memo, and two runs
//! writing at once lose at most the other's new entries (a re-probe).

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::cache::LocalCache;

/// Version of the memo file and of the stamp encoding.
pub const FORMAT: u32 = 1;
/// How recent a change to a stamped file may be for its stamp still to be trusted.
pub const RACY: Duration = Duration::from_secs(2);
/// How long a memoised fingerprint is used before the tool is probed again.
pub const MAX_AGE: Duration = Duration::from_secs(24 * 3600);

const VERSION_FILES: &[&str] = &[
    ".python-version",
    ".ruby-version",
    ".tool-versions",
    "mise.toml",
    ".mise.toml",
    "rust-toolchain",
    "rust-toolchain.toml",
];
const SELECTOR_PREFIXES: &[&str] = &["PYENV_", "RBENV_", "ASDF_", "MISE_", "RUSTUP_"];
const SELECTOR_VARS: &[&str] = &["PATH", "HOME", "CARGO_HOME", "GEM_HOME", "GEM_PATH", "XDG_CONFIG_HOME"];

#[derive(Debug, Clone, Serialize, Deserialize)]
struct MemoEntry {
    tool: String,
    /// The executable, for humans reading the file.
    path: String,
    fingerprint: String,
    /// Seconds since the Unix epoch.
    probed_at: u64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct MemoFile {
    format: u32,
    /// Stamp (blake3 hex) -> fingerprint.
    entries: BTreeMap<String, MemoEntry>,
}

/// The memo of one run: loaded once, saved once after the probes.
#[derive(Debug, Default)]
pub struct ToolMemo {
    /// `None`: never saved (no cache).
    file: Option<(PathBuf, PathBuf)>,
    entries: BTreeMap<String, MemoEntry>,
    changed: bool,
}

/// What the memo knows about one tool before it is probed.
#[derive(Debug, Clone)]
pub struct Stamp {
    digest: String,
    /// False when a stamped file changed too recently to be trusted.
    trusted: bool,
}

impl ToolMemo {
    /// The memo of `cache` (absent or unreadable: empty).
    pub fn open(cache: &LocalCache) -> ToolMemo {
        let path = memo_path(cache);
        let file: MemoFile = cache.get_json(&path).unwrap_or_default();
        let entries = if file.format == FORMAT { file.entries } else { BTreeMap::new() };
        ToolMemo { file: Some((path, cache.tmp_dir())), entries, changed: false }
    }

    /// A memo that starts empty and is never saved.
    pub fn in_memory() -> ToolMemo {
        ToolMemo::default()
    }

    /// The fingerprint probed under `stamp`, if it is trusted and young enough.
    pub fn get(&self, stamp: &Stamp) -> Option<&str> {
        let entry = self.entries.get(&stamp.digest).filter(|_| stamp.trusted)?;
        (now_secs().saturating_sub(entry.probed_at) < MAX_AGE.as_secs()).then_some(entry.fingerprint.as_str())
    }

    /// Records a fresh probe (ignored for an untrusted stamp).
    pub fn insert(&mut self, stamp: &Stamp, tool: &str, path: &Path, fingerprint: &str) {
        if !stamp.trusted {
            return;
        }
        let entry = MemoEntry {
            tool: tool.into(),
            path: path.display().to_string(),
            fingerprint: fingerprint.into(),
            probed_at: now_secs(),
        };
        self.entries.insert(stamp.digest.clone(), entry);
        self.changed = true;
    }

    /// Writes the memo back if a probe added to it, dropping expired entries. Best effort:
    /// the memo is derived data, and a run that cannot write it only probes again next time.
    pub fn save(&mut self) {
        let Some((path, tmp_dir)) = &self.file else { return };
        if !self.changed {
            return;
        }
        let now = now_secs();
        self.entries.retain(|_, e| now.saturating_sub(e.probed_at) < MAX_AGE.as_secs());
        let file = MemoFile { format: FORMAT, entries: std::mem::take(&mut self.entries) };
        let bytes = serde_json::to_vec_pretty(&file).expect("memo serialises");
        self.entries = file.entries;
        match crate::cache::write_atomic(tmp_dir, path, &bytes) {
            Ok(()) => self.changed = false,
            Err(err) => tracing::warn!("could not save the toolchain memo: {err}"),
        }
    }
}

/// `v1/memo/toolchains.json`.
pub fn memo_path(cache: &LocalCache) -> PathBuf {
    cache.versioned_dir().join("memo").join("toolchains.json")
}

/// The stamp of probing `tool` at `path` with `args` from `cwd` (see the module doc).
pub fn stamp(tool: &str, path: &Path, args: &[&str], cwd: &Path) -> Stamp {
    let mut s = StampHasher::new();
    s.line("tool-memo", &FORMAT.to_string());
    s.line("tool", tool);
    s.line("args", &args.join(" "));
    s.line("cwd", &cwd.display().to_string());
    let mut vars: Vec<(String, String)> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.to_string_lossy().into_owned())))
        .filter(|(k, _)| SELECTOR_VARS.contains(&k.as_str()) || SELECTOR_PREFIXES.iter().any(|p| k.starts_with(p)))
        .collect();
    vars.sort();
    for (name, value) in &vars {
        s.line("env", &format!("{name}={value}"));
    }
    s.stat("exe", path);
    if let Ok(canonical) = fs::canonicalize(path) {
        s.stat("exe-real", &canonical);
    }
    if let Some(interpreter) = interpreter(path) {
        s.stat("interpreter", &interpreter);
        if let Ok(canonical) = fs::canonicalize(&interpreter) {
            s.stat("interpreter-real", &canonical);
        }
    }
    for dir in cwd.ancestors() {
        for name in VERSION_FILES {
            s.content("version-file", &dir.join(name));
        }
    }
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let from_env_or_home = |var: &str, under_home: &str| {
        std::env::var_os(var).map(PathBuf::from).or_else(|| home.as_ref().map(|h| h.join(under_home)))
    };
    let mut globals = Vec::new();
    globals.extend(from_env_or_home("PYENV_ROOT", ".pyenv").map(|d| d.join("version")));
    globals.extend(from_env_or_home("RBENV_ROOT", ".rbenv").map(|d| d.join("version")));
    globals.extend(home.as_ref().map(|h| h.join(".tool-versions")));
    globals.extend(from_env_or_home("XDG_CONFIG_HOME", ".config").map(|d| d.join("mise/config.toml")));
    let rustup_home = from_env_or_home("RUSTUP_HOME", ".rustup");
    globals.extend(rustup_home.as_ref().map(|d| d.join("settings.toml")));
    for file in &globals {
        s.content("global-version-file", file);
    }
    if let Some(toolchains) = rustup_home.map(|d| d.join("toolchains"))
        && let Ok(entries) = fs::read_dir(&toolchains)
    {
        let mut names: Vec<_> = entries.flatten().map(|e| e.file_name()).collect();
        names.sort();
        for name in names {
            s.stat("rustup-toolchain", &toolchains.join(name).join("bin").join(tool));
        }
    }
    s.finish()
}

/// The interpreter of a `#!` script: its first word, or the program `env` is asked to run.
fn interpreter(path: &Path) -> Option<PathBuf> {
    use std::io::Read;
    let mut head = [0u8; 256];
    let n = fs::File::open(path).ok()?.read(&mut head).ok()?;
    let line = head[..n].strip_prefix(b"#!")?;
    let line = String::from_utf8_lossy(line.split(|b| *b == b'\n').next()?).into_owned();
    let mut words = line.split_whitespace();
    let first = PathBuf::from(words.next()?);
    if first.file_name().is_some_and(|n| n == "env") {
        let program = words.find(|w| !w.starts_with('-') && !w.contains('='))?;
        return crate::toolchain::find_on_path(program);
    }
    Some(first)
}

struct StampHasher {
    hasher: blake3::Hasher,
    started: SystemTime,
    trusted: bool,
}

impl StampHasher {
    fn new() -> StampHasher {
        StampHasher { hasher: blake3::Hasher::new(), started: SystemTime::now(), trusted: true }
    }

    fn line(&mut self, tag: &str, value: &str) {
        self.hasher.update(tag.as_bytes());
        self.hasher.update(&[0]);
        self.hasher.update(&(value.len() as u64).to_le_bytes());
        self.hasher.update(value.as_bytes());
    }

    fn stat(&mut self, tag: &str, path: &Path) {
        let value = match fs::metadata(path) {
            Ok(m) => {
                let changed = [(m.mtime(), m.mtime_nsec()), (m.ctime(), m.ctime_nsec())];
                if changed.iter().any(|&(secs, nanos)| self.is_racy(secs, nanos)) {
                    self.trusted = false;
                }
                format!(
                    "{} dev={} ino={} size={} mode={:o} mtime={}.{:09} ctime={}.{:09}",
                    path.display(),
                    m.dev(),
                    m.ino(),
                    m.size(),
                    m.mode(),
                    m.mtime(),
                    m.mtime_nsec(),
                    m.ctime(),
                    m.ctime_nsec()
                )
            }
            Err(_) => format!("{} absent", path.display()),
        };
        self.line(tag, &value);
    }

    fn content(&mut self, tag: &str, path: &Path) {
        let value = match fs::read(path) {
            Ok(bytes) => format!("{} {}", path.display(), blake3::hash(&bytes).to_hex()),
            Err(_) => format!("{} absent", path.display()),
        };
        self.line(tag, &value);
    }

    fn is_racy(&self, secs: i64, nanos: i64) -> bool {
        let changed = UNIX_EPOCH + Duration::new(secs.max(0) as u64, nanos.clamp(0, 999_999_999) as u32);
        changed + RACY > self.started
    }

    fn finish(self) -> Stamp {
        Stamp { digest: self.hasher.finalize().to_hex().to_string(), trusted: self.trusted }
    }
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn backdate(path: &Path) {
        let old = SystemTime::now() - Duration::from_secs(3600);
        fs::File::options().write(true).open(path).unwrap().set_modified(old).unwrap();
    }

    fn executable(path: &Path, text: &str) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
        fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
    }

    #[test]
    fn a_replaced_executable_changes_the_stamp_and_a_fresh_one_is_not_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let tool = dir.path().join("bin/fake");
        executable(&tool, "#!/bin/sh\necho 1\n");
        let fresh = stamp("fake", &tool, &["--version"], dir.path());
        assert!(!fresh.trusted, "a file written just now may change again unseen");
        backdate(&tool);
        let before = stamp("fake", &tool, &["--version"], dir.path());
        assert_eq!(before.digest, stamp("fake", &tool, &["--version"], dir.path()).digest);
        // An unrelated file next to the tool changes nothing.
        fs::write(dir.path().join("bin/other"), "x").unwrap();
        assert_eq!(before.digest, stamp("fake", &tool, &["--version"], dir.path()).digest);
        executable(&tool, "#!/bin/sh\necho 2\n");
        backdate(&tool);
        assert_ne!(before.digest, stamp("fake", &tool, &["--version"], dir.path()).digest);
    }

    #[test]
    fn version_files_from_the_working_dir_up_enter_the_stamp() {
        let dir = tempfile::tempdir().unwrap();
        let tool = dir.path().join("bin/fake");
        executable(&tool, "#!/bin/sh\necho 1\n");
        backdate(&tool);
        let cwd = dir.path().join("a/b");
        fs::create_dir_all(&cwd).unwrap();
        let before = stamp("fake", &tool, &[], &cwd).digest;
        fs::write(dir.path().join("a/.tool-versions"), "fake 2\n").unwrap();
        let with_file = stamp("fake", &tool, &[], &cwd).digest;
        assert_ne!(before, with_file);
        fs::write(dir.path().join("a/.tool-versions"), "fake 3\n").unwrap();
        assert_ne!(with_file, stamp("fake", &tool, &[], &cwd).digest);
    }

    #[test]
    fn memo_round_trip_honours_trust_and_age() {
        let dir = tempfile::tempdir().unwrap();
        let cache = LocalCache::open(dir.path()).unwrap();
        let trusted = Stamp { digest: "a".repeat(64), trusted: true };
        let untrusted = Stamp { digest: "b".repeat(64), trusted: false };
        let mut memo = ToolMemo::open(&cache);
        memo.insert(&trusted, "fake", Path::new("/bin/fake"), "fake 1");
        memo.insert(&untrusted, "fake", Path::new("/bin/fake"), "fake 2");
        memo.save();
        let memo = ToolMemo::open(&cache);
        assert_eq!(memo.get(&trusted), Some("fake 1"));
        assert_eq!(memo.get(&untrusted), None);
        assert_eq!(memo.get(&Stamp { trusted: false, ..trusted.clone() }), None, "an untrusted stamp never hits");

        // An expired entry is not used, and is dropped on the next save.
        let mut text: serde_json::Value = serde_json::from_slice(&fs::read(memo_path(&cache)).unwrap()).unwrap();
        text["entries"]["a".repeat(64)]["probed_at"] = serde_json::json!(now_secs() - MAX_AGE.as_secs() - 1);
        fs::write(memo_path(&cache), serde_json::to_vec(&text).unwrap()).unwrap();
        let mut memo = ToolMemo::open(&cache);
        assert_eq!(memo.get(&trusted), None);
        let other = Stamp { digest: "c".repeat(64), trusted: true };
        memo.insert(&other, "fake", Path::new("/bin/fake"), "fake 3");
        memo.save();
        let saved = fs::read_to_string(memo_path(&cache)).unwrap();
        assert!(!saved.contains(&"a".repeat(64)) && saved.contains("fake 3"), "{saved}");

        // A damaged file is an empty memo.
        fs::write(memo_path(&cache), "{not json").unwrap();
        assert_eq!(ToolMemo::open(&cache).get(&other), None);
    }
}
