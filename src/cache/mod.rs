//! The artifact cache: action records keyed by a target's key, archives stored by the blake3
//! digest of their bytes (Bazel's action cache + CAS split).
//!
//! `cache-layout.md` at the repository root is the contract of this module: change one,
//! change both, and bump [`LAYOUT_VERSION`] when an older tbuild could misread the new format.

pub mod admission;
mod archive;
pub mod clean;
mod derivation;
mod dir_lock;
pub mod entries;
mod entry_layout;
pub mod gc;
mod link;
mod local;
mod memo;
mod no_follow;
mod range_memo;
mod record_check;
pub mod remote;
pub mod usage;
pub mod verify;
mod verify_restore;
mod verify_trees;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use crate::fs::AtomicFile;
pub(crate) use archive::digest_file;
pub use archive::{ArchiveFile, PackedArchive, UnpackLimits, pack, unpack};
pub use derivation::{INPUT_DIGEST_CHARS, InputLine, KeyDerivation};
pub use dir_lock::CacheDirLock;
pub use link::{LinkMode, restore_linked};
pub(crate) use local::RecordRead;
pub use local::{BlobsLock, KeyLock, LAST_USE_RESOLUTION, LocalCache, RECORD_FORMAT};
pub use memo::BlobDigestMemo;
pub use no_follow::first_escape;
pub use range_memo::{RangeKeyMemo, RangeKeys};
pub use record_check::{MAX_RECORD_BYTES, is_name};

/// Where the cache sends a warning (a remote that failed, an entry dropped): the cache knows
/// no reporter, so it can stand alone; the command layer passes the reporter's `warn`.
pub type Warn = std::sync::Arc<dyn Fn(&str) + Send + Sync>;

/// Version of the on-disk format under `<cache>/v<N>/`. When bumping this, also bump
/// `crate::key::KEY_VERSION` if key derivation changed, and update `cache-layout.md`.
pub const LAYOUT_VERSION: u32 = 1;

/// What a cache lookup found for a key: its record and a local archive whose digest was
/// verified against the record.
#[derive(Debug)]
pub struct CacheHit {
    pub record: ActionRecord,
    pub archive: PathBuf,
    /// Which tier had it (a remote hit is copied into the local cache before it is returned).
    pub source: HitSource,
}

/// Where a hit came from, for the manifest's `source` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HitSource {
    Local,
    Remote,
}

impl HitSource {
    pub fn as_str(self) -> &'static str {
        match self {
            HitSource::Local => "local",
            HitSource::Remote => "remote",
        }
    }
}

/// The action record of one key (`v1/actions/<kk>/<key>.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionRecord {
    /// Format of this record; readers refuse a newer one.
    pub format: u32,
    pub target: String,
    pub key: String,
    /// blake3 of the archive bytes: the archive's name in the blob store.
    pub artifact_digest: String,
    pub artifact_size: u64,
    /// Files in the archive, sorted by path, as they land in the artifact layout.
    pub files: Vec<ArchiveFile>,
    pub build_duration_ms: u64,
    /// The commit (or `path:<dir>`) this artifact was built from.
    pub provenance: String,
    /// The toolchain fingerprint that went into the key, for humans reading the record.
    pub toolchain: String,
    /// Seconds since the Unix epoch when the record was written.
    pub created_at: u64,
    /// What else the key was derived from (recipe, env, inputs), for `tbuild explain`.
    /// Absent in records written before it existed; such entries still hit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub derivation: Option<KeyDerivation>,
}

impl ActionRecord {
    /// Parses and checks a record read from a cache: every reader of a record (local or
    /// remote tier, copy or link mode, gc, verify, bundles) comes through here or
    /// [`ActionRecord::validate`], before anything is touched.
    pub fn from_json(bytes: &[u8]) -> Result<ActionRecord, String> {
        let record: ActionRecord = serde_json::from_slice(bytes).map_err(|err| err.to_string())?;
        record.validate()?;
        Ok(record)
    }

    /// A valid record of `key` whose archive is `archive` (no files listed), for tests that
    /// need an entry and not its contents; override fields with struct update syntax.
    #[cfg(test)]
    pub(crate) fn for_test(key: &str, archive: &[u8]) -> ActionRecord {
        ActionRecord {
            format: RECORD_FORMAT,
            target: "t".into(),
            key: key.into(),
            artifact_digest: blake3::hash(archive).to_hex().to_string(),
            artifact_size: archive.len() as u64,
            files: vec![],
            build_duration_ms: 1,
            provenance: "abc".into(),
            toolchain: "rustc".into(),
            created_at: 0,
            derivation: None,
        }
    }
}

