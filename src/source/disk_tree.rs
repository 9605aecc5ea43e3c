//! Listing a directory on disk as a tree, with the same rules git would apply to decide what
//! is part of the source: `.gitignore` files are honoured (also outside a git repository) and
//! `.git` is skipped. Symlinks are listed, not followed; the key module decides which linked
//! directories to follow.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::{Entry, SourceError};

pub fn list(root: &Path) -> Result<BTreeMap<String, Entry>, SourceError> {
    let io_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| SourceError::Io { path, source }
    };
    if !root.is_dir() {
        return Err(SourceError::Io {
            path: root.into(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "not a directory"),
        });
    }
    let walker = ignore::WalkBuilder::new(root)
        .hidden(false)
        .ignore(false)
        .parents(false)
        .git_global(false)
        .git_exclude(true)
        .git_ignore(true)
        .require_git(false)
        .follow_links(false)
        .filter_entry(|e| e.file_name() != ".git")
        .build();
    let mut entries = BTreeMap::new();
    for item in walker {
        let item =
            item.map_err(|e| SourceError::Io { path: root.into(), source: std::io::Error::other(e.to_string()) })?;
        let Some(file_type) = item.file_type() else { continue };
        if file_type.is_dir() {
            continue;
        }
        let rel = item.path().strip_prefix(root).expect("walk stays under its root");
        let Some(rel) = rel.to_str() else {
            tracing::warn!("skipping non-UTF-8 path {}", item.path().display());
            continue;
        };
        let entry = if file_type.is_symlink() {
            let target = std::fs::read_link(item.path()).map_err(io_err(item.path()))?;
            Entry::Symlink { target: target.to_string_lossy().into_owned() }
        } else if file_type.is_file() {
            let mode = item
                .metadata()
                .map_err(|e| SourceError::Io {
                    path: item.path().into(),
                    source: std::io::Error::other(e.to_string()),
                })?
                .permissions()
                .mode();
            Entry::File { executable: mode & 0o111 != 0, blob: None }
        } else {
            continue;
        };
        entries.insert(rel.to_string(), entry);
    }
    Ok(entries)
}
