//! The publish stage: lay the targets' restored files out in `--out DIR` (the design doc's
//! artifact layout) with a `manifest.json`, replacing the previous contents as a whole.
//!
//! Everything is assembled in a staging dir next to DIR (same filesystem), then swapped in
//! with two renames, so DIR never holds a mix of two runs or a half-written file. A DIR that
//! exists, is not empty and has no tbuild manifest is refused rather than replaced: it is
//! probably not ours.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::cache::{ArchiveFile, LocalCache};
use crate::error::Error;

pub const MANIFEST: &str = "manifest.json";

/// `manifest.json`, also printed by `--json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    /// The tbuild version that wrote it.
    pub tbuild: String,
    pub sha: String,
    pub repo: String,
    pub recipe: String,
    pub targets: BTreeMap<String, TargetReport>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TargetReport {
    pub key: String,
    pub status: Status,
    /// Where the artifact came from: `local` (cache) or `build`; `none` for a miss.
    pub source: String,
    pub artifact_dir: String,
    pub inputs: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_digest: Option<String>,
    pub durations_ms: Durations,
    pub files: Vec<ArchiveFile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Hit,
    Built,
    Failed,
    /// Not in the cache, and not built: `tbuild restore` never builds.
    Miss,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Durations {
    /// Key derivation for the whole plan (shared by all targets).
    pub key: u64,
    pub restore: u64,
    pub build: u64,
    pub pack: u64,
}

/// A staging dir next to the out dir; dropped without publishing, it leaves nothing behind.
pub struct Staging {
    dir: tempfile::TempDir,
    out: PathBuf,
}

impl Staging {
    pub fn new(out: &Path) -> Result<Staging, PublishError> {
        check_out_dir(out)?;
        let parent = match out.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        fs::create_dir_all(&parent).map_err(PublishError::io(&parent))?;
        let name = out.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "out".into());
        let prefix = format!(".{name}.tbuild-staging-");
        remove_abandoned_staging(&parent, &prefix);
        let dir = tempfile::Builder::new()
            .prefix(&format!("{prefix}{}-", std::process::id()))
            .tempdir_in(&parent)
            .map_err(PublishError::io(&parent))?;
        Ok(Staging { dir, out: out.to_path_buf() })
    }

    /// A fresh, empty dir to restore one target's archive into.
    /// The staging dir itself, on --out's file system.
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn target_dir(&self, target: &str) -> Result<PathBuf, PublishError> {
        let dir = self.dir.path().join("targets").join(target);
        if dir.exists() {
            fs::remove_dir_all(&dir).map_err(PublishError::io(&dir))?;
        }
        fs::create_dir_all(&dir).map_err(PublishError::io(&dir))?;
        Ok(dir)
    }

    /// Merges the restored targets, writes the manifest and swaps the result in as the out dir.
    pub fn publish(self, manifest: &Manifest) -> Result<(), PublishError> {
        let tree = self.dir.path().join("tree");
        fs::create_dir_all(&tree).map_err(PublishError::io(&tree))?;
        let targets = self.dir.path().join("targets");
        for name in manifest.targets.keys() {
            let restored = targets.join(name);
            if !restored.exists() {
                continue;
            }
            for entry in walkdir::WalkDir::new(&restored).sort_by_file_name() {
                let entry = entry.map_err(|e| PublishError::Io { path: restored.clone(), source: e.into() })?;
                if entry.file_type().is_dir() {
                    continue;
                }
                let rel = entry.path().strip_prefix(&restored).expect("walk stays under its root");
                let dest = tree.join(rel);
                if fs::symlink_metadata(&dest).is_ok() {
                    return Err(PublishError::Clash { path: rel.display().to_string() });
                }
                fs::create_dir_all(dest.parent().expect("joined")).map_err(PublishError::io(&dest))?;
                fs::rename(entry.path(), &dest).map_err(PublishError::io(&dest))?;
            }
        }
        let bytes = serde_json::to_vec_pretty(manifest).expect("manifests serialise");
        fs::write(tree.join(MANIFEST), bytes).map_err(PublishError::io(tree.join(MANIFEST)))?;
        let old = self.dir.path().join("old");
        if self.out.exists() {
            fs::rename(&self.out, &old).map_err(PublishError::io(&self.out))?;
        }
        fs::rename(&tree, &self.out).map_err(PublishError::io(&self.out))?;
        Ok(())
    }
}

