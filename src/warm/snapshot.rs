//! Snapshots of a cargo target dir as cache entries.
//!
//! A snapshot is an ordinary entry of the artifact store (so it lands in the local cache and
//! on the remote alike, verified the same way): an action record whose target is
//! `warm-state`, and an archive holding `manifest.json` plus the pruned target dir under
//! `target/`. Archives zero mtimes (so equal files pack to equal bytes); the manifest keeps
//! them instead, to the nanosecond, with the source tree the build saw (path -> content id).
//!
//! Each snapshot is stored twice, under two keys naming the same archive: the exact key
//! (toolchain, target triple, profiles, Cargo.lock) and the "latest" alias of the day
//! (toolchain, triple, profiles, UTC day number). A restore tries the exact key, then the
//! aliases from today back [`LOOKBACK_DAYS`] days: the nearest snapshot by time, found by
//! plain lookups on every backend, even those that cannot list keys (HTTP). The alias is per
//! day because some stores never overwrite a key (the GitHub Actions cache): there the
//! first snapshot of the day keeps the alias, elsewhere the last one does.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::mtime;
use super::prune::{self, Mark, WhatToKeep};
use crate::cache::{
    ActionRecord, ArtifactStore, AtomicFile, CacheError, RECORD_FORMAT, UnpackLimits, now_secs, pack, unpack,
};

/// The `target` of snapshot records (`tbuild cache ls` shows it; gc caps them apart).
pub use crate::cache::gc::WARM_STATE_TARGET as SNAPSHOT_TARGET;
/// Version of `manifest.json` inside a snapshot.
const MANIFEST_FORMAT: u32 = 1;
/// How many days back a restore looks for a "latest" alias.
pub const LOOKBACK_DAYS: u64 = 14;

/// The two keys a snapshot is stored under, and what a snapshot under them holds (part of
/// the keys: a machine that wants incremental state does not restore a snapshot without it).
#[derive(Debug, Clone)]
pub struct SnapshotKeys {
    pub exact: String,
    /// The day aliases, today's first.
    pub latest: Vec<String>,
    pub keep: WhatToKeep,
}

impl SnapshotKeys {
    /// `toolchain`: the cargo and rustc fingerprints; `profiles`: the cargo profiles built
    /// (e.g. `debug`); `lock`: digest of Cargo.lock (empty without one); `day`: days since
    /// the epoch, UTC. Without incremental state the keys are those of older tbuilds.
    pub fn new(toolchain: &str, triple: &str, profiles: &str, lock: &str, day: u64, keep: WhatToKeep) -> SnapshotKeys {
        let hash = |parts: &[&str]| {
            let mut hasher = blake3::Hasher::new();
            let with = keep.incremental.then_some("with incremental");
            for part in parts.iter().chain(&with) {
                hasher.update(part.as_bytes());
                hasher.update(b"\n");
            }
            hasher.finalize().to_hex().to_string()
        };
        SnapshotKeys {
            exact: hash(&["tbuild warm-state 1", toolchain, triple, profiles, lock]),
            latest: (0..=LOOKBACK_DAYS.min(day))
                .map(|back| {
                    hash(&["tbuild warm-state-latest 1", toolchain, triple, profiles, &(day - back).to_string()])
                })
                .collect(),
            keep,
        }
    }
}

/// What a snapshot says about itself.
#[derive(Debug, Serialize, Deserialize)]
struct Manifest {
    format: u32,
    /// The commit (or dir) the build saw.
    provenance: String,
    /// Source path -> content id (see [`mtime::source_ids`]).
    sources: BTreeMap<String, String>,
    /// Target-dir path -> mtime in nanoseconds since the epoch.
    mtimes: BTreeMap<String, u64>,
    /// The absolute path of the work dir the build ran in (empty in older snapshots); see
    /// [`relocate_build_script_outputs`].
    #[serde(default)]
    work_dir: String,
}

/// A snapshot saved.
#[derive(Debug)]
pub enum Saved {
    Stored {
        size: u64,
        files: usize,
        took: Duration,
    },
    /// The pruned target dir is bigger than the cap: nothing saved.
    TooBig {
        size: u64,
    },
}

