//! The artifact cache: action records keyed by a target's key, archives stored by the blake3
//! digest of their bytes (Bazel's action cache + CAS split).
//!
//! `cache-layout.md` at the repository root is the contract of this module: change one,
//! change both, and bump [`LAYOUT_VERSION`] when an older tbuild could misread the new format.

mod archive;
mod atomic;
mod link;
mod local;
mod memo;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub(crate) use archive::digest_file;
pub use archive::{ArchiveFile, PackedArchive, pack, unpack};
pub use atomic::{AtomicFile, write_atomic};
pub use link::{LinkMode, restore_linked};
pub use local::{KeyLock, LocalCache, RECORD_FORMAT};
pub use memo::BlobDigestMemo;

/// Version of the on-disk format under `<cache>/v<N>/`. When bumping this, also bump
/// `crate::key::KEY_VERSION` if key derivation changed, and update `cache-layout.md`.
pub const LAYOUT_VERSION: u32 = 1;

/// What a cache lookup found for a key: its record and a local archive whose digest was
/// verified against the record.
#[derive(Debug)]
pub struct CacheHit {
    pub record: ActionRecord,
    pub archive: PathBuf,
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
    /// Forget `key` (and its archive): it failed a check after `get` (e.g. its contents).
    fn invalidate(&self, key: &str, artifact_digest: &str);
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
    #[error("cache i/o error on {path}")]
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
}

impl CacheError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> CacheError {
        let path = path.into();
        move |source| CacheError::Io { path, source }
    }
}

/// The default cache dir: `$XDG_CACHE_HOME/tbuild`, else `~/.cache/tbuild`.
pub fn default_cache_dir() -> PathBuf {
    if let Some(xdg) = std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(xdg).join("tbuild");
    }
    match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        Some(home) => PathBuf::from(home).join(".cache").join("tbuild"),
        None => std::env::temp_dir().join("tbuild-cache"),
    }
}

/// Seconds since the epoch, for records.
pub fn now_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}
