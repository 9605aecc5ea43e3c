//! What a hit must pass before any of it is downloaded or unpacked, beyond its digests, and
//! how a failed restore is told apart from a failing machine.
//!
//! Digests prove an entry is the one its record names; they say nothing about its size. An
//! honest record may list gigabytes, so a hit is refused when it holds more than
//! `--max-entry-size` (archive or unpacked total), and an unpack that fits the cap still
//! needs that much free space where it lands: it is checked first, so a full disk is a
//! clear error before anything is written rather than a half-unpacked dir.
//!
//! Contract of [`layout_collision`]: an unpack writes into a fresh dir that only tbuild
//! writes to, so an error saying a name already exists, is (not) a directory or loops was
//! caused by the entry's own layout (a file that is also a parent dir, a link under a file,
//! two entries on one name). Such an entry is refused like an unsafe one; every other i/o
//! error (no space, no permission, a read-only file system) is the machine's and stays an
//! error.

use std::io;
use std::path::Path;

use super::ActionRecord;
use crate::units::human_bytes;

/// Default of `--max-entry-size`: tasker-core's largest entries are its debug binaries
/// (~130 MB each) and the TypeScript addon (~160 MB); a warm-state snapshot of its 3.1 GB
/// target dir is the largest thing stored. 4 GiB admits all of them with room, and stops a
/// record that lists a disk's worth of files.
pub const DEFAULT_MAX_ENTRY_SIZE: u64 = 4 << 30;

/// The bytes an entry's files take once unpacked.
pub fn unpacked_size(record: &ActionRecord) -> u64 {
    record.files.iter().fold(0u64, |sum, f| sum.saturating_add(f.size))
}

/// Why `record` is too big to restore under `max`, if it is.
pub fn oversized(record: &ActionRecord, max: u64) -> Option<String> {
    let unpacked = unpacked_size(record);
    let (what, size) = if record.artifact_size > max {
        ("its archive is", record.artifact_size)
    } else if unpacked > max {
        ("its files are", unpacked)
    } else {
        return None;
    };
    Some(format!(
        "{what} {} ({size} bytes), over --max-entry-size {} ({max} bytes); raise --max-entry-size \
         (TBUILD_MAX_ENTRY_SIZE) if entries this big are expected",
        human_bytes(size),
        human_bytes(max)
    ))
}

/// Bytes an unprivileged writer may still use on the file system holding `dir`.
pub fn free_bytes(dir: &Path) -> io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).map_err(io::Error::other)?;
    let mut stats = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `path` is a NUL-terminated string and `stats` a buffer of the right type;
    // statvfs fills it completely when it returns 0.
    let done = unsafe { libc::statvfs(path.as_ptr(), stats.as_mut_ptr()) };
    if done != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: initialised by the successful call above.
    let stats = unsafe { stats.assume_init() };
    #[allow(clippy::unnecessary_cast)] // the field types differ between platforms
    Ok((stats.f_bavail as u64).saturating_mul(stats.f_frsize as u64))
}

/// Whether an i/o error of an unpack or a link into a fresh dir came from the entry's own
/// layout (see the module doc).
pub fn layout_collision(err: &io::Error) -> bool {
    matches!(err.kind(), io::ErrorKind::AlreadyExists | io::ErrorKind::NotADirectory | io::ErrorKind::IsADirectory)
        || err.raw_os_error() == Some(libc::ELOOP)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::{ArchiveFile, RECORD_FORMAT};

    fn record(archive: u64, files: &[u64]) -> ActionRecord {
        ActionRecord {
            format: RECORD_FORMAT,
            target: "t".into(),
            key: "k".into(),
            artifact_digest: "d".into(),
            artifact_size: archive,
            files: files
                .iter()
                .enumerate()
                .map(|(i, &size)| ArchiveFile { path: format!("f{i}"), mode: 0o644, size, digest: None, link: None })
                .collect(),
            build_duration_ms: 0,
            provenance: String::new(),
            toolchain: String::new(),
            created_at: 0,
            derivation: None,
        }
    }

    #[test]
    fn the_cap_counts_the_archive_and_the_unpacked_total() {
        assert_eq!(oversized(&record(10, &[40, 50]), 100), None);
        assert!(oversized(&record(101, &[1]), 100).unwrap().contains("its archive is"));
        let unpacked = oversized(&record(10, &[60, 50]), 100).unwrap();
        assert!(unpacked.contains("its files are") && unpacked.contains("(110 bytes)"), "{unpacked}");
        // Sizes that would overflow a sum are still over any cap.
        assert!(oversized(&record(1, &[u64::MAX, u64::MAX]), u64::MAX - 1).is_some());
    }

    #[test]
    fn free_bytes_reads_the_file_system_and_collisions_are_told_from_machine_errors() {
        let dir = tempfile::tempdir().unwrap();
        assert!(free_bytes(dir.path()).unwrap() > 0);
        assert!(free_bytes(&dir.path().join("missing")).is_err());
        let file = dir.path().join("file");
        std::fs::write(&file, b"x").unwrap();
        let under_a_file = std::fs::create_dir_all(file.join("sub")).unwrap_err();
        assert!(layout_collision(&under_a_file), "{under_a_file:?}");
        let twice = std::os::unix::fs::symlink("a", &file).unwrap_err();
        assert!(layout_collision(&twice), "{twice:?}");
        assert!(!layout_collision(&io::Error::from(io::ErrorKind::StorageFull)));
        assert!(!layout_collision(&io::Error::from(io::ErrorKind::PermissionDenied)));
    }
}
