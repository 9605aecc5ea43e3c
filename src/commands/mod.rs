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

/// Refuses an `--out` inside the cache dir (the cache's temp sweep, `gc` or `clean` would
/// delete it) or one holding the cache dir (publishing replaces `--out` as a whole).
pub fn check_out_outside_cache(out: &Path, cache: &LocalCache) -> Result<(), Error> {
    let (out_abs, cache_abs) = (resolved(out), resolved(cache.root()));
    if out_abs.starts_with(&cache_abs) {
        return Err(Error::Usage(format!(
            "--out {} is inside the cache dir {}, whose maintenance (temp sweeps, gc, clean) would delete it; \
             pick an --out outside the cache dir",
            out.display(),
            cache_abs.display()
        )));
    }
    if cache_abs.starts_with(&out_abs) {
        return Err(Error::Usage(format!(
            "--out {} holds the cache dir {}, and publishing replaces --out as a whole; \
             pick an --out that does not contain the cache dir",
            out.display(),
            cache_abs.display()
        )));
    }
    Ok(())
}

/// `path` made absolute with its links resolved, as far as it exists (the rest appended).
fn resolved(path: &Path) -> PathBuf {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut existing = absolute.as_path();
    let mut rest = Vec::new();
    loop {
        if let Ok(real) = existing.canonicalize() {
            return rest.iter().rev().fold(real, |acc: PathBuf, part| acc.join(part));
        }
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_os_string());
                existing = parent;
            }
            _ => return absolute,
        }
    }
}