/// Packs the pruned `target` dir and stores it under both `keys`.
pub fn save(
    store: &dyn ArtifactStore,
    tmp_dir: &Path,
    keys: &SnapshotKeys,
    target: &Path,
    mark: Mark,
    (provenance, sources, toolchain, work): (&str, BTreeMap<String, String>, &str, &Path),
    max_size: u64,
) -> Result<Saved, CacheError> {
    let started = Instant::now();
    let picked = prune::select(target, mark, keys.keep);
    let size: u64 = picked.values().map(|p| p.size).sum();
    if size > max_size {
        return Ok(Saved::TooBig { size });
    }
    let manifest = Manifest {
        format: MANIFEST_FORMAT,
        provenance: provenance.to_string(),
        sources,
        mtimes: picked.iter().map(|(rel, p)| (rel.clone(), p.mtime_nanos)).collect(),
        work_dir: work.to_str().unwrap_or_default().to_string(),
    };
    fs::create_dir_all(tmp_dir).map_err(CacheError::io(tmp_dir))?;
    let manifest_file = tempfile::NamedTempFile::new_in(tmp_dir).map_err(CacheError::io(tmp_dir))?;
    let bytes = serde_json::to_vec(&manifest).expect("manifests serialise");
    fs::write(manifest_file.path(), bytes).map_err(CacheError::io(manifest_file.path()))?;
    let mut files: BTreeMap<String, PathBuf> =
        picked.into_iter().map(|(rel, p)| (format!("target/{rel}"), p.path)).collect();
    files.insert("manifest.json".into(), manifest_file.path().to_path_buf());
    let staged = tmp_dir.join(format!("warm-{}-{}.tar.zst", keys.exact, std::process::id()));
    let (packed, file) = pack(&files, AtomicFile::create(tmp_dir, &staged)?)?;
    file.commit()?;
    let record = ActionRecord {
        format: RECORD_FORMAT,
        target: SNAPSHOT_TARGET.into(),
        key: keys.exact.clone(),
        artifact_digest: packed.digest,
        artifact_size: packed.size,
        files: packed.files,
        build_duration_ms: 0,
        provenance: provenance.to_string(),
        toolchain: toolchain.to_string(),
        created_at: now_secs(),
        derivation: None,
    };
    let (size, count) = (record.artifact_size, record.files.len());
    store.put(&record, &staged)?;
    // The archive is stored now: the alias names the same one (`put` finds it present).
    store.put(&ActionRecord { key: keys.latest[0].clone(), ..record }, &staged)?;
    Ok(Saved::Stored { size, files: count, took: started.elapsed() })
}

/// A snapshot restored.
#[derive(Debug)]
pub struct Restored {
    /// Found under the exact key (else under the latest alias).
    pub exact: bool,
    pub provenance: String,
    pub size: u64,
    pub files: usize,
    /// Source files that differ from the snapshot's (cargo rebuilds their crates).
    pub changed: usize,
    pub took: Duration,
}

/// Restores the snapshot under `keys` (exact first) into `target`, which must be absent or
/// empty, then back-dates the unchanged files of `work` (see [`mtime`]). `Ok(None)` when
/// there is none. On an error `target` is left empty: the build just runs cold.
pub fn restore(
    store: &dyn ArtifactStore,
    keys: &SnapshotKeys,
    target: &Path,
    work: &Path,
    sources: &BTreeMap<String, String>,
    on_corrupt: &mut dyn FnMut(crate::cache::CorruptEntry),
) -> Result<Option<Restored>, CacheError> {
    let started = Instant::now();
    let mut found = None;
    for (index, key) in std::iter::once(&keys.exact).chain(&keys.latest).enumerate() {
        if let Some(hit) = store.get(key, on_corrupt)? {
            found = Some((hit, index == 0));
            break;
        }
    }
    let Some((hit, exact)) = found else { return Ok(None) };
    let unpacked = target.with_file_name(format!(".warm-restore-{}", std::process::id()));
    let _ = fs::remove_dir_all(&unpacked);
    fs::create_dir_all(&unpacked).map_err(CacheError::io(&unpacked))?;
    let result = (|| {
        unpack(&hit.archive, None, &unpacked, UnpackLimits::for_files(&hit.record.files))?;
        let manifest_path = unpacked.join("manifest.json");
        let bytes = fs::read(&manifest_path).map_err(CacheError::io(&manifest_path))?;
        let manifest: Manifest = serde_json::from_slice(&bytes)
            .ok()
            .filter(|m: &Manifest| m.format == MANIFEST_FORMAT)
            .ok_or_else(|| CacheError::CorruptArchive {
                path: hit.archive.clone(),
                reason: "its manifest.json is unreadable or of another format".into(),
            })?;
        let restored = unpacked.join("target");
        fs::create_dir_all(&restored).map_err(CacheError::io(&restored))?;
        relocate_build_script_outputs(&restored, &manifest, work)?;
        for (rel, nanos) in &manifest.mtimes {
            let path = restored.join(rel);
            mtime::set_mtime(&path, *nanos).map_err(CacheError::io(&path))?;
        }
        if target.exists() {
            fs::remove_dir(target).map_err(CacheError::io(target))?;
        }
        fs::rename(&restored, target).map_err(CacheError::io(target))?;
        let backdated = mtime::backdate_unchanged(work, sources, &manifest.sources).map_err(CacheError::io(work))?;
        let changed = sources.len() - backdated.entries.len();
        // Else the next checkout takes the back-dated files for edited ones and rewrites
        // them, and the next build recompiles every crate. Best effort: a failure costs that.
        if let Some(state_dir) = work.parent() {
            let _ = crate::source::record_mtimes(work, state_dir, backdated.entries);
        }
        Ok(Restored {
            exact,
            provenance: manifest.provenance,
            size: hit.record.artifact_size,
            files: manifest.mtimes.len(),
            changed,
            took: started.elapsed(),
        })
    })();
    let _ = fs::remove_dir_all(&unpacked);
    result.map(Some)
}

