//! The cache-wide lock, `<cache>/tbuild.lock` (uv's protocol): every tbuild that uses the
//! cache holds it shared for its whole run; `tbuild cache clean` takes it exclusive, so it
//! never deletes what a running tbuild is reading or writing. `gc` is finer grained (per-key
//! locks, the blobs lock) and runs alongside builds; see `cache-layout.md`, "Maintenance".

use std::path::Path;

use super::CacheError;
use crate::fs::{FileLock, LockMode, Wait, lock_file};

/// The file name of the cache-wide lock at the cache root; `clean` keeps it.
pub const DIR_LOCK: &str = "tbuild.lock";

/// Released on drop, or when the process exits.
#[derive(Debug)]
pub struct CacheDirLock {
    _lock: FileLock,
}

impl CacheDirLock {
    /// Shared use of the cache at `root` (created if needed); waits only while a `clean` runs.
    /// A cache on a read-only file system (a CI cache mounted read-only) serves hits: see
    /// [`lock_file`].
    pub fn shared(root: &Path, on_wait: impl FnOnce()) -> Result<CacheDirLock, CacheError> {
        let lock = lock_file(&root.join(DIR_LOCK), LockMode::Shared, Wait::Yes(Box::new(on_wait)))?;
        Ok(CacheDirLock { _lock: lock.expect("a waiting lock is taken") })
    }

    /// Sole use of the cache at `root`, or [`CacheError::InUse`] at once if any tbuild uses it.
    pub fn exclusive(root: &Path) -> Result<CacheDirLock, CacheError> {
        match lock_file(&root.join(DIR_LOCK), LockMode::Exclusive, Wait::No)? {
            Some(lock) => Ok(CacheDirLock { _lock: lock }),
            None => Err(CacheError::InUse { path: root.to_path_buf() }),
        }
    }
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