/// 64 lowercase hex digits: a blake3 digest or a key as tbuild writes them.
pub fn is_digest(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Where artifacts are looked up and stored. The local cache implements it; remote
/// backends and a tiered local-over-remote store sit behind the same trait.
pub trait ArtifactStore: Send + Sync {
    /// The record and a verified local archive for `key`, or `None` on a miss. A corrupt
    /// entry is not an error: it is reported through `on_corrupt`, dropped, and a miss.
    fn get(&self, key: &str, on_corrupt: &mut dyn FnMut(CorruptEntry)) -> Result<Option<CacheHit>, CacheError>;
    /// Store `archive` (already packed) under its digest and publish `record` for its key.
    /// The archive file may be moved into the store.
    fn put(&self, record: &ActionRecord, archive: &Path) -> Result<(), CacheError>;
    /// Forget `key`: it failed a check after `get`. `hostile_archive` names its archive when
    /// the archive itself is unsafe whatever record points at it (then it goes too); an
    /// archive that merely disagrees with this record stays, as another record may share it.
    fn invalidate(&self, key: &str, hostile_archive: Option<&str>);
}

/// A cache entry that failed verification and was dropped.
#[derive(Debug, Clone)]
pub struct CorruptEntry {
    pub key: String,
    pub path: PathBuf,
    pub reason: String,
}

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("cache i/o error on {path}{}", io_hint(source))]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("refusing archive entry {entry:?}: {reason}")]
    UnsafeEntry { entry: String, reason: String },
    #[error("archive {path} is corrupt: {reason}")]
    CorruptArchive { path: PathBuf, reason: String },
    #[error(
        "cache {path} has format {found}, newer than this tbuild understands ({supported}); upgrade tbuild or use another --cache-dir"
    )]
    NewerFormat { path: PathBuf, found: u32, supported: u32 },
    /// Only with `--remote-required`: otherwise a failing remote is warned about and skipped.
    #[error("remote cache {remote} failed and --remote-required is set: {message}")]
    Remote { remote: String, message: String },
    #[error("another tbuild is using the cache dir {path}; run this again when it has finished")]
    InUse { path: PathBuf },
    #[error("{}", corrupt_message(*found, *removed))]
    Corrupt { found: usize, removed: usize },
}

fn corrupt_message(found: usize, removed: usize) -> String {
    let what = if found == 1 { "1 corrupt cache file".to_string() } else { format!("{found} corrupt cache files") };
    match removed {
        0 => format!("{what} found (listed above); `tbuild cache verify --fix` removes them"),
        n if n == found => format!("{what} found and removed"),
        n => {
            format!("{what} found, {n} removed; the others belong to keys another tbuild is building, try again later")
        }
    }
}

/// What to do about the i/o errors a user can fix.
fn io_hint(err: &std::io::Error) -> &'static str {
    match err.kind() {
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded => {
            " (the cache's file system is full: free space, e.g. with `tbuild cache gc`, or set TBUILD_CACHE_DIR to a bigger disk)"
        }
        std::io::ErrorKind::ReadOnlyFilesystem | std::io::ErrorKind::PermissionDenied => {
            " (the cache dir is not writable: hits are served from a read-only cache, but building needs a writable TBUILD_CACHE_DIR)"
        }
        _ => "",
    }
}

impl CacheError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> CacheError {
        let path = path.into();
        move |source| CacheError::Io { path, source }
    }
}

/// The default cache dir: `$XDG_CACHE_HOME/tbuild`, else `~/.cache/tbuild`; `None` when
/// neither is set. There is no fallback to a temp dir on purpose: a cache that silently
/// lands somewhere else is a cache that is silently cold on the next run.
pub fn default_cache_dir() -> Option<PathBuf> {
    if let Some(xdg) = std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(xdg).join("tbuild"));
    }
    let home = std::env::var_os("HOME").filter(|v| !v.is_empty())?;
    Some(PathBuf::from(home).join(".cache").join("tbuild"))
}

/// Seconds since the epoch, for records.
pub fn now_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// [`crate::fs::write_atomic`] with the cache's error (and its hints: a full disk, a
/// read-only cache).
pub fn write_atomic(temp_dir: &Path, dest: &Path, bytes: &[u8]) -> Result<(), CacheError> {
    Ok(crate::fs::write_atomic(temp_dir, dest, bytes)?)
}

impl From<crate::fs::FsError> for CacheError {
    fn from(err: crate::fs::FsError) -> CacheError {
        CacheError::Io { path: err.path, source: err.source }
    }
}
