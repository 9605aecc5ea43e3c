//! One file per subcommand: glue that runs the pipeline stages in order.

pub mod affected;
pub mod bundle;
pub mod cache;
pub mod core;
pub mod docs;
pub mod explain;
pub mod key;
pub mod key_range;
pub mod recipe;
pub mod release;
pub mod restore;
pub mod upstream;

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::cache::{KeyLock, LocalCache};
use crate::error::Error;
use crate::report::{Reporter, human_age};
use crate::source::{Mirror, SourceError, Tree, repo_id};

/// A resolved source: the tree, and for commits the repository it came from.
pub struct LoadedTree {
    pub tree: Tree,
    pub repo_url: String,
    pub repo_dir: Option<PathBuf>,
}

/// Mirrors `repo` (fetching only when needed) and reads the tree of `rev`.
///
/// A local path is checked before anything is created for it, and fetched from even when
/// `offline`: reading a directory needs no network. A path that is gone is read from its
/// mirror if it has one. A mirror created for a fetch that then
/// failed is removed, so `repos/` keeps no empty mirror.
pub fn load_commit(
    cache: &LocalCache,
    repo: &str,
    rev: &str,
    offline: bool,
    reporter: &Reporter,
) -> Result<LoadedTree, Error> {
    let url = crate::source::normalise_url(repo);
    let local = !crate::source::is_remote(repo);
    // A path that is gone can still be read from its mirror (a commit fetched before).
    let local_gone = local && !Path::new(&url).exists();
    let repo_dir = cache.repo_dir(&repo_id(&url));
    if local_gone && !repo_dir.join("mirror.git").exists() {
        return Err(SourceError::NoSuchPath { path: url }.into());
    }
    // One fetch into a mirror at a time; readers of other processes are unaffected.
    let _lock = KeyLock::acquire(&repo_dir.join("mirror.lock"), || {
        reporter.info("waiting for another tbuild fetching this repository")
    })?;
    let mirror_dir = repo_dir.join("mirror.git");
    let created = !mirror_dir.exists();
    let mirror = Mirror::open(&mirror_dir, &url)?;
    let fetch_allowed = !offline || (local && !local_gone);
    let commit = match mirror.resolve(rev, !fetch_allowed, &mut reporter.fetch_progress(&url)) {
        Ok(commit) => commit,
        Err(err) => {
            drop(mirror);
            if created && crate::source::is_empty_mirror(&mirror_dir) {
                let _ = std::fs::remove_dir_all(&mirror_dir);
            }
            return Err(match err {
                SourceError::Unreachable { .. } if local_gone => SourceError::NoSuchPath { path: url }.into(),
                err => err.into(),
            });
        }
    };
    let repo = mirror.into_repo();
    if !fetch_allowed && repo.resolve_reference_from_short_name(rev).is_ok() {
        reporter.warn(&offline_ref_warning(&repo, rev, commit));
    }
    let tree = Tree::from_commit(repo, commit)?;
    Ok(LoadedTree { tree, repo_url: url, repo_dir: Some(repo_dir) })
}

/// `--offline --sha main`: the branch is where it was at the mirror's last fetch, which may be
/// long ago; say how long, and how old its commit is.
fn offline_ref_warning(repo: &git2::Repository, rev: &str, commit: git2::Oid) -> String {
    let now = SystemTime::now();
    // libgit2 rewrites FETCH_HEAD on every fetch: its mtime is the last fetch.
    let fetched = std::fs::metadata(repo.path().join("FETCH_HEAD"))
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| now.duration_since(t).ok())
        .map_or_else(|| "at an unknown time".to_string(), |age| format!("{} ago", human_age(age)));
    let committed = repo
        .find_commit(commit)
        .ok()
        .and_then(|c| u64::try_from(c.time().seconds()).ok())
        .and_then(|secs| now.duration_since(UNIX_EPOCH + Duration::from_secs(secs)).ok())
        .map_or_else(String::new, |age| format!(", its commit {} old", human_age(age)));
    format!(
        "--offline: `{rev}` is {} as the mirror last fetched it, {fetched}{committed}; run without --offline to \
         use where `{rev}` is now",
        &commit.to_string()[..12]
    )
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
        (Some(sha), None) => load_commit(cache, &rev.repo.url, sha, rev.repo.offline, reporter),
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
