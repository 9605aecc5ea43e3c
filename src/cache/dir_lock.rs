//! The cache-wide lock, `<cache>/tbuild.lock` (uv's protocol): every tbuild that uses the
//! cache holds it shared for its whole run; `tbuild cache clean` takes it exclusive, so it
//! never deletes what a running tbuild is reading or writing. `gc` is finer grained (per-key
//! locks, the blobs lock) and runs alongside builds; see `cache-layout.md`, "Maintenance".

use std::fs::{self, File, TryLockError};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use super::CacheError;

/// The file name of the cache-wide lock at the cache root; `clean` keeps it.
pub const DIR_LOCK: &str = "tbuild.lock";

/// Released on drop, or when the process exits.
#[derive(Debug)]
pub struct CacheDirLock {
    /// `None` on a read-only cache that never had a lock file: no clean can run there.
    _file: Option<File>,
}

impl CacheDirLock {
    /// Shared use of the cache at `root` (created if needed); waits only while a `clean` runs.
    pub fn shared(root: &Path, on_wait: impl FnOnce()) -> Result<CacheDirLock, CacheError> {
        let (file, path) = match open(root) {
            Ok(opened) => opened,
            // A cache on a read-only file system (a CI cache mounted read-only) serves hits:
            // an existing lock file still locks (flock needs no write access).
            Err(CacheError::Io { path, source }) if source.kind() == ErrorKind::ReadOnlyFilesystem => {
                match File::open(&path) {
                    Ok(file) => (file, path),
                    Err(err) if err.kind() == ErrorKind::NotFound => return Ok(CacheDirLock { _file: None }),
                    Err(source) => return Err(CacheError::Io { path, source }),
                }
            }
            Err(err) => return Err(err),
        };
        match file.try_lock_shared() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                on_wait();
                file.lock_shared().map_err(CacheError::io(&path))?;
            }
            Err(TryLockError::Error(source)) => return Err(CacheError::Io { path, source }),
        }
        Ok(CacheDirLock { _file: Some(file) })
    }

    /// Sole use of the cache at `root`, or [`CacheError::InUse`] at once if any tbuild uses it.
    pub fn exclusive(root: &Path) -> Result<CacheDirLock, CacheError> {
        let (file, path) = open(root)?;
        match file.try_lock() {
            Ok(()) => Ok(CacheDirLock { _file: Some(file) }),
            Err(TryLockError::WouldBlock) => Err(CacheError::InUse { path: root.to_path_buf() }),
            Err(TryLockError::Error(source)) => Err(CacheError::Io { path, source }),
        }
    }
}

fn open(root: &Path) -> Result<(File, PathBuf), CacheError> {
    let path = root.join(DIR_LOCK);
    fs::create_dir_all(root).map_err(CacheError::io(&path))?;
    let file = File::options().create(true).truncate(false).write(true).open(&path).map_err(CacheError::io(&path))?;
    Ok((file, path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exclusive_is_refused_while_shared_is_held_and_granted_after() {
        let dir = tempfile::tempdir().unwrap();
        let a = CacheDirLock::shared(dir.path(), || panic!("nothing holds it")).unwrap();
        let _b = CacheDirLock::shared(dir.path(), || panic!("shared locks coexist")).unwrap();
        assert!(matches!(CacheDirLock::exclusive(dir.path()), Err(CacheError::InUse { .. })));
        drop(a);
        drop(_b);
        let _only = CacheDirLock::exclusive(dir.path()).unwrap();
    }
}
