//! One file per subcommand: glue that runs the pipeline stages in order.

pub mod affected;
pub mod bundle;
pub mod cache;
pub mod core;
pub mod explain;
pub mod key;
pub mod key_range;
pub mod recipe;
pub mod release;
pub mod restore;
pub mod upstream;

use std::path::{Path, PathBuf};

use crate::cache::{KeyLock, LocalCache};
use crate::error::Error;
use crate::report::Reporter;
use crate::source::{Mirror, Tree, repo_id};

/// A resolved source: the tree, and for commits the repository it came from.
pub struct LoadedTree {
    pub tree: Tree,
    pub repo_url: String,
    pub repo_dir: Option<PathBuf>,
}

/// Mirrors `repo` (fetching only when needed) and reads the tree of `rev`.
pub fn load_commit(
    cache: &LocalCache,
    repo: &str,
    rev: &str,
    offline: bool,
    reporter: &Reporter,
) -> Result<LoadedTree, Error> {
    let url = crate::source::normalise_url(repo);
    let repo_dir = cache.repo_dir(&repo_id(&url));
    // One fetch into a mirror at a time; readers of other processes are unaffected.
    let _lock = KeyLock::acquire(&repo_dir.join("mirror.lock"), || {
        reporter.info("waiting for another tbuild fetching this repository")
    })?;
    let mirror = Mirror::open(&repo_dir.join("mirror.git"), &url)?;
    let commit = mirror.resolve(rev, offline, &mut reporter.fetch_progress(&url))?;
    let tree = Tree::from_commit(mirror.into_repo(), commit)?;
    Ok(LoadedTree { tree, repo_url: url, repo_dir: Some(repo_dir) })
}

/// Reads a checkout on disk as it is.
pub fn load_dir(path: &Path) -> Result<LoadedTree, Error> {
    let root = path.canonicalize().map_err(|source| crate::source::SourceError::Io { path: path.into(), source })?;
    let tree = Tree::from_dir(root.clone())?;
    Ok(LoadedTree { tree, repo_url: root.display().to_string(), repo_dir: None })
}

/// The tree of `core --sha` or `core --path`.
pub fn load_tree(cache: &LocalCache, rev: &crate::cli::RevArgs, reporter: &Reporter) -> Result<LoadedTree, Error> {
    match (&rev.sha, &rev.path) {
        (None, Some(path)) => load_dir(path),
        (Some(sha), None) => load_commit(cache, &rev.repo, sha, rev.offline, reporter),
        _ => Err(Error::Usage("give exactly one of --sha and --path".into())),
    }
}
