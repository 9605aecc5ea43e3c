//! Reading a commit's tree straight from the object database: the listing needs no blob
//! content (git records each blob's id), only symlink targets are read.

use std::collections::BTreeMap;

use git2::{ObjectType, Oid, Repository, TreeWalkMode, TreeWalkResult};

use super::{Entry, SourceError};

const MODE_EXECUTABLE: i32 = 0o100755;
const MODE_SYMLINK: i32 = 0o120000;
const MODE_SUBMODULE: i32 = 0o160000;

pub fn list(repo: &Repository, commit: Oid) -> Result<BTreeMap<String, Entry>, SourceError> {
    let git_err = |source| SourceError::Git { path: repo.path().to_path_buf(), source };
    let tree = repo.find_commit(commit).and_then(|c| c.tree()).map_err(git_err)?;
    let mut entries = BTreeMap::new();
    let mut failure = None;
    tree.walk(TreeWalkMode::PreOrder, |dir, entry| {
        if entry.kind() != Some(ObjectType::Blob) {
            if entry.filemode() == MODE_SUBMODULE {
                tracing::warn!("submodule {dir}{} is not part of any key", entry.name().unwrap_or("?"));
            }
            return TreeWalkResult::Ok;
        }
        let Ok(name) = entry.name() else {
            tracing::warn!("skipping a non-UTF-8 path under {dir}");
            return TreeWalkResult::Skip;
        };
        let path = format!("{dir}{name}");
        let item = if entry.filemode() == MODE_SYMLINK {
            match read_blob(repo, entry.id()) {
                Ok(bytes) => Entry::Symlink { target: String::from_utf8_lossy(&bytes).into_owned() },
                Err(err) => {
                    failure = Some(err);
                    return TreeWalkResult::Abort;
                }
            }
        } else {
            Entry::File { executable: entry.filemode() == MODE_EXECUTABLE, blob: Some(entry.id()) }
        };
        entries.insert(path, item);
        TreeWalkResult::Ok
    })
    .map_err(git_err)?;
    match failure {
        Some(err) => Err(err),
        None => Ok(entries),
    }
}

pub fn read_blob(repo: &Repository, oid: Oid) -> Result<Vec<u8>, SourceError> {
    let blob = repo.find_blob(oid).map_err(|source| SourceError::Git { path: repo_path(repo), source })?;
    Ok(blob.content().to_vec())
}

fn repo_path(repo: &Repository) -> std::path::PathBuf {
    repo.path().to_path_buf()
}
