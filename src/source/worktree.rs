//! Listing a git working tree the way `git status` sees it: every file of the index that is
//! still on disk, plus every untracked file that no ignore rule covers, each read from disk.
//!
//! This is the file set of `--path` when the dir is the root of a git checkout. It differs
//! from a plain walk with ignore rules exactly where git does: a tracked file stays an input
//! even when a `.gitignore` pattern matches it (it was force-added), and the user's global
//! excludes apply to untracked files as they do for `git status`. Modes and symlinks come
//! from disk, as git records them on a commit, so a clean checkout lists what its commit's
//! tree lists and gets the same keys.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use git2::{Repository, Status, StatusOptions};

use super::{Entry, SourceError};

const MODE_SUBMODULE: u32 = 0o160000;

/// The repository whose work dir is exactly `root`, if there is one.
pub fn open(root: &Path) -> Option<Repository> {
    let repo = Repository::open(root).ok()?;
    let workdir = repo.workdir()?.canonicalize().ok()?;
    (workdir == root).then_some(repo)
}

pub fn list(repo: &Repository, root: &Path) -> Result<BTreeMap<String, Entry>, SourceError> {
    let git_err = |source| SourceError::Git { path: root.to_path_buf(), source };
    let mut paths = BTreeSet::new();
    let index = repo.index().map_err(git_err)?;
    for entry in index.iter() {
        // Stage 0 only (a conflicted path is listed once, from disk), and no submodules:
        // a commit's tree walk skips them too.
        let stage = (entry.flags >> 12) & 0x3;
        if stage > 1 || entry.mode == MODE_SUBMODULE {
            continue;
        }
        match String::from_utf8(entry.path) {
            Ok(path) => {
                paths.insert(path);
            }
            Err(_) => tracing::warn!("skipping a non-UTF-8 path in the index of {}", root.display()),
        }
    }
    let mut options = StatusOptions::new();
    options
        .include_untracked(true)
        .recurse_untracked_dirs(true)
        .include_ignored(false)
        .include_unmodified(false)
        .exclude_submodules(true);
    let statuses = repo.statuses(Some(&mut options)).map_err(git_err)?;
    for status in statuses.iter() {
        if status.status().contains(Status::WT_NEW) {
            match status.path() {
                Ok(path) => {
                    paths.insert(path.to_string());
                }
                Err(_) => tracing::warn!("skipping a non-UTF-8 untracked path in {}", root.display()),
            }
        }
    }

    let mut entries = BTreeMap::new();
    for path in paths {
        let full = root.join(&path);
        let meta = match std::fs::symlink_metadata(&full) {
            Ok(meta) => meta,
            // Deleted in the work tree (staged or not): not part of the tree as it is.
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => continue,
            Err(source) => return Err(SourceError::Io { path: full, source }),
        };
        let entry = if meta.file_type().is_symlink() {
            let target = std::fs::read_link(&full).map_err(|source| SourceError::Io { path: full.clone(), source })?;
            Entry::Symlink { target: target.to_string_lossy().into_owned() }
        } else if meta.is_file() {
            // As git decides 100755 vs 100644: the owner's execute bit alone.
            Entry::File { executable: meta.permissions().mode() & 0o100 != 0, blob: None }
        } else {
            // A tracked file replaced by a directory, or a nested repository.
            continue;
        };
        entries.insert(path, entry);
    }
    Ok(entries)
}
