//! File times: what cargo decides freshness by, and what a snapshot must carry across
//! machines.
//!
//! cargo calls a unit fresh when none of its source files is newer than the unit's
//! dep-info file (and no dependency's output is newer). A fresh checkout stamps every file
//! with the checkout's time, newer than any fingerprint in a restored snapshot, so cargo
//! would rebuild everything. The fix: after restoring a snapshot, every work-dir path whose
//! content equals what the snapshot was built from gets [`SOURCE_EPOCH`] as its mtime
//! (older than any fingerprint); changed and new paths keep the checkout's time. cargo then
//! recompiles exactly the crates whose files changed, and their dependents.
//!
//! "Every path" is more than files. A build script's `rerun-if-changed=DIR` makes cargo take
//! the newest mtime beneath DIR, directories included (an entry added or removed changes its
//! directory's mtime), and for a symlink both the link's own mtime and its target's
//! (tasker-shared watches `proto`, a symlink to `../../proto`). So symlinks are back-dated
//! themselves, without following them, when their target string is unchanged; and every
//! directory is back-dated whose entries (names, not contents: those are their own paths)
//! are the same as in the snapshot's tree. One stale build script would otherwise dirty its
//! crate and everything that depends on it.
//!
//! Moving is fine: cargo keys path crates' fingerprints by paths relative to the workspace
//! root and writes dep-info relative to it, so a workspace and a target dir at other paths
//! than the snapshot's stay fresh (checked by hand and by tests/e2e/warm_state.rs). Registry
//! crates are keyed by their absolute source path under CARGO_HOME, so CARGO_HOME must be
//! at the same path as where the snapshot was made (`~/.cargo` on every CI runner).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::source::{Entry, Tree};

/// The mtime unchanged source files get after a restore: 2000-01-01, older than any
/// fingerprint a build writes.
pub const SOURCE_EPOCH: Duration = Duration::from_secs(946_684_800);

/// An mtime as nanoseconds since the epoch (0 for times before it).
pub fn nanos(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}

/// Sets `path`'s mtime (and its atime, to the same: see `prune::mark`). A symlink's own
/// times are set, not its target's (`utimensat` with `AT_SYMLINK_NOFOLLOW`).
pub fn set_mtime(path: &Path, mtime_nanos: u64) -> std::io::Result<()> {
    let time = filetime::FileTime::from_system_time(UNIX_EPOCH + Duration::from_nanos(mtime_nanos));
    filetime::set_symlink_file_times(path, time, time)
}

/// What each file and symlink of `tree` holds, as an id that changes when its content does:
/// the git blob id of a file (computed for a file on disk, so a snapshot of a `--sha` build
/// serves `--path` alike), `link:<target>` for a symlink.
pub fn source_ids(tree: &Tree) -> BTreeMap<String, String> {
    let mut ids = BTreeMap::new();
    for (path, entry) in tree.entries() {
        match entry {
            Entry::File { blob: Some(oid), .. } => {
                ids.insert(path.clone(), format!("git:{oid}"));
            }
            Entry::File { blob: None, .. } => {
                if let Ok(bytes) = tree.read(path) {
                    ids.insert(path.clone(), format!("git:{}", crate::source::disk_blob_id(&bytes)));
                }
            }
            Entry::Symlink { target } => {
                ids.insert(path.clone(), format!("link:{target}"));
            }
        }
    }
    ids
}

/// What [`backdate_unchanged`] back-dated.
#[derive(Debug)]
pub struct Backdated<'a> {
    /// Files and symlinks (paths of `now`).
    pub entries: Vec<&'a String>,
    /// Directories, the work dir itself included.
    pub dirs: usize,
}

