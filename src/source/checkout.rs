//! Checking a commit out into the repository's reusable work dir, incrementally.
//!
//! cargo decides what to recompile from file mtimes, so rewriting every file of a checkout
//! would recompile every workspace crate on every miss. Instead a state file records, for each
//! file written, its blob id and the size and mtime it had on disk; the next checkout rewrites
//! only files whose blob changed or that were touched since, and deletes files that left the
//! tree. Untracked files (build products, `node_modules/`) stay, which keeps builds warm; the
//! build stage clears a target's declared outputs before it runs.
//!
//! The state file is removed before the work dir is modified and written back (atomically)
//! only when the checkout is complete, so a crash mid-way makes the next run start clean.
//!
//! A tree read from disk (`core --path`) is copied the same way, with the git blob id of each
//! file's content computed from disk: builds never run in the user's checkout, so its build
//! products, `target/` and `node_modules/` stay the user's own. `--path` and `--sha` share
//! `--repo`'s work dir, and equal ids mean a `--path` checkout after a commit's (or the other
//! way) rewrites only the files that differ, so cargo recompiles only their crates.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use serde::{Deserialize, Serialize};

use super::{Entry, SourceError, Tree};

const STATE_FILE: &str = "checkout-state.json";

#[derive(Debug, Default, Serialize, Deserialize)]
struct CheckoutState {
    commit: String,
    files: BTreeMap<String, WrittenFile>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct WrittenFile {
    /// Blob id for files, `link:<target>` for symlinks.
    id: String,
    mode: u32,
    size: u64,
    mtime_ns: u128,
}

/// Brings `work` to the content of `tree` (from git or from disk). `state_dir` holds the
/// checkout state and must be outside `work`. Returns the number of files written.
pub fn checkout(tree: &Tree, work: &Path, state_dir: &Path) -> Result<usize, SourceError> {
    let state_path = state_dir.join(STATE_FILE);
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| SourceError::Io { path, source }
    };
    let previous: CheckoutState =
        fs::read(&state_path).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default();
    if previous.files.is_empty() && work.exists() {
        // No trustworthy record of what is there: start from an empty dir.
        fs::remove_dir_all(work).map_err(io(work))?;
    }
    fs::create_dir_all(work).map_err(io(work))?;
    fs::create_dir_all(state_dir).map_err(io(state_dir))?;
    match fs::remove_file(&state_path) {
        Ok(()) => {}
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => return Err(SourceError::Io { path: state_path, source }),
    }

    // Removals first: a file that left the tree may be the parent dir of a new path.
    for path in previous.files.keys().filter(|p| !tree.entries().contains_key(*p)) {
        let full = work.join(path);
        remove_any(&full).map_err(io(&full))?;
        prune_empty_parents(&full, work);
    }
    let mut next = CheckoutState { commit: tree.provenance(), files: BTreeMap::new() };
    let mut written = 0;
    for (path, entry) in tree.entries() {
        let full = work.join(path);
        // A file read from disk is read once here: its digest decides, its bytes are written.
        let mut content = None;
        let (id, mode) = match entry {
            Entry::File { blob: Some(blob), .. } => (blob.to_string(), entry.mode()),
            Entry::File { blob: None, .. } => {
                let bytes = tree.read(path)?;
                let id = disk_blob_id(&bytes);
                content = Some(bytes);
                (id, entry.mode())
            }
            Entry::Symlink { target } => (format!("link:{target}"), entry.mode()),
        };
        if let Some(old) = previous.files.get(path)
            && old.id == id
            && old.mode == mode
            && on_disk(&full).as_ref() == Some(&(old.size, old.mtime_ns))
        {
            next.files.insert(path.clone(), old.clone());
            continue;
        }
        remove_any(&full).map_err(io(&full))?;
        if let Some(parent) = full.parent() {
            fs::create_dir_all(parent).map_err(io(parent))?;
        }
        match entry {
            Entry::File { executable, .. } => {
                let bytes = match content {
                    Some(bytes) => bytes,
                    None => tree.read(path)?,
                };
                fs::write(&full, bytes).map_err(io(&full))?;
                let perm = if *executable { 0o755 } else { 0o644 };
                fs::set_permissions(&full, fs::Permissions::from_mode(perm)).map_err(io(&full))?;
            }
            Entry::Symlink { target } => symlink(target, &full).map_err(io(&full))?,
        }
        let (size, mtime_ns) = on_disk(&full).unwrap_or_default();
        next.files.insert(path.clone(), WrittenFile { id, mode, size, mtime_ns });
        written += 1;
    }
    let bytes = serde_json::to_vec(&next).expect("state serialises");
    let tmp = state_dir.join(format!("{STATE_FILE}.tmp"));
    fs::write(&tmp, bytes).map_err(io(&tmp))?;
    // Durable: a crash must not leave a state naming files the work dir does not have.
    crate::fs::rename_durable(&tmp, &state_path).map_err(from_fs)?;
    Ok(written)
}

/// The git blob id of a file read from disk: the id its commit would give it, so a `--path`
/// checkout and a `--sha` checkout into one work dir rewrite only the files that differ.
pub fn disk_blob_id(bytes: &[u8]) -> String {
    git2::Oid::hash_object(git2::ObjectType::Blob, bytes).map_or_else(
        // Only fails when libgit2 cannot initialise; a digest that never equals a blob id
        // then just rewrites the file.
        |_| format!("blake3:{}", blake3::hash(bytes).to_hex()),
        |oid| oid.to_string(),
    )
}

/// Records the current mtimes of `paths` (files of the last checkout into `work` whose
/// mtimes were changed on purpose: `core --warm-state` back-dates unchanged sources), so
/// the next checkout keeps them instead of taking them for edited and rewriting them.
pub fn record_mtimes<'a>(
    work: &Path,
    state_dir: &Path,
    paths: impl IntoIterator<Item = &'a String>,
) -> Result<(), SourceError> {
    let state_path = state_dir.join(STATE_FILE);
    let Some(mut state) = fs::read(&state_path).ok().and_then(|b| serde_json::from_slice::<CheckoutState>(&b).ok())
    else {
        return Ok(());
    };
    for path in paths {
        if let (Some(file), Some((size, mtime_ns))) = (state.files.get_mut(path), on_disk(&work.join(path)))
            && file.size == size
        {
            file.mtime_ns = mtime_ns;
        }
    }
    let bytes = serde_json::to_vec(&state).expect("state serialises");
    let tmp = state_dir.join(format!("{STATE_FILE}.tmp"));
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| SourceError::Io { path, source }
    };
    fs::write(&tmp, bytes).map_err(io(&tmp))?;
    crate::fs::rename_durable(&tmp, &state_path).map_err(from_fs)
}

fn from_fs(err: crate::fs::FsError) -> SourceError {
    SourceError::Io { path: err.path, source: err.source }
}

/// Size and mtime of a file or symlink (not followed), if it exists.
fn on_disk(path: &Path) -> Option<(u64, u128)> {
    let meta = fs::symlink_metadata(path).ok()?;
    let mtime = meta.modified().ok()?.duration_since(UNIX_EPOCH).ok()?.as_nanos();
    Some((meta.len(), mtime))
}

fn remove_any(path: &Path) -> std::io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(err),
    }
}

fn prune_empty_parents(path: &Path, stop: &Path) {
    let mut dir: Option<PathBuf> = path.parent().map(Path::to_path_buf);
    while let Some(d) = dir {
        if d == stop || fs::remove_dir(&d).is_err() {
            break;
        }
        dir = d.parent().map(Path::to_path_buf);
    }
}
