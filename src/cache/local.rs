//! The local cache directory: action records, the blob store, per-key locks, memos, logs
//! and per-repository working state. The tree is drawn in `cache-layout.md`.

use std::fs::{self, File};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::entries::{RecordFile, read_record_file, remove_cache_file};
use super::no_follow::open_regular;
use super::write_atomic;
use super::{ActionRecord, ArtifactStore, CacheError, CacheHit, CorruptEntry, HitSource, LAYOUT_VERSION};
use crate::fs::{FileLock, LockMode, Wait, lock_file, sync_dir};

/// Format of action records written by this tbuild.
pub const RECORD_FORMAT: u32 = 1;

const CACHEDIR_TAG: &str = "Signature: 8a477f597d28d172789f06886806bc55\n\
# This file is a cache directory tag created by tbuild.\n\
# For information about cache directory tags see https://bford.info/cachedir/\n";

/// A cache dir on the local filesystem.
#[derive(Debug, Clone)]
pub struct LocalCache {
    root: PathBuf,
    versioned: PathBuf,
}

impl LocalCache {
    /// Opens (creating if needed) the cache at `root`.
    pub fn open(root: &Path) -> Result<LocalCache, CacheError> {
        let versioned = root.join(format!("v{LAYOUT_VERSION}"));
        for dir in ["actions", "blobs", "locks", "tmp", "memo", "graphs", "logs", "outs", "trees"] {
            let dir = versioned.join(dir);
            fs::create_dir_all(&dir).map_err(CacheError::io(&dir))?;
        }
        let tag = root.join("CACHEDIR.TAG");
        if !tag.exists() {
            write_atomic(&versioned.join("tmp"), &tag, CACHEDIR_TAG.as_bytes())?;
        }
        let cache = LocalCache { root: root.to_path_buf(), versioned };
        cache.remove_stale_temp_files();
        Ok(cache)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Temp files live here so that every rename into the cache stays on one filesystem.
    pub fn tmp_dir(&self) -> PathBuf {
        self.versioned.join("tmp")
    }

    pub fn action_path(&self, key: &str) -> PathBuf {
        self.versioned.join("actions").join(shard(key)).join(format!("{key}.json"))
    }

    pub fn blob_path(&self, digest: &str) -> PathBuf {
        self.versioned.join("blobs").join(shard(digest)).join(format!("{digest}.tar.zst"))
    }

    pub fn memo_path(&self) -> PathBuf {
        self.versioned.join("memo").join("git-blob-blake3.bin")
    }

    pub fn graph_path(&self, digest: &str) -> PathBuf {
        self.versioned.join("graphs").join(format!("{digest}.json"))
    }

    /// Unpacked archives for `--link-mode` (see `link.rs`).
    pub fn trees_dir(&self) -> PathBuf {
        self.versioned.join("trees")
    }

    /// Records of published out dirs, for skipping a repeat (see `crate::engine::in_place`).
    pub fn outs_dir(&self) -> PathBuf {
        self.versioned.join("outs")
    }

    pub fn log_path(&self, target: &str, key: &str) -> PathBuf {
        self.versioned.join("logs").join(target).join(format!("{}.log", &key[..16.min(key.len())]))
    }

    /// Per-repository state that is not part of the content-addressed format: the git
    /// mirror, the reusable checkout and the persistent build dirs.
    pub fn repo_dir(&self, repo_id: &str) -> PathBuf {
        self.root.join("repos").join(repo_id)
    }

    /// Takes the exclusive lock of `key`, calling `on_wait` first if another process holds it.
    pub fn lock_key(&self, key: &str, on_wait: impl FnOnce()) -> Result<KeyLock, CacheError> {
        let path = self.versioned.join("locks").join(format!("{key}.lock"));
        KeyLock::acquire(&path, on_wait)
    }

    /// Like [`LocalCache::lock_key`], but `None` instead of waiting when another process holds it.
    pub fn try_lock_key(&self, key: &str) -> Result<Option<KeyLock>, CacheError> {
        KeyLock::try_acquire(&self.versioned.join("locks").join(format!("{key}.lock")))
    }

    /// The lock over the blob store: shared by writers from checking for an archive until
    /// its record is written, exclusive while gc removes archives no record refers to.
    pub fn lock_blobs(&self, exclusive: bool) -> Result<BlobsLock, CacheError> {
        let path = self.versioned.join("locks").join("blobs.lock");
        let mode = if exclusive { LockMode::Exclusive } else { LockMode::Shared };
        let lock = lock_file(&path, mode, Wait::Yes(Box::new(|| {})))?.expect("a waiting lock is taken");
        Ok(BlobsLock { _lock: lock })
    }

    /// `<cache>/v1`: the content-addressed part, for the maintenance commands that walk it.
    pub fn versioned_dir(&self) -> &Path {
        &self.versioned
    }

    /// A JSON memo (e.g. a crate graph) written earlier by [`LocalCache::put_json`].
    /// An unreadable memo is treated as absent: it is derived data and is rewritten.
    /// A memo file under the cache dir, or `None` if it is missing or unusable. Read like a
    /// record (a regular file, never through a link or from a FIFO, at most
    /// `MAX_RECORD_BYTES`): memos live in the same attacker-writable dir as records.
    pub fn get_json<T: DeserializeOwned>(&self, path: &Path) -> Option<T> {
        let (bytes, _) = super::no_follow::read_capped(path, super::MAX_RECORD_BYTES).ok()?;
        match serde_json::from_slice(&bytes) {
            Ok(value) => Some(value),
            Err(err) => {
                tracing::warn!("ignoring unreadable memo {}: {err}", path.display());
                None
            }
        }
    }

    pub fn put_json<T: Serialize>(&self, path: &Path, value: &T) -> Result<(), CacheError> {
        let bytes = serde_json::to_vec_pretty(value).expect("memo values serialise");
        write_atomic(&self.tmp_dir(), path, &bytes)
    }

    /// Temp files (and import staging dirs) a crashed or killed run left behind. A day old is far older than any write
    /// in progress, so removing them cannot race a live writer.
    fn remove_stale_temp_files(&self) {
        let Ok(entries) = fs::read_dir(self.tmp_dir()) else { return };
        let day = std::time::Duration::from_secs(24 * 3600);
        for entry in entries.flatten() {
            let stale =
                entry.metadata().and_then(|m| m.modified()).is_ok_and(|t| t.elapsed().is_ok_and(|age| age > day));
            if stale {
                // Dirs too: the staging dir of an import that was killed.
                let _ = match entry.file_type() {
                    Ok(t) if t.is_dir() => fs::remove_dir_all(entry.path()),
                    _ => fs::remove_file(entry.path()),
                };
            }
        }
    }

    /// The record of `key`, read the one safe way (see `entries::read_record_file`) and
    /// validated ([`ActionRecord::from_json`]); a record of a newer format is an error.
    pub(crate) fn read_record(&self, key: &str) -> Result<RecordRead, CacheError> {
        let path = self.action_path(key);
        let bytes = match read_record_file(&path)? {
            RecordFile::Missing => return Ok(RecordRead::Missing),
            RecordFile::Unusable(reason) => return Ok(RecordRead::Bad(reason)),
            RecordFile::Read(bytes) => bytes,
        };
        // A newer tbuild may have changed anything but `format`: look at that alone first.
        #[derive(serde::Deserialize)]
        struct FormatOnly {
            format: u32,
        }
        if let Ok(FormatOnly { format }) = serde_json::from_slice(&bytes)
            && format > RECORD_FORMAT
        {
            return Err(CacheError::NewerFormat { path, found: format, supported: RECORD_FORMAT });
        }
        Ok(match ActionRecord::from_json(&bytes) {
            Ok(record) if record.key == key => RecordRead::Found(Box::new(record)),
            Ok(record) => RecordRead::Bad(format!("it is stored under {key} but says it is {}", record.key)),
            Err(reason) => RecordRead::Bad(reason),
        })
    }

    fn drop_entry(&self, key: &str, blob: Option<&Path>) {
        // Best effort: a failure here only means the next reader drops it again.
        let _ = remove_cache_file(&self.action_path(key));
        if let Some(blob) = blob {
            let _ = remove_cache_file(blob);
        }
    }
}

/// What reading the record of a key found.
pub(crate) enum RecordRead {
    Missing,
    /// Unusable (not a regular file, too big, unparsable, failing validation): why.
    Bad(String),
    Found(Box<ActionRecord>),
}

/// The blake3 hex of the archive at `blob`, which must be a regular file (not a link, a
/// FIFO or a device: see `no_follow`). Its size is not compared with the record's here: a
/// sound archive under a lying record is the record's fault, found by the unpack limits,
/// and must not be dropped with it (another record may share it).
fn blob_digest(blob: &Path) -> std::io::Result<String> {
    let (file, _) = open_regular(blob)?;
    let mut hasher = blake3::Hasher::new();
    hasher.update_reader(file)?;
    Ok(hasher.finalize().to_hex().to_string())
}

impl ArtifactStore for LocalCache {
    fn get(&self, key: &str, on_corrupt: &mut dyn FnMut(CorruptEntry)) -> Result<Option<CacheHit>, CacheError> {
        let path = self.action_path(key);
        let record = match self.read_record(key)? {
            RecordRead::Missing => return Ok(None),
            RecordRead::Found(record) => *record,
            RecordRead::Bad(reason) => {
                on_corrupt(CorruptEntry {
                    key: key.into(),
                    path,
                    reason: format!("unreadable action record: {reason}"),
                });
                self.drop_entry(key, None);
                return Ok(None);
            }
        };
        let blob = self.blob_path(&record.artifact_digest);
        let reason = match blob_digest(&blob) {
            Ok(actual) if actual == record.artifact_digest => {
                record_use(&path);
                return Ok(Some(CacheHit { record, archive: blob, source: HitSource::Local }));
            }
            Ok(actual) => format!("archive digest is {actual}, its record says {}", record.artifact_digest),
            // Record gone too: `tbuild cache gc` evicted the entry since we read it. A miss.
            Err(err) if err.kind() == ErrorKind::NotFound && !path.exists() => return Ok(None),
            Err(err) if err.kind() == ErrorKind::NotFound => "its archive is missing".to_string(),
            Err(err) if err.kind() == ErrorKind::InvalidData => format!("its archive is unusable: {err}"),
            Err(source) => return Err(CacheError::Io { path: blob, source }),
        };
        on_corrupt(CorruptEntry { key: key.into(), path: blob.clone(), reason });
        self.drop_entry(key, Some(&blob));
        Ok(None)
    }