/// Rewrites the work dir the snapshot was built in to `work` in the saved output of every
/// build-script run (`build/<pkg>-<hash>/output`, before its mtime is restored).
///
/// cargo keeps a build script's `rerun-if-changed` paths in that file as the script printed
/// them, and tasker-shared's prints absolute ones (`$CARGO_MANIFEST_DIR/proto`). Its
/// fingerprint holds them relative to the package; on a machine whose work dir is elsewhere
/// the file's paths no longer fall inside the package, so cargo sees a changed list
/// (`RerunIfChangedOutputPathsChanged`) and reruns the script, dirtying every crate above it.
/// Paths under OUT_DIR need nothing: cargo maps the old OUT_DIR (`root-output`) itself.
fn relocate_build_script_outputs(restored: &Path, manifest: &Manifest, work: &Path) -> Result<(), CacheError> {
    let (old, new) = (manifest.work_dir.as_str(), work.to_str().unwrap_or_default());
    if old.is_empty() || new.is_empty() || old == new {
        return Ok(());
    }
    for rel in manifest.mtimes.keys() {
        let mut parts = rel.rsplit('/');
        let is_run_output = parts.next() == Some("output") && parts.nth(1) == Some("build");
        if !is_run_output {
            continue;
        }
        let path = restored.join(rel);
        let text = fs::read(&path).map_err(CacheError::io(&path))?;
        let text = String::from_utf8_lossy(&text);
        if text.contains(old) {
            fs::write(&path, text.replace(old, new)).map_err(CacheError::io(&path))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_separate_what_cargo_cannot_share_and_aliases_go_back_by_day() {
        let none = WhatToKeep::default();
        let keys = SnapshotKeys::new("rustc: 1.90", "x86_64-linux", "debug", "lock-a", 20_000, none);
        assert_eq!(keys.latest.len(), LOOKBACK_DAYS as usize + 1);
        let yesterday = SnapshotKeys::new("rustc: 1.90", "x86_64-linux", "debug", "lock-a", 19_999, none);
        assert_eq!(keys.latest[1], yesterday.latest[0]);
        assert_eq!(keys.exact, yesterday.exact, "the exact key does not age");
        let other_lock = SnapshotKeys::new("rustc: 1.90", "x86_64-linux", "debug", "lock-b", 20_000, none);
        assert_ne!(keys.exact, other_lock.exact);
        assert_eq!(keys.latest, other_lock.latest, "a new Cargo.lock finds the nearest snapshot");
        for other in [
            SnapshotKeys::new("rustc: 1.91", "x86_64-linux", "debug", "lock-a", 20_000, none),
            SnapshotKeys::new("rustc: 1.90", "aarch64-linux", "debug", "lock-a", 20_000, none),
            SnapshotKeys::new("rustc: 1.90", "x86_64-linux", "release", "lock-a", 20_000, none),
            SnapshotKeys::new(
                "rustc: 1.90",
                "x86_64-linux",
                "debug",
                "lock-a",
                20_000,
                WhatToKeep { incremental: true },
            ),
        ] {
            assert_ne!(keys.exact, other.exact);
            assert_ne!(keys.latest[0], other.latest[0]);
        }
    }
}
