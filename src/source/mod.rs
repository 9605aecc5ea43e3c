//! Where a build's files come from: a commit in a git mirror, or a directory on disk. Both
//! become one [`Tree`]: a sorted list of entries whose content is hashed the same way
//! whichever side it came from, so identical content gives identical keys.

mod abandoned;
mod checkout;
mod disk_tree;
mod git_init;
mod git_tree;
mod mirror;
mod worktree;

use std::collections::BTreeMap;
use std::path::PathBuf;

pub use abandoned::{is_empty_mirror, remove_abandoned_git_files};
pub use checkout::{checkout, disk_blob_id, record_mtimes};
pub use git_init::init_git;
pub use mirror::{FetchProgress, Mirror, is_remote, normalise_url, repo_id, supports_shallow};

use crate::cache::BlobDigestMemo;

/// One entry of a tree: a file (with its executable bit) or a symlink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    File { executable: bool, blob: Option<git2::Oid> },
    Symlink { target: String },
}

impl Entry {
    /// The git-style mode that goes into keys: 100644, 100755 or 120000.
    pub fn mode(&self) -> u32 {
        match self {
            Entry::File { executable: false, .. } => 0o100644,
            Entry::File { executable: true, .. } => 0o100755,
            Entry::Symlink { .. } => 0o120000,
        }
    }
}

/// The files of one commit or one directory, by `/`-separated relative path.
pub struct Tree {
    origin: Origin,
    entries: BTreeMap<String, Entry>,
}

enum Origin {
    Git { repo: git2::Repository, commit: git2::Oid },
    Disk { root: PathBuf },
}

impl Tree {
    /// The tree of `commit` in `repo`, read from the object database (no checkout).
    pub fn from_commit(repo: git2::Repository, commit: git2::Oid) -> Result<Tree, SourceError> {
        let entries = git_tree::list(&repo, commit)?;
        Ok(Tree { origin: Origin::Git { repo, commit }, entries })
    }

    /// The files under `root` as they are. At the root of a git checkout that is what
    /// `git status` sees (tracked files still on disk plus untracked, unignored ones);
    /// elsewhere every file that no `.gitignore` rule covers. Build products never become
    /// inputs either way.
    pub fn from_dir(root: PathBuf) -> Result<Tree, SourceError> {
        let entries = match worktree::open(&root) {
            Some(repo) => worktree::list(&repo, &root)?,
            None => disk_tree::list(&root)?,
        };
        Ok(Tree { origin: Origin::Disk { root }, entries })
    }

    pub fn entries(&self) -> &BTreeMap<String, Entry> {
        &self.entries
    }

    /// `<sha>` for a commit, `path:<dir>` for a directory.
    pub fn provenance(&self) -> String {
        match &self.origin {
            Origin::Git { commit, .. } => commit.to_string(),
            Origin::Disk { root } => format!("path:{}", root.display()),
        }
    }

    pub fn commit(&self) -> Option<git2::Oid> {
        match &self.origin {
            Origin::Git { commit, .. } => Some(*commit),
            Origin::Disk { .. } => None,
        }
    }

    /// The content of a file entry.
    pub fn read(&self, path: &str) -> Result<Vec<u8>, SourceError> {
        match (&self.origin, self.entries.get(path)) {
            (Origin::Git { repo, .. }, Some(Entry::File { blob: Some(oid), .. })) => git_tree::read_blob(repo, *oid),
            (Origin::Disk { root }, Some(Entry::File { .. })) => {
                let full = root.join(path);
                std::fs::read(&full).map_err(|source| SourceError::Io { path: full, source })
            }
            _ => Err(SourceError::NotAFile { path: path.into() }),
        }
    }

    /// blake3 of a file entry's content, through the git-blob memo when it comes from git.
    pub fn digest(&self, path: &str, memo: &mut BlobDigestMemo) -> Result<blake3::Hash, SourceError> {
        match (&self.origin, self.entries.get(path)) {
            (Origin::Git { repo, .. }, Some(Entry::File { blob: Some(oid), .. })) => {
                let id: [u8; 20] = oid.as_bytes().try_into().expect("sha-1 object ids");
                if let Some(digest) = memo.get(&id) {
                    return Ok(digest);
                }
                let digest = blake3::hash(&git_tree::read_blob(repo, *oid)?);
                memo.insert(id, digest);
                Ok(digest)
            }
            (Origin::Disk { root }, Some(Entry::File { .. })) => {
                let full = root.join(path);
                let mut hasher = blake3::Hasher::new();
                std::fs::File::open(&full)
                    .and_then(|f| hasher.update_reader(f).map(|_| ()))
                    .map_err(|source| SourceError::Io { path: full, source })?;
                Ok(hasher.finalize())
            }
            _ => Err(SourceError::NotAFile { path: path.into() }),
        }
    }

