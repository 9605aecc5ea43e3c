//! `tbuild cache clean`: remove the artifact store and the build state, or with `--all`
//! everything (git mirrors too). The caller holds the cache-wide lock exclusively, so no
//! tbuild is using what is removed.

use std::fs;
use std::path::PathBuf;

use super::dir_lock::DIR_LOCK;
use super::gc::{dir_size, remove_tree};
use super::{CacheError, LocalCache};

/// A removed path and its apparent size.
#[derive(Debug, serde::Serialize)]
pub struct Removed {
    pub path: PathBuf,
    pub bytes: u64,
}

/// Without `all`: `v1/` (records, archives, memos, logs, temp) and each repository's work
/// dir, checkout state and cargo target dir; git mirrors stay. With `all`: everything but
/// the cache-wide lock file and `CACHEDIR.TAG`.
pub fn clean(cache: &LocalCache, all: bool) -> Result<Vec<Removed>, CacheError> {
    let root = cache.root();
    let mut doomed = Vec::new();
    for entry in fs::read_dir(root).map_err(CacheError::io(root))?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name == DIR_LOCK || name == "CACHEDIR.TAG" {
            continue;
        }
        if all || entry.path() == cache.versioned_dir() || name.starts_with(".trash-") {
            doomed.push(entry.path());
        } else if name == "repos" {
            for repo in fs::read_dir(entry.path()).map_err(CacheError::io(entry.path()))?.flatten() {
                // The checkout state first: it describes work/, which must not outlive it.
                for part in ["checkout-state.json", "work", "cargo-target"] {
                    let path = repo.path().join(part);
                    if path.exists() {
                        doomed.push(path);
                    }
                }
            }
        }
    }
    let mut removed = Vec::new();
    for path in doomed {
        let bytes = dir_size(&path);
        if path.is_dir() {
            remove_tree(&path, root)?;
        } else {
            fs::remove_file(&path).map_err(CacheError::io(&path))?;
        }
        removed.push(Removed { path, bytes });
    }
    Ok(removed)
}