    fn invalidate(&self, key: &str, hostile_archive: Option<&str>) {
        self.drop_entry(key, hostile_archive.map(|digest| self.blob_path(digest)).as_deref());
    }

    fn put(&self, record: &ActionRecord, archive: &Path) -> Result<(), CacheError> {
        let blob = self.blob_path(&record.artifact_digest);
        // Shared with other writers, exclusive for gc's sweep of unreferenced archives: an
        // archive found present here cannot be swept before its record is written.
        let _blobs = self.lock_blobs(false)?;
        let parent = blob.parent().expect("blob paths are sharded");
        fs::create_dir_all(parent).map_err(CacheError::io(parent))?;
        // Not followed: a link or FIFO planted under the archive's name is replaced.
        if fs::symlink_metadata(&blob).is_ok_and(|m| m.is_file()) {
            // Same digest, same bytes: keep the stored copy, drop ours.
            let _ = fs::remove_file(archive);
        } else {
            File::open(archive).and_then(|f| f.sync_all()).map_err(CacheError::io(archive))?;
            fs::rename(archive, &blob).map_err(CacheError::io(&blob))?;
            sync_dir(parent).map_err(CacheError::io(parent))?;
        }
        // The record goes last: a reader that finds a record always finds its archive.
        let bytes = serde_json::to_vec_pretty(record).expect("records serialise");
        write_atomic(&self.tmp_dir(), &self.action_path(&record.key), &bytes)
    }
}

/// A hit refreshes its record's mtime, which is the entry's last use for `tbuild cache gc`.
/// Only when older than [`LAST_USE_RESOLUTION`]: a hit costs one `stat`, not a write, and
/// the record's bytes are never rewritten.
fn record_use(record: &Path) {
    let fresh = fs::metadata(record)
        .and_then(|m| m.modified())
        .is_ok_and(|t| t.elapsed().is_ok_and(|age| age < LAST_USE_RESOLUTION));
    if !fresh && let Ok(file) = File::options().write(true).open(record) {
        // Best effort: a failure only makes the entry look older to gc.
        let _ = file.set_modified(std::time::SystemTime::now());
    }
}

/// How precisely last use is recorded (see [`record_use`]).
pub const LAST_USE_RESOLUTION: std::time::Duration = std::time::Duration::from_secs(3600);

/// Held while writing to or sweeping the blob store (see [`LocalCache::lock_blobs`]).
#[derive(Debug)]
pub struct BlobsLock {
    _lock: FileLock,
}

/// `ab/` for `abcdef...`: keeps directories small.
fn shard(hex: &str) -> &str {
    &hex[..2.min(hex.len())]
}

/// An exclusive advisory lock on a file, released on drop (or when the process dies).
#[derive(Debug)]
pub struct KeyLock {
    _lock: FileLock,
}

impl KeyLock {
    /// Takes the lock, calling `on_wait` first if another process holds it (see
    /// [`lock_file`] for a read-only cache).
    pub fn acquire(path: &Path, on_wait: impl FnOnce()) -> Result<KeyLock, CacheError> {
        let lock = lock_file(path, LockMode::Exclusive, Wait::Yes(Box::new(on_wait)))?;
        Ok(KeyLock { _lock: lock.expect("a waiting lock is taken") })
    }

