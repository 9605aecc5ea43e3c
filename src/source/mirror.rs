//! A bare mirror per repository URL under the cache dir. It is fetched only when the asked
//! revision is not already there (a full SHA that is present never touches the network) or
//! when the revision is a ref name, which can move; `--offline` never fetches.
//!
//! Shallow first fetch: keying or building one commit needs its tree, not its history, and
//! tasker-core's history is most of what a full fetch downloads. So a fresh mirror of a
//! network repository (`https://`, `ssh://`, `git://`, `host:path`) fetches only the asked
//! commit at depth 1 (the commit itself when the server serves a SHA on request, else the
//! asked branch or tag, else every branch tip), and stays shallow while single commits are
//! asked for. A command that walks history (`key --range`, `explain`) opens the mirror
//! [`Mirror::needing_history`]: its fetch unshallows (libgit2's "deepen to infinity"), after
//! which the mirror is an ordinary full one. libgit2's local transport (a path or `file://`)
//! cannot fetch shallow, and copying from a local disk is cheap anyway: local mirrors are
//! always full.

use std::path::{Path, PathBuf};

use git2::{AutotagOption, ErrorCode, FetchOptions, Oid, RemoteCallbacks, Repository};

use super::SourceError;

const REFSPECS: [&str; 2] = ["+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"];

/// libgit2's `GIT_FETCH_DEPTH_UNSHALLOW`: fetch the history behind the shallow boundary.
const UNSHALLOW: i32 = i32::MAX;

/// How much history a fetch brings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Depth {
    /// Only the fetched tips (depth 1).
    Tip,
    /// Everything, deepening a shallow mirror.
    Full,
}

/// Fetch progress, as libgit2 reports it.
#[derive(Debug, Clone, Copy)]
pub struct FetchProgress {
    pub received_objects: usize,
    pub total_objects: usize,
    pub received_bytes: usize,
    /// The last call for this fetch: it ended (well or not).
    pub finished: bool,
}

pub struct Mirror {
    url: String,
    repo: Repository,
    /// The caller walks history: no shallow fetch, and a shallow mirror is deepened.
    history: bool,
}

/// A short stable name for a repository URL or path: its dir name under `repos/`.
pub fn repo_id(url: &str) -> String {
    let name = url.trim_end_matches('/').trim_end_matches(".git").rsplit(['/', ':']).next().unwrap_or("repo");
    let name: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect();
    format!("{}-{}", name, &blake3::hash(url.as_bytes()).to_hex()[..12])
}

/// Whether `--repo` is a URL (`https://…`, `file://…`, `git@host:path`) rather than a local path.
pub fn is_remote(repo: &str) -> bool {
    repo.contains("://") || (repo.contains(':') && !repo.starts_with('/') && !repo.starts_with('.'))
}

/// Whether libgit2 can fetch `url` shallow: its smart transports can, the local one
/// (a path, `file://`) cannot.
pub fn supports_shallow(url: &str) -> bool {
    is_remote(url) && !url.starts_with("file://")
}

/// The URL form of `--repo`: a local path becomes absolute so that one repository has one mirror.
pub fn normalise_url(repo: &str) -> String {
    if is_remote(repo) {
        return repo.to_string();
    }
    match std::fs::canonicalize(repo) {
        Ok(path) => path.to_string_lossy().into_owned(),
        Err(_) => repo.to_string(),
    }
}

impl Mirror {
    /// Opens the mirror in `dir`, creating a bare repository there on first use. The caller
    /// holds the repository's `mirror.lock`.
    pub fn open(dir: &Path, url: &str) -> Result<Mirror, SourceError> {
        let git_err = |source| SourceError::Git { path: dir.to_path_buf(), source };
        let repo = match Repository::open_bare(dir) {
            Ok(repo) => repo,
            Err(err) if err.code() == ErrorCode::NotFound => {
                std::fs::create_dir_all(dir).map_err(|source| SourceError::Io { path: dir.into(), source })?;
                Repository::init_bare(dir).map_err(git_err)?
            }
            Err(source) => return Err(git_err(source)),
        };
        // The caller holds mirror.lock: what a killed fetch or import left is nobody's now.
        super::remove_abandoned_git_files(dir);
        Ok(Mirror { url: url.to_string(), repo, history: false })
    }

