//! The small file-system layer every other module writes and locks through:
//!
//! - [`AtomicFile`] / [`write_atomic`]: a file others may read concurrently is written to a
//!   temp file in the same filesystem, fsynced, renamed over the destination, and the
//!   directory fsynced. A reader sees the old file or the new one, never a torn one; a crash
//!   leaves only a temp file.
//! - [`rename_durable`]: the same guarantee for a file the caller wrote itself.
//! - [`lock_file`]: an advisory lock (flock) on a lock file, shared or exclusive, waiting or
//!   not, with the read-only fallback: on a read-only file system (a CI cache mounted
//!   read-only) an existing lock file still locks (flock needs no write access), and a
//!   missing one means nobody ever wrote there, so there is nothing to exclude.
//!
//! Modes: a new file gets what `open(2)` with 0666 gives under the process's umask (0644
//! under the usual 022), as any other tool's files would, not the 0600 of a temp file; a
//! file that is replaced keeps the mode it had.
//!
//! Errors are [`FsError`] (the path and the OS error); each layer converts it into its own
//! error type, so this module depends on nothing else of the crate.

use std::fs::{self, File, TryLockError};
use std::io::{self, ErrorKind, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use tempfile::NamedTempFile;

/// A file-system operation that failed, and on which path.
#[derive(Debug, thiserror::Error)]
#[error("i/o error on {path}: {source}")]
pub struct FsError {
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

fn io_at(path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> FsError {
    let path = path.into();
    move |source| FsError { path, source }
}

/// A file being written; it becomes visible at its destination only on [`AtomicFile::commit`].
/// Dropping it uncommitted deletes the temp file.
pub struct AtomicFile {
    temp: NamedTempFile,
    dest: PathBuf,
}

impl AtomicFile {
    /// Starts a file that will land at `dest`; the temp file lives in `temp_dir`, which
    /// must be on the same filesystem as `dest` for the rename to be atomic.
    pub fn create(temp_dir: &Path, dest: &Path) -> Result<AtomicFile, FsError> {
        fs::create_dir_all(temp_dir).map_err(io_at(temp_dir))?;
        // The mode goes through open(2), so the umask applies to it as to any new file.
        let temp = tempfile::Builder::new()
            .prefix(".tmp-")
            .permissions(fs::Permissions::from_mode(0o666))
            .tempfile_in(temp_dir)
            .map_err(io_at(temp_dir))?;
        Ok(AtomicFile { temp, dest: dest.to_path_buf() })
    }

    pub fn file(&mut self) -> &mut File {
        self.temp.as_file_mut()
    }

    pub fn temp_path(&self) -> &Path {
        self.temp.path()
    }

    /// fsync, rename into place, fsync the parent directory.
    pub fn commit(self) -> Result<(), FsError> {
        let AtomicFile { temp, dest } = self;
        if let Ok(existing) = fs::metadata(&dest) {
            // A replaced file keeps its mode (a user's 0600 pins stay 0600).
            let mode = existing.permissions().mode() & 0o7777;
            temp.as_file().set_permissions(fs::Permissions::from_mode(mode)).map_err(io_at(temp.path()))?;
        }
        temp.as_file().sync_all().map_err(io_at(temp.path()))?;
        let parent = dest.parent().unwrap_or(Path::new("."));
        fs::create_dir_all(parent).map_err(io_at(parent))?;
        temp.persist(&dest).map_err(|e| FsError { path: dest.clone(), source: e.error })?;
        sync_dir(parent).map_err(io_at(parent))
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.temp.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.temp.flush()
    }
}

/// Writes `bytes` to `dest` atomically (see the module doc).
pub fn write_atomic(temp_dir: &Path, dest: &Path, bytes: &[u8]) -> Result<(), FsError> {
    let mut file = AtomicFile::create(temp_dir, dest)?;
    file.write_all(bytes).map_err(io_at(file.temp_path().to_path_buf()))?;
    file.commit()
}

/// Makes a rename durable: the directory entry itself must reach the disk.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Renames `from` (already written and closed by the caller) to `to` so that it survives a
/// crash: the file's data is synced first, the directory entry after the rename.
pub fn rename_durable(from: &Path, to: &Path) -> Result<(), FsError> {
    File::open(from).and_then(|f| f.sync_all()).map_err(io_at(from))?;
    fs::rename(from, to).map_err(io_at(to))?;
    sync_dir(to.parent().unwrap_or(Path::new("."))).map_err(io_at(to))
}

/// How a lock is held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockMode {
    /// Many holders at once (readers, or users of the cache dir).
    Shared,
    /// One holder.
    Exclusive,
}

/// Whether [`lock_file`] waits for a lock another process holds.
pub enum Wait<'a> {
    /// Wait, calling the closure once first (to say what the run is waiting for).
    Yes(Box<dyn FnOnce() + 'a>),
    /// Return `None` at once.
    No,
}

/// A held lock, released on drop (or when the process exits). `None` inside: a read-only
/// file system without the lock file, where there is nobody to exclude.
#[derive(Debug)]
pub struct FileLock {
    _file: Option<File>,
}

/// Locks `path` (created, with its parent dirs, if missing) as `mode` asks; `None` when
/// `wait` is [`Wait::No`] and another process holds it. See the module doc for the
/// read-only fallback.
pub fn lock_file(path: &Path, mode: LockMode, wait: Wait<'_>) -> Result<Option<FileLock>, FsError> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(io_at(parent))?;
    }
    let file = match File::options().create(true).truncate(false).write(true).open(path) {
        Ok(file) => file,
        Err(err) if err.kind() == ErrorKind::ReadOnlyFilesystem => match File::open(path) {
            Ok(file) => file,
            Err(missing) if missing.kind() == ErrorKind::NotFound => return Ok(Some(FileLock { _file: None })),
            Err(source) => return Err(FsError { path: path.into(), source }),
        },
        Err(source) => return Err(FsError { path: path.into(), source }),
    };
    let tried = match mode {
        LockMode::Shared => file.try_lock_shared(),
        LockMode::Exclusive => file.try_lock(),
    };
    match (tried, wait) {
        (Ok(()), _) => {}
        (Err(TryLockError::WouldBlock), Wait::No) => return Ok(None),
        (Err(TryLockError::WouldBlock), Wait::Yes(on_wait)) => {
            on_wait();
            match mode {
                LockMode::Shared => file.lock_shared(),
                LockMode::Exclusive => file.lock(),
            }
            .map_err(io_at(path))?;
        }
        (Err(TryLockError::Error(source)), _) => return Err(FsError { path: path.into(), source }),
    }
    Ok(Some(FileLock { _file: Some(file) }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_locks_coexist_and_exclude_an_exclusive_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("locks/a.lock");
        let shared = lock_file(&path, LockMode::Shared, Wait::No).unwrap().expect("free");
        let _also = lock_file(&path, LockMode::Shared, Wait::No).unwrap().expect("shared locks coexist");
        assert!(lock_file(&path, LockMode::Exclusive, Wait::No).unwrap().is_none(), "held shared");
        drop((shared, _also));
        assert!(lock_file(&path, LockMode::Exclusive, Wait::No).unwrap().is_some(), "released on drop");
    }

    #[test]
    fn a_durable_rename_moves_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let (from, to) = (dir.path().join("state.tmp"), dir.path().join("state"));
        fs::write(&from, b"new").unwrap();
        fs::write(&to, b"old").unwrap();
        rename_durable(&from, &to).unwrap();
        assert_eq!(fs::read(&to).unwrap(), b"new");
        assert!(!from.exists());
    }

    #[test]
    fn uncommitted_file_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("out/record.json");
        {
            let mut f = AtomicFile::create(&dir.path().join("tmp"), &dest).unwrap();
            f.write_all(b"half").unwrap();
        }
        assert!(!dest.exists());
        assert_eq!(fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
    }

    #[test]
    fn commit_replaces_destination() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("a/b.json");
        write_atomic(&dir.path().join("tmp"), &dest, b"one").unwrap();
        write_atomic(&dir.path().join("tmp"), &dest, b"two").unwrap();
        assert_eq!(fs::read(&dest).unwrap(), b"two");
    }

    #[test]
    fn new_files_follow_the_umask_and_replaced_files_keep_their_mode() {
        let dir = tempfile::tempdir().unwrap();
        // The umask as the process has it (read without changing it for other threads).
        let status = fs::read_to_string("/proc/self/status").unwrap();
        let umask = status.lines().find_map(|l| l.strip_prefix("Umask:")).unwrap().trim();
        let umask = u32::from_str_radix(umask, 8).unwrap();
        let fresh = dir.path().join("fresh.json");
        write_atomic(&dir.path().join("tmp"), &fresh, b"one").unwrap();
        assert_eq!(fs::metadata(&fresh).unwrap().permissions().mode() & 0o777, 0o666 & !umask);

        let pinned = dir.path().join("pinned.json");
        fs::write(&pinned, b"old").unwrap();
        fs::set_permissions(&pinned, fs::Permissions::from_mode(0o640)).unwrap();
        write_atomic(&dir.path().join("tmp"), &pinned, b"new").unwrap();
        assert_eq!(fs::metadata(&pinned).unwrap().permissions().mode() & 0o777, 0o640);
        assert_eq!(fs::read(&pinned).unwrap(), b"new");
    }
}
