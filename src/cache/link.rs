//! `--link-mode hardlink|reflink`: restore a hit from an unpacked tree kept in the store, so
//! a hit costs O(files) instead of O(bytes) (what uv does with its wheel cache).
//!
//! The tree of an archive lives in `v1/trees/<d0d1>/<digest>/`: its files exactly as the
//! archive holds them, made read-only, with their mtime set to 1 s after the epoch. The
//! archive stays the unit of storage and transfer (deterministic, digest-checked); the tree
//! is derived from it and re-derived whenever it fails a check.
//!
//! A hard-linked output *is* the store's file, so the tree is checked before every use: each
//! file's size, permissions and that fixed mtime. Writing to a file (through any of its
//! links, even as root, who ignores the read-only bit) sets its mtime to now, so a file
//! edited in an out dir is noticed and the tree re-made from the archive rather than handed
//! out again. Reflinked files share blocks copy-on-write, so an edit never reaches the store;
//! where the filesystem cannot reflink (ext4) or the store is on another filesystem than
//! `--out`, the file is copied instead, with a warning.

use std::fs;
use std::io::ErrorKind;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::local::RecordRead;
use super::no_follow::{Beneath, open_regular};
use super::{ActionRecord, ArchiveFile, ArtifactStore, CacheError, CorruptEntry, LocalCache, UnpackLimits, unpack};

/// How a hit's files reach `--out`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LinkMode {
    /// Extract the archive (the default: outputs are independent files).
    #[default]
    Copy,
    /// Hard-link the store's tree: outputs are read-only and shared with the store.
    Hardlink,
    /// Clone the store's tree copy-on-write (btrfs, XFS); copies where unsupported.
    Reflink,
}

impl std::fmt::Display for LinkMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LinkMode::Copy => "copy",
            LinkMode::Hardlink => "hardlink",
            LinkMode::Reflink => "reflink",
        })
    }
}

/// The mtime of every file of a tree: a write anywhere moves it.
const TREE_MTIME: Duration = Duration::from_secs(1);

pub(super) fn tree_dir(cache: &LocalCache, digest: &str) -> PathBuf {
    cache.trees_dir().join(&digest[..2.min(digest.len())]).join(digest)
}

/// Restores `key` into `dest` (an empty dir) by linking from its tree, making the tree from
/// the archive first if needed. `None` when the key is not in the cache or its entry failed
/// a check: the caller then takes the copy path, which reports and drops a bad entry (or
/// rebuilds a missing one).
///
/// The record goes through the same validation as in copy mode before anything is touched
/// (`LocalCache::read_record`), a hit needs its archive present with its recorded size, and
/// every file is linked into `dest` through [`Beneath`], which follows no link.
pub fn restore_linked(
    cache: &LocalCache,
    key: &str,
    dest: &Path,
    mode: LinkMode,
    on_corrupt: &mut dyn FnMut(CorruptEntry),
    warn: &dyn Fn(&str),
) -> Result<Option<ActionRecord>, CacheError> {
    let RecordRead::Found(record) = cache.read_record(key)? else { return Ok(None) };
    let record = *record;
    if !archive_present(cache, &record) {
        return Ok(None);
    }
    let tree = tree_dir(cache, &record.artifact_digest);
    if !tree_intact(&tree, &record.files) {
        if fs::symlink_metadata(&tree).is_ok() {
            tracing::info!("tree {} changed since it was made; re-making it", tree.display());
            remove_tree(cache, &tree);
        }
        // A full check of the archive, as a copy restore does.
        let Some(hit) = cache.get(key, on_corrupt)? else { return Ok(None) };
        match make_tree(cache, &hit.archive, &tree, &hit.record.files) {
            Ok(true) => {}
            // Refused or not as its record says: the copy path unpacks it again, reports
            // why and drops the entry.
            Ok(false) | Err(CacheError::UnsafeEntry { .. } | CacheError::CorruptArchive { .. }) => return Ok(None),
            Err(err) => return Err(err),
        }
    }
    let beneath = Beneath::open(dest).map_err(CacheError::io(dest))?;
    let mut fell_back = false;
    for file in &record.files {
        let (from, rel) = (tree.join(&file.path), file.path.as_str());
        let to = beneath.path(rel);
        if let Some(target) = &file.link {
            beneath.symlink(rel, target).map_err(CacheError::io(&to))?;
            continue;
        }
        let linked = match mode {
            LinkMode::Hardlink => beneath.hard_link(&from, rel),
            LinkMode::Reflink => reflink(&from, &beneath, rel, file.mode),
            LinkMode::Copy => Err(ErrorKind::Unsupported.into()),
        };
        match linked {
            Ok(()) => {}
            Err(err) if err.kind() == ErrorKind::NotFound => {
                // Another run is re-making this tree: the copy path restores it.
                return Ok(None);
            }
            Err(err) => {
                if !fell_back {
                    warn(&format!("--link-mode {mode} is not possible for {} ({err}); copying", to.display()));
                    fell_back = true;
                }
                copy_file(&from, &beneath, rel, file.mode).map_err(CacheError::io(&to))?;
            }
        }
    }
    Ok(Some(record))
}

/// A linked hit needs its archive as much as a copied one: present, of its recorded size
/// (one `stat`; its digest is checked whenever the tree is made, and by `cache verify`).
fn archive_present(cache: &LocalCache, record: &ActionRecord) -> bool {
    fs::symlink_metadata(cache.blob_path(&record.artifact_digest))
        .is_ok_and(|m| m.is_file() && m.len() == record.artifact_size)
}