/// Staging dirs of runs that were killed (Ctrl-C, OOM) before they could clean up: their
/// name carries the pid of their run, which no longer exists.
fn remove_abandoned_staging(parent: &Path, prefix: &str) {
    let Ok(entries) = fs::read_dir(parent) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.strip_prefix(prefix).and_then(|rest| rest.split('-').next()) else { continue };
        let Ok(pid) = pid.parse::<u32>() else { continue };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

fn check_out_dir(out: &Path) -> Result<(), PublishError> {
    let meta = match fs::symlink_metadata(out) {
        Ok(meta) => meta,
        Err(_) => return Ok(()),
    };
    if !meta.is_dir() {
        return Err(PublishError::NotOurs { path: out.into(), reason: "it is not a directory".into() });
    }
    let empty = fs::read_dir(out).map_err(PublishError::io(out))?.next().is_none();
    if empty {
        return Ok(());
    }
    let ours = fs::read(out.join(MANIFEST)).ok().and_then(|b| serde_json::from_slice::<Manifest>(&b).ok()).is_some();
    if ours {
        Ok(())
    } else {
        Err(PublishError::NotOurs {
            path: out.into(),
            reason: "it is not empty and holds no tbuild manifest.json".into(),
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("refusing to replace --out {path}: {reason}; pick an empty or new directory")]
    NotOurs { path: PathBuf, reason: String },
    #[error("two targets both produce {path} in the artifact layout; give them different artifact_dir or dest")]
    Clash { path: String },
    #[error(
        "not enough free space to restore {target} into {path}: it unpacks to {} ({needed} bytes), {} ({available} bytes) are free; free space on that file system or pick another --out",
        crate::report::human_bytes(*needed),
        crate::report::human_bytes(*available)
    )]
    NoRoom { target: String, path: PathBuf, needed: u64, available: u64 },
    #[error("i/o error on {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl PublishError {
    fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> PublishError {
        let path = path.into();
        move |source| PublishError::Io { path, source }
    }
}

/// Refuses an `--out` inside the cache dir (the cache's temp sweep, `gc` or `clean` would
/// delete it) or one holding the cache dir (publishing replaces `--out` as a whole).
pub fn check_out_outside_cache(out: &Path, cache: &LocalCache) -> Result<(), Error> {
    let (out_abs, cache_abs) = (resolved(out), resolved(cache.root()));
    if out_abs.starts_with(&cache_abs) {
        return Err(Error::Usage(format!(
            "--out {} is inside the cache dir {}, whose maintenance (temp sweeps, gc, clean) would delete it; \
             pick an --out outside the cache dir",
            out.display(),
            cache_abs.display()
        )));
    }
    if cache_abs.starts_with(&out_abs) {
        return Err(Error::Usage(format!(
            "--out {} holds the cache dir {}, and publishing replaces --out as a whole; \
             pick an --out that does not contain the cache dir",
            out.display(),
            cache_abs.display()
        )));
    }
    Ok(())
}

/// `path` made absolute with its links resolved, as far as it exists (the rest appended).
fn resolved(path: &Path) -> PathBuf {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut existing = absolute.as_path();
    let mut rest = Vec::new();
    loop {
        if let Ok(real) = existing.canonicalize() {
            return rest.iter().rev().fold(real, |acc: PathBuf, part| acc.join(part));
        }
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_os_string());
                existing = parent;
            }
            _ => return absolute,
        }
    }
}