/// Back-dates to [`SOURCE_EPOCH`] every file and symlink of `work` whose id in `now` equals
/// its id in `built_from`, then every directory whose entries are the same in both (see the
/// module doc). The others (changed or new) keep their time and make cargo rebuild their
/// crates. A snapshot from before symlinks were recorded leaves its symlinks, and the
/// directories holding them, as the checkout made them: cargo may rebuild more, never less.
pub fn backdate_unchanged<'a>(
    work: &Path,
    now: &'a BTreeMap<String, String>,
    built_from: &BTreeMap<String, String>,
) -> std::io::Result<Backdated<'a>> {
    let epoch = SOURCE_EPOCH.as_nanos() as u64;
    let mut entries = Vec::new();
    for (path, id) in now {
        if built_from.get(path) == Some(id) {
            set_mtime(&work.join(path), epoch)?;
            entries.push(path);
        }
    }
    // Times set on a file leave its directory's mtime alone, so the order does not matter.
    let then = dir_entries(built_from.keys());
    let mut dirs = 0;
    for (dir, names) in dir_entries(now.keys()) {
        if then.get(dir) == Some(&names) {
            set_mtime(&work.join(dir), epoch)?;
            dirs += 1;
        }
    }
    Ok(Backdated { entries, dirs })
}

/// Directory (`""` for the root) -> the names of its entries, from a tree's paths.
fn dir_entries<'a>(paths: impl Iterator<Item = &'a String>) -> BTreeMap<&'a str, BTreeSet<&'a str>> {
    let mut dirs: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for path in paths {
        let mut rest = path.as_str();
        while !rest.is_empty() {
            let (dir, name) = rest.rsplit_once('/').unwrap_or(("", rest));
            dirs.entry(dir).or_default().insert(name);
            rest = dir;
        }
    }
    dirs
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, symlink};

    fn mtime(path: &Path) -> i64 {
        std::fs::symlink_metadata(path).unwrap().mtime()
    }

    #[test]
    fn unchanged_files_links_and_dirs_are_backdated_changed_ones_and_link_targets_not() {
        let dir = tempfile::tempdir().unwrap();
        let w = dir.path();
        std::fs::create_dir_all(w.join("proto")).unwrap();
        std::fs::create_dir_all(w.join("crates/a/src")).unwrap();
        std::fs::create_dir_all(w.join("crates/b")).unwrap();
        for file in ["proto/x.proto", "crates/a/src/lib.rs", "crates/b/new.rs", "crates/b/lib.rs"] {
            std::fs::write(w.join(file), b"x").unwrap();
        }
        symlink("../../proto", w.join("crates/a/proto")).unwrap();
        // An unchanged link to a changed file: the link is back-dated, the file is not.
        symlink("lib.rs", w.join("crates/a/src/current.rs")).unwrap();
        let ids = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs.iter().map(|(p, id)| (p.to_string(), id.to_string())).collect()
        };
        let then = ids(&[
            ("proto/x.proto", "git:1"),
            ("crates/a/src/lib.rs", "git:2"),
            ("crates/a/proto", "link:../../proto"),
            ("crates/a/src/current.rs", "link:lib.rs"),
            ("crates/b/lib.rs", "git:3"),
        ]);
        // lib.rs of a changed; b gained new.rs.
        let now = ids(&[
            ("proto/x.proto", "git:1"),
            ("crates/a/src/lib.rs", "git:9"),
            ("crates/a/proto", "link:../../proto"),
            ("crates/a/src/current.rs", "link:lib.rs"),
            ("crates/b/lib.rs", "git:3"),
            ("crates/b/new.rs", "git:4"),
        ]);
        let done = backdate_unchanged(w, &now, &then).unwrap();
        assert_eq!(done.entries, ["crates/a/proto", "crates/a/src/current.rs", "crates/b/lib.rs", "proto/x.proto"]);
        let epoch = SOURCE_EPOCH.as_secs() as i64;
        for old in
            ["proto/x.proto", "proto", "crates/a/proto", "crates/a", "crates/a/src", "crates", "crates/b/lib.rs", ""]
        {
            assert_eq!(mtime(&w.join(old)), epoch, "{old:?} is back-dated");
        }
        for new in ["crates/a/src/lib.rs", "crates/b", "crates/b/new.rs"] {
            assert_ne!(mtime(&w.join(new)), epoch, "{new} keeps its time");
        }
        // root, crates, crates/a, crates/a/src, proto
        assert_eq!(done.dirs, 5);
    }
}
