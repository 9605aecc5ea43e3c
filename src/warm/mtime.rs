//! File times: what cargo decides freshness by, and what a snapshot must carry across
//! machines.
//!
//! cargo calls a unit fresh when none of its source files is newer than the unit's
//! dep-info file (and no dependency's output is newer). A fresh checkout stamps every file
//! with the checkout's time, newer than any fingerprint in a restored snapshot, so cargo
//! would rebuild everything. The fix: after restoring a snapshot, every work-dir file whose
//! content equals what the snapshot was built from gets [`SOURCE_EPOCH`] as its mtime
//! (older than any fingerprint); changed and new files keep the checkout's time. cargo then
//! recompiles exactly the crates whose files changed, and their dependents.
//!
//! Moving is fine: cargo keys path crates' fingerprints by paths relative to the workspace
//! root and writes dep-info relative to it, so a workspace and a target dir at other paths
//! than the snapshot's stay fresh (checked by hand and by tests/e2e/warm_state.rs). Registry
//! crates are keyed by their absolute source path under CARGO_HOME, so CARGO_HOME must be
//! at the same path as where the snapshot was made (`~/.cargo` on every CI runner).

use std::collections::BTreeMap;
use std::fs::{File, FileTimes};
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

/// Sets `path`'s mtime (and its atime, to the same: see `prune::mark_unused`).
pub fn set_mtime(path: &Path, mtime_nanos: u64) -> std::io::Result<()> {
    let time = UNIX_EPOCH + Duration::from_nanos(mtime_nanos);
    File::open(path)?.set_times(FileTimes::new().set_modified(time).set_accessed(time))
}

/// What each file of `tree` holds, as an id that changes when its content does: the git
/// blob id for a commit, a blake3 digest for a directory tree. Symlinks are left out (cargo
/// follows them to files listed here).
pub fn source_ids(tree: &Tree) -> BTreeMap<String, String> {
    let mut ids = BTreeMap::new();
    for (path, entry) in tree.entries() {
        match entry {
            Entry::File { blob: Some(oid), .. } => {
                ids.insert(path.clone(), format!("git:{oid}"));
            }
            Entry::File { blob: None, .. } => {
                if let Ok(bytes) = tree.read(path) {
                    ids.insert(path.clone(), format!("b3:{}", blake3::hash(&bytes).to_hex()));
                }
            }
            Entry::Symlink { .. } => {}
        }
    }
    ids
}

/// Back-dates every file of `work` whose id in `now` equals its id in `built_from` to
/// [`SOURCE_EPOCH`]; returns their paths. The others (changed or new) keep their time and
/// make cargo rebuild their crates.
pub fn backdate_unchanged<'a>(
    work: &Path,
    now: &'a BTreeMap<String, String>,
    built_from: &BTreeMap<String, String>,
) -> std::io::Result<Vec<&'a String>> {
    let mut backdated = Vec::new();
    for (path, id) in now {
        if built_from.get(path) == Some(id) {
            set_mtime(&work.join(path), SOURCE_EPOCH.as_nanos() as u64)?;
            backdated.push(path);
        }
    }
    Ok(backdated)
}