    /// This mirror's fetches bring full history, and [`Mirror::deepen`] unshallows it.
    pub fn needing_history(mut self) -> Mirror {
        self.history = true;
        self
    }

    /// Whether the mirror holds only part of its commits' history (a shallow fetch).
    pub fn is_shallow(&self) -> bool {
        self.repo.is_shallow()
    }

    /// Fetches the history a shallow mirror lacks (nothing for a full one). Offline, a
    /// shallow mirror is an error: a walk over it would stop at the shallow boundary.
    pub fn deepen(&self, offline: bool, progress: &mut dyn FnMut(FetchProgress)) -> Result<(), SourceError> {
        if !self.is_shallow() {
            return Ok(());
        }
        if offline {
            return Err(SourceError::ShallowOffline { repo: self.url.clone() });
        }
        self.fetch(progress, &REFSPECS, Depth::Full)
    }

    /// The depth of the next fetch: depth 1 for a fresh or shallow mirror of a network
    /// repository when no history is needed; full otherwise.
    fn depth(&self) -> Depth {
        let fresh = self.repo.references().map(|mut refs| refs.next().is_none()).unwrap_or(false);
        if !self.history && supports_shallow(&self.url) && (fresh || self.is_shallow()) {
            Depth::Tip
        } else {
            Depth::Full
        }
    }

    pub fn path(&self) -> PathBuf {
        self.repo.path().to_path_buf()
    }

    pub fn into_repo(self) -> Repository {
        self.repo
    }

    /// Resolves `rev` (full SHA, unique short SHA, branch, tag or any git revision) to a
    /// commit, fetching first when needed and allowed.
    pub fn resolve(
        &self,
        rev: &str,
        offline: bool,
        progress: &mut dyn FnMut(FetchProgress),
    ) -> Result<Oid, SourceError> {
        let is_hex = rev.len() >= 4 && rev.len() <= 40 && rev.bytes().all(|b| b.is_ascii_hexdigit());
        if is_hex && let Some(oid) = self.lookup(rev)? {
            return Ok(oid);
        }
        if offline {
            return match self.lookup(rev)? {
                Some(oid) => Ok(oid),
                None => Err(self.unknown(
                    rev,
                    " (the local mirror), and --offline (or TBUILD_OFFLINE) forbids fetching it. Either run once \
                         without --offline while the network is up, or `tbuild cache import` a bundle that another \
                         machine wrote with `tbuild cache export --sha <SHA> --with-source`",
                )),
            };
        }
        let depth = self.depth();
        if depth == Depth::Tip
            && self.fetch_tip(rev, is_hex, progress)?
            && let Some(oid) = self.lookup(rev)?
        {
            return Ok(oid);
        }
        self.fetch(progress, &REFSPECS, depth)?;
        if let Some(oid) = self.lookup(rev)? {
            return Ok(oid);
        }
        // A commit on no branch or tag (a PR head, an old merge): servers such as GitHub
        // serve a full SHA on request. A refusal only means it is unknown there.
        if rev.len() == 40 && is_hex {
            let _ = self.fetch(progress, &[format!("+{rev}:refs/tbuild/{rev}").as_str()], depth);
        }
        match self.lookup(rev)? {
            Some(oid) => Ok(oid),
            None => Err(self.unknown(rev, " (fetched just now): check the SHA, branch or tag")),
        }
    }