/// Whether `tree` is a real dir holding exactly `files`, untouched since it was made (see
/// the module doc). Stats only: a flipped byte with its mtime put back passes here and is
/// found by `cache verify`, which hashes trees.
fn tree_intact(tree: &Path, files: &[ArchiveFile]) -> bool {
    if !fs::symlink_metadata(tree).is_ok_and(|m| m.is_dir()) {
        return false;
    }
    let epoch_plus = SystemTime::UNIX_EPOCH + TREE_MTIME;
    files.iter().all(|f| {
        let path = tree.join(&f.path);
        let Ok(meta) = fs::symlink_metadata(&path) else { return false };
        match &f.link {
            Some(target) => {
                meta.file_type().is_symlink() && fs::read_link(&path).is_ok_and(|t| t.as_os_str() == target.as_str())
            }
            None => {
                meta.is_file()
                    && meta.len() == f.size
                    && meta.permissions().mode() & 0o7777 == read_only(f.mode)
                    && meta.modified().is_ok_and(|m| m == epoch_plus)
            }
        }
    })
}

pub(super) fn read_only(mode: u32) -> u32 {
    mode & 0o555
}

/// The mtime every file of a tree has.
pub(super) fn tree_mtime() -> SystemTime {
    SystemTime::UNIX_EPOCH + TREE_MTIME
}

/// Unpacks `archive` into a temp dir and renames it to `tree`. `false` when the archive's
/// contents differ from its record (the caller treats the key as a miss).
fn make_tree(cache: &LocalCache, archive: &Path, tree: &Path, files: &[ArchiveFile]) -> Result<bool, CacheError> {
    let parent = tree.parent().expect("trees are sharded");
    fs::create_dir_all(parent).map_err(CacheError::io(parent))?;
    remove_abandoned(&cache.trees_dir());
    let temp =
        tempfile::Builder::new().prefix(".tree-").tempdir_in(cache.trees_dir()).map_err(CacheError::io(parent))?;
    let unpacked = unpack(archive, None, temp.path(), UnpackLimits::for_files(files))?;
    if unpacked != files {
        return Ok(false);
    }
    for file in files.iter().filter(|f| f.link.is_none()) {
        let path = temp.path().join(&file.path);
        // Unpacked a moment ago, below no link (entry_layout); O_NOFOLLOW all the same.
        let handle = fs::File::options()
            .write(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
            .map_err(CacheError::io(&path))?;
        handle.set_modified(tree_mtime()).map_err(CacheError::io(&path))?;
        handle.set_permissions(fs::Permissions::from_mode(read_only(file.mode))).map_err(CacheError::io(&path))?;
    }
    let temp = temp.keep();
    match fs::rename(&temp, tree) {
        Ok(()) => Ok(true),
        // Another run made it first: the same bytes.
        Err(_) if fs::symlink_metadata(tree).is_ok_and(|m| m.is_dir()) => {
            let _ = fs::remove_dir_all(&temp);
            Ok(true)
        }
        Err(source) => {
            let _ = fs::remove_dir_all(&temp);
            Err(CacheError::Io { path: tree.to_path_buf(), source })
        }
    }
}

/// Moves a damaged tree aside, then deletes it; readers linking from it meanwhile fail with
/// NotFound and take the copy path.
pub(super) fn remove_tree(cache: &LocalCache, tree: &Path) {
    let Ok(aside) = tempfile::Builder::new().prefix(".stale-").tempdir_in(cache.trees_dir()) else { return };
    let aside = aside.keep().join("tree");
    if fs::rename(tree, &aside).is_ok() {
        let _ = fs::remove_dir_all(aside.parent().expect("joined"));
    }
}

/// Temp and stale trees a killed run left behind. A day old is far older than any tree
/// being made, so this cannot race a live run.
fn remove_abandoned(trees: &Path) {
    let Ok(entries) = fs::read_dir(trees) else { return };
    let day = Duration::from_secs(24 * 3600);
    for entry in entries.flatten() {
        let name = entry.file_name();
        let ours = name.to_string_lossy().starts_with(".tree-") || name.to_string_lossy().starts_with(".stale-");
        let old = entry.metadata().and_then(|m| m.modified()).is_ok_and(|t| t.elapsed().is_ok_and(|age| age > day));
        if ours && old {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

/// A copy-on-write clone of the tree's file `from` as `rel` beneath `dest` (FICLONE), where
/// the filesystem supports it.
fn reflink(from: &Path, dest: &Beneath, rel: &str, mode: u32) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let (src, _) = open_regular(from)?;
    let dst = dest.create_file(rel, mode)?;
    // SAFETY: FICLONE takes the source fd as its argument; both fds are open for the call.
    let done = unsafe { libc::ioctl(dst.as_raw_fd(), libc::FICLONE, src.as_raw_fd()) };
    if done == 0 {
        return dst.set_permissions(fs::Permissions::from_mode(mode));
    }
    let err = std::io::Error::last_os_error();
    drop(dst);
    // Its parents were just opened without following links: this path is the file we made.
    let _ = fs::remove_file(dest.path(rel));
    // Unsupported here: not a NotFound, so the caller copies.
    Err(if err.kind() == ErrorKind::NotFound { std::io::Error::other(err) } else { err })
}

/// A plain copy of the tree's file `from` as `rel` beneath `dest` (a failed link or clone
/// left nothing there).
fn copy_file(from: &Path, dest: &Beneath, rel: &str, mode: u32) -> std::io::Result<()> {
    let (mut src, _) = open_regular(from)?;
    let mut dst = dest.create_file(rel, mode)?;
    std::io::copy(&mut src, &mut dst)?;
    dst.set_permissions(fs::Permissions::from_mode(mode))
}