    /// The lock if it is free now, `None` if another process holds it.
    pub fn try_acquire(path: &Path) -> Result<Option<KeyLock>, CacheError> {
        Ok(lock_file(path, LockMode::Exclusive, Wait::No)?.map(|lock| KeyLock { _lock: lock }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(key: &str, digest: &str, size: u64) -> ActionRecord {
        ActionRecord { artifact_digest: digest.into(), artifact_size: size, ..ActionRecord::for_test(key, b"") }
    }

    #[test]
    fn put_then_get_and_corruption_drops_the_entry() {
        let dir = tempfile::tempdir().unwrap();
        let cache = LocalCache::open(dir.path()).unwrap();
        let archive = cache.tmp_dir().join("a");
        fs::write(&archive, b"archive bytes").unwrap();
        let digest = blake3::hash(b"archive bytes").to_hex().to_string();
        let k1 = "1".repeat(64);
        cache.put(&record(&k1, &digest, 13), &archive).unwrap();
        assert!(!archive.exists(), "put moves the archive into the store");
        let mut corrupt = vec![];
        let hit = cache.get(&k1, &mut |c| corrupt.push(c)).unwrap().unwrap();
        assert_eq!(hit.record.artifact_digest, digest);
        assert!(dir.path().join("CACHEDIR.TAG").exists());

        fs::write(cache.blob_path(&digest), b"archive bytez").unwrap();
        assert!(cache.get(&k1, &mut |c| corrupt.push(c)).unwrap().is_none());
        assert_eq!(corrupt.len(), 1);
        assert!(corrupt[0].reason.contains("digest"), "{}", corrupt[0].reason);
        assert!(!cache.action_path(&k1).exists());
        assert!(cache.get(&k1, &mut |c| corrupt.push(c)).unwrap().is_none());
        assert_eq!(corrupt.len(), 1, "a dropped entry is a plain miss");
    }

    #[test]
    fn a_fifo_or_a_link_to_dev_zero_is_a_bad_record_not_a_hang() {
        let dir = tempfile::tempdir().unwrap();
        let cache = LocalCache::open(dir.path()).unwrap();
        let (fifo, zero) = ("f".repeat(64), "e".repeat(64));
        fs::create_dir_all(cache.action_path(&fifo).parent().unwrap()).unwrap();
        fs::create_dir_all(cache.action_path(&zero).parent().unwrap()).unwrap();
        let mode = rustix::fs::Mode::from_raw_mode(0o644);
        rustix::fs::mknodat(rustix::fs::CWD, cache.action_path(&fifo), rustix::fs::FileType::Fifo, mode, 0).unwrap();
        std::os::unix::fs::symlink("/dev/zero", cache.action_path(&zero)).unwrap();
        for key in [&fifo, &zero] {
            let mut corrupt = vec![];
            assert!(cache.get(key, &mut |c| corrupt.push(c)).unwrap().is_none());
            assert!(corrupt[0].reason.contains("not a regular file"), "{}", corrupt[0].reason);
            assert!(fs::symlink_metadata(cache.action_path(key)).is_err(), "dropped");
        }
    }

    #[test]
    fn newer_record_format_is_an_error_not_a_miss() {
        let dir = tempfile::tempdir().unwrap();
        let cache = LocalCache::open(dir.path()).unwrap();
        let mut r = record("k2", "00", 0);
        r.format = RECORD_FORMAT + 1;
        cache.put_json(&cache.action_path("k2"), &r).unwrap();
        assert!(matches!(cache.get("k2", &mut |_| {}), Err(CacheError::NewerFormat { .. })));
    }

    #[test]
    fn key_lock_is_exclusive_across_handles() {
        let dir = tempfile::tempdir().unwrap();
        let cache = LocalCache::open(dir.path()).unwrap();
        let held = cache.lock_key("k", || panic!("first lock must not wait")).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let cache2 = cache.clone();
        let waiter = std::thread::spawn(move || {
            let mut waited = false;
            let _lock = cache2.lock_key("k", || waited = true).unwrap();
            tx.send(waited).unwrap();
        });
        std::thread::sleep(std::time::Duration::from_millis(100));
        assert!(rx.try_recv().is_err(), "second lock must block while the first is held");
        drop(held);
        assert!(rx.recv().unwrap(), "the waiter was told it waits");
        waiter.join().unwrap();
    }
}
