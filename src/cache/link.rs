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
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::{
    ActionRecord, ArchiveFile, ArtifactStore, CacheError, CorruptEntry, LocalCache, RECORD_FORMAT, UnpackLimits, unpack,
};

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

fn tree_dir(cache: &LocalCache, digest: &str) -> PathBuf {
    cache.trees_dir().join(&digest[..2.min(digest.len())]).join(digest)
}

/// Restores `key` into `dest` (an empty dir) by linking from its tree, making the tree from
/// the archive first if needed. `None` when the key is not in the cache or its entry failed
/// a check (reported through `on_corrupt`): the caller then takes the copy path, which
/// drops or rebuilds it.
pub fn restore_linked(
    cache: &LocalCache,
    key: &str,
    dest: &Path,
    mode: LinkMode,
    on_corrupt: &mut dyn FnMut(CorruptEntry),
    warn: &dyn Fn(&str),
) -> Result<Option<ActionRecord>, CacheError> {
    let Some(record) = cache.get_json::<ActionRecord>(&cache.action_path(key)) else { return Ok(None) };
    if record.format > RECORD_FORMAT {
        return Ok(None);
    }
    let tree = tree_dir(cache, &record.artifact_digest);
    if !tree_intact(&tree, &record.files) {
        if tree.exists() {
            tracing::info!("tree {} changed since it was made; re-making it", tree.display());
            remove_tree(cache, &tree);
        }
        // A full check of the archive, as a copy restore does.
        let Some(hit) = cache.get(key, on_corrupt)? else { return Ok(None) };
        if !make_tree(cache, &hit.archive, &tree, &hit.record.files)? {
            return Ok(None);
        }
    }
    let mut fell_back = false;
    for file in &record.files {
        let (from, to) = (tree.join(&file.path), dest.join(&file.path));
        if let Some(parent) = to.parent() {
            fs::create_dir_all(parent).map_err(CacheError::io(parent))?;
        }
        if let Some(target) = &file.link {
            symlink(target, &to).map_err(CacheError::io(&to))?;
            continue;
        }
        let linked = match mode {
            LinkMode::Hardlink => fs::hard_link(&from, &to),
            LinkMode::Reflink => {
                reflink(&from, &to).and_then(|()| fs::set_permissions(&to, fs::Permissions::from_mode(file.mode)))
            }
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
                let _ = fs::remove_file(&to);
                fs::copy(&from, &to).map_err(CacheError::io(&to))?;
                fs::set_permissions(&to, fs::Permissions::from_mode(file.mode)).map_err(CacheError::io(&to))?;
            }
        }
    }
    Ok(Some(record))
}

/// Whether `tree` holds exactly `files`, untouched since it was made (see the module doc).
fn tree_intact(tree: &Path, files: &[ArchiveFile]) -> bool {
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

fn read_only(mode: u32) -> u32 {
    mode & 0o555
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
        let handle = fs::File::options().write(true).open(&path).map_err(CacheError::io(&path))?;
        handle.set_modified(SystemTime::UNIX_EPOCH + TREE_MTIME).map_err(CacheError::io(&path))?;
        fs::set_permissions(&path, fs::Permissions::from_mode(read_only(file.mode))).map_err(CacheError::io(&path))?;
    }
    let temp = temp.keep();
    match fs::rename(&temp, tree) {
        Ok(()) => Ok(true),
        // Another run made it first: the same bytes.
        Err(_) if tree.is_dir() => {
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
fn remove_tree(cache: &LocalCache, tree: &Path) {
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

/// A copy-on-write clone of `from` at `to` (FICLONE), where the filesystem supports it.
fn reflink(from: &Path, to: &Path) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let src = fs::File::open(from)?;
    let dst = fs::File::options().write(true).create_new(true).open(to)?;
    // SAFETY: FICLONE takes the source fd as its argument; both fds are open for the call.
    let done = unsafe { libc::ioctl(dst.as_raw_fd(), libc::FICLONE, src.as_raw_fd()) };
    if done == 0 {
        return Ok(());
    }
    let err = std::io::Error::last_os_error();
    drop(dst);
    let _ = fs::remove_file(to);
    // Unsupported here: not a NotFound, so the caller copies.
    Err(if err.kind() == ErrorKind::NotFound { std::io::Error::other(err) } else { err })
}