    /// The commit `rev` names in the mirror, `None` if it names nothing.
    fn lookup(&self, rev: &str) -> Result<Option<Oid>, SourceError> {
        match self.repo.revparse_single(rev) {
            Ok(object) => match object.peel_to_commit() {
                Ok(commit) => Ok(Some(commit.id())),
                Err(_) => Err(self.unknown(rev, ": it names an object that is not a commit")),
            },
            Err(err) if err.code() == ErrorCode::Ambiguous => {
                Err(SourceError::AmbiguousRev { rev: rev.into(), repo: self.url.clone() })
            }
            Err(err) if matches!(err.code(), ErrorCode::NotFound | ErrorCode::InvalidSpec) => Ok(None),
            Err(err) if err.class() == git2::ErrorClass::Odb || err.class() == git2::ErrorClass::Reference => Ok(None),
            Err(source) => Err(SourceError::Git { path: self.path(), source }),
        }
    }

    /// The depth-1 fetch of just `rev`: a full SHA by itself (the server may refuse a SHA no
    /// ref points at, or any SHA at all), a name as the branch or tag it may be. `false`
    /// when nothing could be asked this way (a short SHA, a revision expression).
    fn fetch_tip(&self, rev: &str, is_hex: bool, progress: &mut dyn FnMut(FetchProgress)) -> Result<bool, SourceError> {
        if rev.len() == 40 && is_hex {
            return Ok(self.fetch(progress, &[format!("+{rev}:refs/tbuild/{rev}").as_str()], Depth::Tip).is_ok());
        }
        if is_hex || !git2::Reference::is_valid_name(&format!("refs/heads/{rev}")) {
            return Ok(false);
        }
        let branch = format!("+refs/heads/{rev}:refs/heads/{rev}");
        let tag = format!("+refs/tags/{rev}:refs/tags/{rev}");
        self.fetch(progress, &[branch.as_str(), tag.as_str()], Depth::Tip)?;
        Ok(true)
    }

    fn fetch(
        &self,
        progress: &mut dyn FnMut(FetchProgress),
        refspecs: &[&str],
        depth: Depth,
    ) -> Result<(), SourceError> {
        super::git_init::load_certificates_for(&self.url);
        progress(FetchProgress { received_objects: 0, total_objects: 0, received_bytes: 0, finished: false });
        let mut callbacks = RemoteCallbacks::new();
        callbacks.transfer_progress(|stats| {
            progress(FetchProgress {
                received_objects: stats.received_objects(),
                total_objects: stats.total_objects(),
                received_bytes: stats.received_bytes(),
                finished: false,
            });
            true
        });
        let mut options = FetchOptions::new();
        options.remote_callbacks(callbacks);
        match depth {
            // Tags would bring every tagged tree: a shallow fetch takes only what it asks for.
            Depth::Tip => options.depth(1).download_tags(AutotagOption::None),
            Depth::Full if self.is_shallow() => options.depth(UNSHALLOW).download_tags(AutotagOption::All),
            Depth::Full => options.download_tags(AutotagOption::All),
        };
        let mut remote =
            self.repo.remote_anonymous(&self.url).map_err(|source| SourceError::Git { path: self.path(), source })?;
        let fetched = remote
            .fetch(refspecs, Some(&mut options), None)
            .map_err(|err| SourceError::Unreachable { repo: self.url.clone(), message: err.message().to_string() });
        drop(remote);
        drop(options);
        progress(FetchProgress { received_objects: 0, total_objects: 0, received_bytes: 0, finished: true });
        fetched
    }

    fn unknown(&self, rev: &str, hint: &str) -> SourceError {
        SourceError::UnknownRev { rev: rev.into(), repo: self.url.clone(), hint: hint.into() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_ids_are_readable_and_distinct() {
        let a = repo_id("https://github.com/tasker-systems/tasker-core.git");
        assert!(a.starts_with("tasker-core-"), "{a}");
        assert_ne!(a, repo_id("/tmp/tasker-core"));
        assert_eq!(a, repo_id("https://github.com/tasker-systems/tasker-core.git"));
    }

    #[test]
    fn local_paths_become_absolute() {
        let dir = tempfile::tempdir().unwrap();
        let url = normalise_url(dir.path().to_str().unwrap());
        assert!(url.starts_with('/'));
        assert_eq!(normalise_url("https://example.invalid/x.git"), "https://example.invalid/x.git");
    }
}
