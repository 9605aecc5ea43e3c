//! Reading the whole store for the maintenance commands: every action record with its size
//! and last use, and every archive. Entries may vanish while we read (a concurrent gc or a
//! reader dropping a corrupt entry): a file that is gone is simply not listed.

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::no_follow::read_capped;
use super::{ActionRecord, CacheError, LocalCache, MAX_RECORD_BYTES, is_digest};

/// One action record on disk.
#[derive(Debug)]
pub struct Entry {
    /// The key, from the file name.
    pub key: String,
    pub path: PathBuf,
    /// Bytes of the record file itself.
    pub record_size: u64,
    /// The record's mtime: refreshed by hits (see `record_use` in `local.rs`).
    pub last_used: SystemTime,
    /// The parsed record, or why it could not be read.
    pub record: Result<ActionRecord, String>,
}

/// One archive in the blob store.
#[derive(Debug)]
pub struct Blob {
    /// The digest its name claims.
    pub digest: String,
    pub path: PathBuf,
    pub size: u64,
}

/// Every action record, sorted by key.
pub fn records(cache: &LocalCache) -> Result<Vec<Entry>, CacheError> {
    let mut entries = Vec::new();
    for path in sharded_files(&cache.versioned_dir().join("actions"), ".json")? {
        let Some(key) = file_stem(&path, ".json") else { continue };
        // Not followed: the size and age of whatever sits there, link or FIFO included.
        let meta = match fs::symlink_metadata(&path) {
            Ok(meta) => meta,
            Err(err) if err.kind() == ErrorKind::NotFound => continue,
            Err(source) => return Err(CacheError::Io { path, source }),
        };
        let record = match read_record_file(&path)? {
            RecordFile::Missing => continue,
            RecordFile::Unusable(reason) => Err(format!("unreadable record: {reason}")),
            RecordFile::Read(bytes) => ActionRecord::from_json(&bytes).map_err(|e| format!("unreadable record: {e}")),
        };
        let last_used = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
        entries.push(Entry { key, path, record_size: meta.len(), last_used, record });
    }
    entries.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(entries)
}

/// What reading a record file found.
pub enum RecordFile {
    Missing,
    /// Not a regular file, or bigger than [`MAX_RECORD_BYTES`]: why.
    Unusable(String),
    Read(Vec<u8>),
}

/// The bytes of the record file at `path`, read the one way every reader uses: the file is
/// not followed if it is a link, a FIFO does not block, only a regular file of at most
/// [`MAX_RECORD_BYTES`] is read.
pub fn read_record_file(path: &Path) -> Result<RecordFile, CacheError> {
    match read_capped(path, MAX_RECORD_BYTES) {
        Ok((bytes, _)) => Ok(RecordFile::Read(bytes)),
        Err(err) if err.kind() == ErrorKind::NotFound => Ok(RecordFile::Missing),
        Err(err) if err.kind() == ErrorKind::InvalidData => Ok(RecordFile::Unusable(err.to_string())),
        Err(source) => Err(CacheError::Io { path: path.into(), source }),
    }
}

/// Removes whatever is at `path` in the store (a file, a link, a FIFO, or a dir planted
/// where a file belongs), never following a link. Gone already is fine.
pub(crate) fn remove_cache_file(path: &Path) -> std::io::Result<()> {
    let removed = match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(err) => Err(err),
    };
    match removed {
        Err(err) if err.kind() == ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// Every archive in the blob store, sorted by digest.
pub fn blobs(cache: &LocalCache) -> Result<Vec<Blob>, CacheError> {
    let mut blobs = Vec::new();
    for path in sharded_files(&cache.versioned_dir().join("blobs"), ".tar.zst")? {
        let Some(digest) = file_stem(&path, ".tar.zst") else { continue };
        match fs::symlink_metadata(&path) {
            Ok(meta) => blobs.push(Blob { digest, path, size: meta.len() }),
            Err(err) if err.kind() == ErrorKind::NotFound => continue,
            Err(source) => return Err(CacheError::Io { path, source }),
        }
    }
    blobs.sort_by(|a, b| a.digest.cmp(&b.digest));
    Ok(blobs)
}

/// Files named `*<suffix>` in the shard dirs under `dir`.
fn sharded_files(dir: &Path, suffix: &str) -> Result<Vec<PathBuf>, CacheError> {
    let mut found = Vec::new();
    for shard in read_dir(dir)? {
        // A shard that is a link is not ours: never list (and so never delete) through it.
        if fs::symlink_metadata(&shard).is_ok_and(|m| m.is_dir()) {
            found.extend(read_dir(&shard)?.into_iter().filter(|p| p.to_string_lossy().ends_with(suffix)));
        }
    }
    Ok(found)
}

fn read_dir(dir: &Path) -> Result<Vec<PathBuf>, CacheError> {
    match fs::read_dir(dir) {
        Ok(entries) => Ok(entries.flatten().map(|e| e.path()).collect()),
        Err(err) if err.kind() == ErrorKind::NotFound => Ok(Vec::new()),
        Err(source) => Err(CacheError::Io { path: dir.into(), source }),
    }
}

/// The name without `suffix`, when it is a key or digest as tbuild writes them (temp files
/// are not).
fn file_stem(path: &Path, suffix: &str) -> Option<String> {
    let stem = path.file_name()?.to_str()?.strip_suffix(suffix)?;
    is_digest(stem).then(|| stem.to_string())
}
