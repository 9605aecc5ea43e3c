//! The source stage: the tree a run works on, either a commit (mirrored into the cache, fetched
//! only when needed) or a checkout on disk read as it is. Every command that plans a tree gets
//! it from [`load`].

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::cache::{KeyLock, LocalCache};
use crate::error::Error;
use crate::report::{Reporter, human_age};
use crate::source::{Mirror, SourceError, Tree, repo_id};

/// What to read: a revision of a repository, or a directory on disk.
#[derive(Debug, Clone, Copy)]
pub enum Rev<'a> {
    /// `--sha REV` of `--repo URL`; `offline` reads the mirror without fetching; `history`
    /// says whether the command walks the commit's ancestors too.
    Commit { repo: &'a str, rev: &'a str, offline: bool, history: History },
    /// `--path DIR`.
    Dir(&'a Path),
}

impl<'a> Rev<'a> {
    /// The revision named by `--sha`/`--path`: exactly one of them.
    pub fn new(sha: Option<&'a str>, path: Option<&'a Path>, repo: &'a str, offline: bool) -> Result<Self, Error> {
        match (sha, path) {
            (Some(rev), None) => Ok(Rev::Commit { repo, rev, offline, history: History::No }),
            (None, Some(path)) => Ok(Rev::Dir(path)),
            _ => Err(Error::Usage("give exactly one of --sha and --path".into())),
        }
    }

    /// The same revision, for a command that walks its ancestors (a shallow mirror is
    /// deepened first).
    pub fn walked(self) -> Self {
        match self {
            Rev::Commit { repo, rev, offline, .. } => Rev::Commit { repo, rev, offline, history: History::Walked },
            dir => dir,
        }
    }
}

/// Whether a command reads only its commit, or also the commit's history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum History {
    /// The commit's tree: a fresh mirror of a network repository may fetch it shallow.
    No,
    /// Ancestors too: a shallow mirror is deepened first (offline: a warning, and the walk
    /// stops at the shallow boundary).
    Walked,
}

/// The tree of `rev`.
pub fn load(cache: &LocalCache, rev: Rev<'_>, reporter: &Reporter) -> Result<LoadedTree, Error> {
    match rev {
        Rev::Commit { repo, rev, offline, history } => load_commit(cache, repo, rev, offline, history, reporter),
        Rev::Dir(path) => load_dir(path),
    }
}

/// A resolved source: the tree, and for commits the repository it came from.
pub struct LoadedTree {
    pub tree: Tree,
    pub repo_url: String,
    pub repo_dir: Option<PathBuf>,
}

/// Mirrors `repo` (fetching only when needed) and reads the tree of `rev`, deepening a
/// shallow mirror first when `history` is [`History::Walked`].
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
    history: History,
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
    let mut mirror = Mirror::open(&mirror_dir, &url)?;
    if history == History::Walked {
        mirror = mirror.needing_history();
    }
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
    if history == History::Walked {
        match mirror.deepen(!fetch_allowed, &mut reporter.fetch_progress(&url)) {
            Err(err @ SourceError::ShallowOffline { .. }) => reporter.warn(&format!("{err}; history stops there")),
            other => other?,
        }
    }
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