    /// Fills `memo` with the digests of the git blobs at `paths` it lacks, reading and
    /// hashing them on every core (a cold memo is a whole tree's worth of zlib + blake3).
    /// Each thread opens the repository itself: a `git2::Repository` is not `Sync`.
    pub fn digest_ahead<'a>(
        &self,
        paths: impl IntoIterator<Item = &'a String>,
        memo: &mut BlobDigestMemo,
    ) -> Result<(), SourceError> {
        let Origin::Git { repo, .. } = &self.origin else { return Ok(()) };
        let mut missing: Vec<git2::Oid> = paths
            .into_iter()
            .filter_map(|path| match self.entries.get(path) {
                Some(Entry::File { blob: Some(oid), .. }) => Some(*oid),
                _ => None,
            })
            .filter(|oid| memo.get(&oid.as_bytes().try_into().expect("sha-1 object ids")).is_none())
            .collect();
        missing.sort();
        missing.dedup();
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(8);
        if missing.len() < 64 || threads < 2 {
            return Ok(());
        }
        let dir = repo.path().to_path_buf();
        let chunks: Vec<&[git2::Oid]> = missing.chunks(missing.len().div_ceil(threads)).collect();
        let hashed = std::thread::scope(|scope| {
            let workers: Vec<_> = chunks
                .into_iter()
                .map(|chunk| {
                    let dir = &dir;
                    scope.spawn(move || -> Result<Vec<(git2::Oid, blake3::Hash)>, SourceError> {
                        let repo = git2::Repository::open(dir)
                            .map_err(|source| SourceError::Git { path: dir.clone(), source })?;
                        chunk.iter().map(|oid| Ok((*oid, blake3::hash(&git_tree::read_blob(&repo, *oid)?)))).collect()
                    })
                })
                .collect();
            workers.into_iter().map(|w| w.join().expect("hashing threads do not panic")).collect::<Vec<_>>()
        });
        for result in hashed {
            for (oid, digest) in result? {
                memo.insert(oid.as_bytes().try_into().expect("sha-1 object ids"), digest);
            }
        }
        Ok(())
    }

    /// The git repository and commit, for a checkout.
    pub fn git(&self) -> Option<(&git2::Repository, git2::Oid)> {
        match &self.origin {
            Origin::Git { repo, commit } => Some((repo, *commit)),
            Origin::Disk { .. } => None,
        }
    }

    /// The directory of a tree read from disk.
    pub fn dir(&self) -> Option<&std::path::Path> {
        match &self.origin {
            Origin::Disk { root } => Some(root),
            Origin::Git { .. } => None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("revision `{rev}` is not in {repo}{hint}")]
    UnknownRev { rev: String, repo: String, hint: String },
    #[error("revision `{rev}` is ambiguous in {repo}: give more hex digits of the SHA")]
    AmbiguousRev { rev: String, repo: String },
    #[error(
        "cannot fetch {repo}: {message}\n  check the URL and the network, or pass --offline to use a commit already in the mirror"
    )]
    Unreachable { repo: String, message: String },
    #[error(
        "the mirror of {repo} is shallow (its first fetch took single commits) and this command walks history, \
         which --offline (or TBUILD_OFFLINE) forbids fetching; run it once without --offline"
    )]
    ShallowOffline { repo: String },
    #[error(
        "repository path {path} does not exist: check --repo (or TBUILD_CORE_REPO), which takes a local path or a URL such as {}",
        crate::cli::DEFAULT_REPO
    )]
    NoSuchPath { path: String },
    #[error("git error in {path}")]
    Git {
        path: PathBuf,
        #[source]
        source: git2::Error,
    },
    #[error("i/o error on {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a regular file in the tree")]
    NotAFile { path: String },
}
