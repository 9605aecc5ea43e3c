//! The one way this crate writes a file that others may read concurrently: a temp file in
//! the same filesystem, fsync, rename over the destination, fsync the directory. A reader
//! sees the old file or the new one, never a torn one; a crash leaves only a temp file.
//!
//! Modes: a new file gets what `open(2)` with 0666 gives under the process's umask (0644
//! under the usual 022), as any other tool's files would, not the 0600 of a temp file; a
//! file that is replaced keeps the mode it had.

use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use tempfile::NamedTempFile;

use super::CacheError;

/// A file being written; it becomes visible at its destination only on [`AtomicFile::commit`].
/// Dropping it uncommitted deletes the temp file.
pub struct AtomicFile {
    temp: NamedTempFile,
    dest: PathBuf,
}

impl AtomicFile {
    /// Starts a file that will land at `dest`; the temp file lives in `temp_dir`, which
    /// must be on the same filesystem as `dest` for the rename to be atomic.
    pub fn create(temp_dir: &Path, dest: &Path) -> Result<AtomicFile, CacheError> {
        fs::create_dir_all(temp_dir).map_err(CacheError::io(temp_dir))?;
        // The mode goes through open(2), so the umask applies to it as to any new file.
        let temp = tempfile::Builder::new()
            .prefix(".tmp-")
            .permissions(fs::Permissions::from_mode(0o666))
            .tempfile_in(temp_dir)
            .map_err(CacheError::io(temp_dir))?;
        Ok(AtomicFile { temp, dest: dest.to_path_buf() })
    }

    pub fn file(&mut self) -> &mut File {
        self.temp.as_file_mut()
    }

    pub fn temp_path(&self) -> &Path {
        self.temp.path()
    }

    /// fsync, rename into place, fsync the parent directory.
    pub fn commit(self) -> Result<(), CacheError> {
        let AtomicFile { temp, dest } = self;
        if let Ok(existing) = fs::metadata(&dest) {
            // A replaced file keeps its mode (a user's 0600 pins stay 0600).
            let mode = existing.permissions().mode() & 0o7777;
            temp.as_file().set_permissions(fs::Permissions::from_mode(mode)).map_err(CacheError::io(temp.path()))?;
        }
        temp.as_file().sync_all().map_err(CacheError::io(temp.path()))?;
        let parent = dest.parent().unwrap_or(Path::new("."));
        fs::create_dir_all(parent).map_err(CacheError::io(parent))?;
        temp.persist(&dest).map_err(|e| CacheError::Io { path: dest.clone(), source: e.error })?;
        sync_dir(parent).map_err(CacheError::io(parent))
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
pub fn write_atomic(temp_dir: &Path, dest: &Path, bytes: &[u8]) -> Result<(), CacheError> {
    let mut file = AtomicFile::create(temp_dir, dest)?;
    file.write_all(bytes).map_err(CacheError::io(file.temp_path().to_path_buf()))?;
    file.commit()
}

/// Makes a rename durable: the directory entry itself must reach the disk.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

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
