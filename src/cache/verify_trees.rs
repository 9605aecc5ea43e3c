//! `cache verify` for the unpacked trees of `--link-mode hardlink|reflink`
//! (`v1/trees/<d0d1>/<digest>/`): what a linked hit does not check.
//!
//! A hit checks a tree's stats only (type, size, read-only mode, the fixed mtime; see
//! `link.rs`), which catches every write through a link but not a byte flipped on disk with
//! its mtime put back. Here every file is hashed against the digests of a record naming the
//! tree's archive, links are compared with their targets, and anything the record does not
//! list, or that resolves outside the tree, is reported. A tree no record names is never
//! served (a hit starts from a record) and is not checked.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::ErrorKind;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::link::{read_only, tree_mtime};
use super::no_follow::{first_escape, open_regular};
use super::verify::Problem;
use super::{ArchiveFile, CacheError, LocalCache, is_digest};

/// Checks every tree that a record names (`files_of`: archive digest -> the files a record
/// lists); adds a problem per bad tree, returns how many trees were checked.
pub(super) fn check(
    cache: &LocalCache,
    files_of: &BTreeMap<String, Vec<ArchiveFile>>,
    problems: &mut Vec<Problem>,
) -> Result<usize, CacheError> {
    let mut checked = 0;
    for shard in dir_entries(&cache.trees_dir())? {
        // `.tree-*` and `.stale-*` are a maker's temp dirs, not trees.
        let is_shard = shard.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.len() == 2);
        if !is_shard || !fs::symlink_metadata(&shard).is_ok_and(|m| m.is_dir()) {
            continue;
        }
        for tree in dir_entries(&shard)? {
            let digest = tree.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
            let Some(files) = files_of.get(&digest).filter(|_| is_digest(&digest)) else { continue };
            checked += 1;
            if let Some(reason) = tree_problem(&tree, files) {
                problems.push(Problem { path: tree, kind: "tree", target: None, reason, removed: false });
            }
        }
    }
    Ok(checked)
}

/// Why `tree` does not hold exactly `files`, as made, if it does not.
fn tree_problem(tree: &Path, files: &[ArchiveFile]) -> Option<String> {
    if !fs::symlink_metadata(tree).is_ok_and(|m| m.is_dir()) {
        return Some("it is not a directory".into());
    }
    let mut listed = BTreeSet::new();
    for file in files {
        listed.insert(file.path.clone());
        let path = tree.join(&file.path);
        if let Some(reason) = file_problem(&path, file) {
            return Some(format!("{}: {reason}", file.path));
        }
    }
    for entry in walkdir::WalkDir::new(tree).min_depth(1).into_iter().flatten() {
        let rel = entry.path().strip_prefix(tree).expect("walked from it").to_string_lossy().into_owned();
        let parent_of_listed = entry.file_type().is_dir()
            && listed.range(format!("{rel}/")..).next().is_some_and(|p| p.starts_with(&format!("{rel}/")));
        if !listed.contains(&rel) && !parent_of_listed {
            return Some(format!("it holds {rel}, which its record does not list"));
        }
    }
    first_escape(tree).map(|path| format!("{} resolves outside the tree", path.display()))
}

fn file_problem(path: &Path, file: &ArchiveFile) -> Option<String> {
    if let Some(target) = &file.link {
        return match fs::read_link(path) {
            Ok(found) if found.as_os_str() == target.as_str() => None,
            Ok(found) => Some(format!("links to {}, its record says {target}", found.display())),
            Err(err) => Some(format!("is not the symlink its record lists ({err})")),
        };
    }
    let (file_handle, meta) = match open_regular(path) {
        Ok(opened) => opened,
        Err(err) if err.kind() == ErrorKind::NotFound => return Some("is missing".into()),
        Err(err) => return Some(err.to_string()),
    };
    if meta.len() != file.size {
        return Some(format!("has {} bytes, its record says {}", meta.len(), file.size));
    }
    if meta.permissions().mode() & 0o7777 != read_only(file.mode) {
        return Some(format!(
            "has mode {:o}, a tree's files are {:o}",
            meta.permissions().mode() & 0o7777,
            read_only(file.mode)
        ));
    }
    if meta.modified().ok() != Some(tree_mtime()) {
        return Some("was written to since the tree was made (its mtime moved)".into());
    }
    let mut hasher = blake3::Hasher::new();
    if let Err(err) = hasher.update_reader(file_handle) {
        return Some(format!("cannot be read: {err}"));
    }
    let actual = hasher.finalize().to_hex().to_string();
    match file.digest.as_deref() {
        Some(expected) if expected == actual => None,
        expected => Some(format!("its content hashes to {actual}, its record says {}", expected.unwrap_or("nothing"))),
    }
}

fn dir_entries(dir: &Path) -> Result<Vec<std::path::PathBuf>, CacheError> {
    match fs::read_dir(dir) {
        Ok(entries) => Ok(entries.flatten().map(|e| e.path()).collect()),
        Err(err) if err.kind() == ErrorKind::NotFound => Ok(Vec::new()),
        Err(source) => Err(CacheError::Io { path: dir.into(), source }),
    }
}
