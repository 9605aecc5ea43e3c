//! `tbuild cache gc`: evict least recently used entries, sweep archives no record refers to,
//! remove stale temp files, and (on request) the per-repository cargo target dirs.
//!
//! Safe while other tbuilds run (the protocol is in `cache-layout.md`, "Maintenance"):
//! - an entry is evicted only under its key lock, taken without waiting: a key being built
//!   is skipped; its record is deleted first, so readers see a whole entry or none;
//! - archives are swept under the exclusive blobs lock, against a fresh scan of the records:
//!   a writer holds that lock shared from finding (or renaming in) an archive until its
//!   record is written, so no archive a record points at is ever swept;
//! - a reader that read a record just before its eviction finds the archive gone and treats
//!   the key as a miss (or, mid-unpack, keeps reading the unlinked file).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::entries::{self, Entry};
use super::{CacheError, KeyLock, LocalCache};

/// Temp files older than this belong to no live writer (a write refreshes the mtime).
pub const STALE_TEMP: Duration = Duration::from_secs(3600);

/// The `target` of warm-state snapshot records (`core --warm-state`, src/warm): the big
/// entries, capped apart from artifacts by [`GcPolicy::max_warm_size`].
pub const WARM_STATE_TARGET: &str = "warm-state";

/// What to evict.
#[derive(Debug, Clone, Default)]
pub struct GcPolicy {
    /// Evict least recently used entries until records + archives fit in this many bytes.
    pub max_size: Option<u64>,
    /// Evict entries not used for this long.
    pub max_age: Option<Duration>,
    /// Evict least recently used warm-state snapshots until they fit in this many bytes.
    /// Snapshots do not count toward `max_size`, nor other entries toward this.
    pub max_warm_size: Option<u64>,
    /// Also delete each repository's cargo target dir (not counted in `max_size`).
    pub prune_target_dirs: bool,
    /// Report what would be removed, remove nothing.
    pub dry_run: bool,
}

/// What gc removed (or, in a dry run, would remove).
#[derive(Debug, Default, serde::Serialize)]
pub struct GcReport {
    pub evicted: Vec<Evicted>,
    /// Entries gc wanted to evict but another tbuild held their key lock.
    pub skipped_in_use: usize,
    pub kept_entries: usize,
    /// Records + referenced archives left.
    pub kept_bytes: u64,
    pub orphan_archives: usize,
    pub orphan_bytes: u64,
    pub temp_files: usize,
    pub temp_bytes: u64,
    /// Build logs older than `--max-age` (also those of failed builds, which have no entry).
    pub logs: usize,
    pub log_bytes: u64,
    pub target_dirs: Vec<PrunedDir>,
    pub dry_run: bool,
}

#[derive(Debug, serde::Serialize)]
pub struct Evicted {
    pub target: String,
    pub key: String,
    /// The record, plus its archive when no remaining record shares it.
    pub bytes: u64,
    pub reason: &'static str,
}

#[derive(Debug, serde::Serialize)]
pub struct PrunedDir {
    pub path: PathBuf,
    pub bytes: u64,
}

impl GcReport {
    pub fn freed_bytes(&self) -> u64 {
        self.evicted.iter().map(|e| e.bytes).sum::<u64>()
            + self.orphan_bytes
            + self.temp_bytes
            + self.log_bytes
            + self.target_dirs.iter().map(|d| d.bytes).sum::<u64>()
    }
}

/// Runs gc over `cache` at time `now`.
pub fn collect(cache: &LocalCache, policy: &GcPolicy, now: SystemTime) -> Result<GcReport, CacheError> {
    let mut report = GcReport { dry_run: policy.dry_run, ..GcReport::default() };
    let mut entries = entries::records(cache)?;
    // Oldest first; the key breaks ties so that equal mtimes evict in a stable order.
    entries.sort_by(|a, b| a.last_used.cmp(&b.last_used).then_with(|| a.key.cmp(&b.key)));

    let blob_sizes: BTreeMap<String, u64> = entries::blobs(cache)?.into_iter().map(|b| (b.digest, b.size)).collect();
    let mut refs: BTreeMap<String, usize> = BTreeMap::new();
    for entry in &entries {
        if let Ok(record) = &entry.record {
            *refs.entry(record.artifact_digest.clone()).or_default() += 1;
        }
    }
    let mut total: u64 =
        entries.iter().map(|e| e.record_size).sum::<u64>() + refs.keys().filter_map(|d| blob_sizes.get(d)).sum::<u64>();
    let is_warm = |e: &Entry| e.record.as_ref().is_ok_and(|r| r.target == WARM_STATE_TARGET);
    let warm_digests: std::collections::BTreeSet<&str> = entries
        .iter()
        .filter(|e| is_warm(e))
        .filter_map(|e| e.record.as_ref().ok())
        .map(|r| r.artifact_digest.as_str())
        .collect();
    let mut warm_total: u64 = entries.iter().filter(|e| is_warm(e)).map(|e| e.record_size).sum::<u64>()
        + warm_digests.iter().filter_map(|d| blob_sizes.get(*d)).sum::<u64>();
    let mut artifact_total = total - warm_total;

    for entry in &entries {
        let digest = entry.record.as_ref().ok().map(|r| r.artifact_digest.clone());
        let archive_missing = digest.as_ref().is_none_or(|d| !blob_sizes.contains_key(d));
        let age = now.duration_since(entry.last_used).unwrap_or_default();
        let reason = if entry.record.is_err() {
            "unreadable record"
        } else if archive_missing {
            "archive missing"
        } else if policy.max_age.is_some_and(|max| age > max) {
            "older than --max-age"
        } else if is_warm(entry) && policy.max_warm_size.is_some_and(|max| warm_total > max) {
            "least recently used over --max-warm-size"
        } else if !is_warm(entry) && policy.max_size.is_some_and(|max| artifact_total > max) {
            "least recently used over --max-size"
        } else {
            report.kept_entries += 1;
            continue;
        };
        // The bytes this eviction frees: the record, and the archive if no other record keeps it.
        let mut bytes = entry.record_size;
        let last_ref = digest.as_ref().is_some_and(|d| refs.get(d) == Some(&1));
        if last_ref {
            bytes += digest.as_ref().and_then(|d| blob_sizes.get(d)).copied().unwrap_or(0);
        }
        if !policy.dry_run {
            match evict(cache, entry)? {
                Eviction::Done => {}
                Eviction::InUse => {
                    report.skipped_in_use += 1;
                    report.kept_entries += 1;
                    continue;
                }
                Eviction::UsedMeanwhile => {
                    report.kept_entries += 1;
                    continue;
                }
            }
        }
        if let Some(d) = &digest
            && let Some(n) = refs.get_mut(d)
        {
            *n -= 1;
        }
        total -= bytes;
        if is_warm(entry) {
            warm_total -= bytes;
        } else {
            artifact_total -= bytes;
        }
        let target = entry.record.as_ref().map(|r| r.target.clone()).unwrap_or_default();
        report.evicted.push(Evicted { target, key: entry.key.clone(), bytes, reason });
    }
    report.kept_bytes = total;

    sweep_archives(cache, &refs, &blob_sizes, &mut report)?;
    remove_stale_temp(cache, now, &mut report);
    if !policy.dry_run {
        remove_abandoned_mirror_files(cache, &mut report)?;
    }
    if let Some(max_age) = policy.max_age {
        remove_old_logs(cache, now, max_age, &mut report);
    }
    if policy.prune_target_dirs {
        prune_target_dirs(cache, policy.dry_run, &mut report)?;
    }
    Ok(report)
}

enum Eviction {
    Done,
    InUse,
    UsedMeanwhile,
}

/// Deletes an entry's record (and its log) under its key lock. The archive goes in the sweep.
fn evict(cache: &LocalCache, entry: &Entry) -> Result<Eviction, CacheError> {
    let Some(_lock) = cache.try_lock_key(&entry.key)? else { return Ok(Eviction::InUse) };
    // A hit since the scan refreshed the mtime (or the entry was rebuilt): keep it.
    match fs::symlink_metadata(&entry.path).and_then(|m| m.modified()) {
        Ok(mtime) if mtime != entry.last_used => return Ok(Eviction::UsedMeanwhile),
        Ok(_) => {}
        Err(err) if err.kind() == ErrorKind::NotFound => return Ok(Eviction::Done),
        Err(source) => return Err(CacheError::Io { path: entry.path.clone(), source }),
    }
    remove_file(&entry.path)?;
    // `target` is a plain name: validated with the record (`record_check`).
    if let Ok(record) = &entry.record {
        let _ = fs::remove_file(cache.log_path(&record.target, &entry.key));
    }
    Ok(Eviction::Done)
}

/// Removes archives that no record refers to. In a real run the records are scanned again
/// under the exclusive blobs lock, so an archive stored meanwhile is seen with its record.
fn sweep_archives(
    cache: &LocalCache,
    planned_refs: &BTreeMap<String, usize>,
    blob_sizes: &BTreeMap<String, u64>,
    report: &mut GcReport,
) -> Result<(), CacheError> {
    if report.dry_run {
        // Archives that only evicted entries referred to are counted in their evictions.
        for (digest, size) in blob_sizes {
            if !planned_refs.contains_key(digest) {
                report.orphan_archives += 1;
                report.orphan_bytes += size;
            }
        }
        return Ok(());
    }
    let _blobs = cache.lock_blobs(true)?;
    let referenced: BTreeSet<String> =
        entries::records(cache)?.into_iter().filter_map(|e| e.record.ok()).map(|r| r.artifact_digest).collect();
    let evicted_digests: BTreeSet<&String> = planned_refs.iter().filter(|(_, n)| **n == 0).map(|(d, _)| d).collect();
    for blob in entries::blobs(cache)? {
        if referenced.contains(&blob.digest) {
            continue;
        }
        remove_file(&blob.path)?;
        // Archives freed by an eviction were counted there; count only true orphans here.
        if !evicted_digests.contains(&blob.digest) {
            report.orphan_archives += 1;
            report.orphan_bytes += blob.size;
        }
    }
    Ok(())
}

/// Temp files no live writer owns, and trees a `clean` left half-deleted.
fn remove_stale_temp(cache: &LocalCache, now: SystemTime, report: &mut GcReport) {
    let Ok(entries) = fs::read_dir(cache.tmp_dir()) else { return };
    for entry in entries.flatten() {
        let Ok(meta) = entry.metadata() else { continue };
        let stale = meta.modified().is_ok_and(|t| now.duration_since(t).is_ok_and(|age| age > STALE_TEMP));
        if !stale {
            continue;
        }
        let bytes = dir_size(&entry.path());
        let removed = report.dry_run
            || if meta.is_dir() { fs::remove_dir_all(entry.path()) } else { fs::remove_file(entry.path()) }.is_ok();
        if removed {
            report.temp_files += 1;
            report.temp_bytes += bytes;
        }
    }
}

/// Lock and temp files a killed fetch or import left in a git mirror, removed under the
/// mirror's lock (taken without waiting: a mirror being fetched into is skipped).
fn remove_abandoned_mirror_files(cache: &LocalCache, report: &mut GcReport) -> Result<(), CacheError> {
    let Ok(dirs) = fs::read_dir(cache.root().join("repos")) else { return Ok(()) };
    for repo in dirs.flatten() {
        let mirror = repo.path().join("mirror.git");
        if !mirror.is_dir() {
            continue;
        }
        let Some(_fetch) = KeyLock::try_acquire(&repo.path().join("mirror.lock"))? else { continue };
        // A first fetch that failed left an empty mirror: nothing to keep (issue 17).
        if crate::source::is_empty_mirror(&mirror) && remove_tree(&mirror, &cache.tmp_dir()).is_ok() {
            report.temp_files += 1;
            continue;
        }
        let (files, bytes) = crate::source::remove_abandoned_git_files(&mirror);
        report.temp_files += files;
        report.temp_bytes += bytes;
    }
    Ok(())
}

/// Logs not written for `max_age`: a build writes its log as it runs, so none is live.
fn remove_old_logs(cache: &LocalCache, now: SystemTime, max_age: Duration, report: &mut GcReport) {
    let logs = walkdir::WalkDir::new(cache.versioned_dir().join("logs")).into_iter().flatten();
    for entry in logs.filter(|e| e.file_type().is_file()) {
        let Ok(meta) = entry.metadata() else { continue };
        let old = meta.modified().is_ok_and(|t| now.duration_since(t).is_ok_and(|age| age > max_age));
        if old && (report.dry_run || fs::remove_file(entry.path()).is_ok()) {
            report.logs += 1;
            report.log_bytes += meta.len();
        }
    }
}

/// Deletes `repos/*/cargo-target` of every repository no build is using (its work lock is
/// free). The next miss of that repository compiles its dependencies from scratch.
fn prune_target_dirs(cache: &LocalCache, dry_run: bool, report: &mut GcReport) -> Result<(), CacheError> {
    let repos = cache.root().join("repos");
    let Ok(dirs) = fs::read_dir(&repos) else { return Ok(()) };
    for repo in dirs.flatten() {
        let target = repo.path().join("cargo-target");
        if !target.is_dir() {
            continue;
        }
        let Some(_work) = KeyLock::try_acquire(&repo.path().join("work.lock"))? else { continue };
        let bytes = dir_size(&target);
        if !dry_run {
            remove_tree(&target, &cache.tmp_dir())?;
        }
        report.target_dirs.push(PrunedDir { path: target, bytes });
    }
    Ok(())
}

/// Renames `dir` into a fresh `.trash-*` dir under `tmp` first, so a crash mid-delete leaves
/// no half tree in place (the leftover is stale temp, removed by a later gc or clean), then
/// deletes it.
pub(crate) fn remove_tree(dir: &Path, tmp: &Path) -> Result<(), CacheError> {
    fs::create_dir_all(tmp).map_err(CacheError::io(tmp))?;
    let trash = tempfile::Builder::new().prefix(".trash-").tempdir_in(tmp).map_err(CacheError::io(tmp))?;
    match fs::rename(dir, trash.path().join("tree")) {
        Ok(()) => trash.close().map_err(CacheError::io(tmp)),
        Err(err) if err.kind() == ErrorKind::NotFound => Ok(()),
        // Another filesystem (a mounted target dir): delete in place.
        Err(_) => fs::remove_dir_all(dir).map_err(CacheError::io(dir)),
    }
}

/// Removes a record or archive, whatever was planted there (see `entries::remove_cache_file`).
fn remove_file(path: &Path) -> Result<(), CacheError> {
    entries::remove_cache_file(path).map_err(CacheError::io(path))
}

/// Apparent size of a file or a tree (symlinks not followed).
pub fn dir_size(path: &Path) -> u64 {
    walkdir::WalkDir::new(path)
        .into_iter()
        .flatten()
        .filter(|e| !e.file_type().is_dir())
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::{ActionRecord, ArtifactStore};

    /// Stores an entry whose archive holds `bytes`; returns its key.
    fn store(cache: &LocalCache, n: u8, bytes: &[u8]) -> String {
        let key = format!("{n:02x}").repeat(32);
        let archive = cache.tmp_dir().join(format!("a{n}"));
        fs::write(&archive, bytes).unwrap();
        let record = ActionRecord { target: format!("t{n}"), ..ActionRecord::for_test(&key, bytes) };
        cache.put(&record, &archive).unwrap();
        key
    }

    #[test]
    fn a_key_another_process_holds_is_skipped_and_shared_archives_stay() {
        let dir = tempfile::tempdir().unwrap();
        let cache = LocalCache::open(dir.path()).unwrap();
        let held = store(&cache, 1, b"one");
        let twin = store(&cache, 2, b"shared");
        let other = store(&cache, 3, b"shared");
        let _building = cache.lock_key(&held, || {}).unwrap();
        // Oldest first: the twin goes, the other keeps the shared archive.
        fs::File::options()
            .write(true)
            .open(cache.action_path(&twin))
            .unwrap()
            .set_modified(SystemTime::now() - Duration::from_secs(7200))
            .unwrap();
        let policy = GcPolicy { max_age: Some(Duration::from_secs(3600)), ..GcPolicy::default() };
        let report = collect(&cache, &policy, SystemTime::now()).unwrap();
        assert_eq!(report.evicted.iter().map(|e| e.key.as_str()).collect::<Vec<_>>(), [twin.as_str()]);
        assert_eq!(report.evicted[0].bytes, fs::metadata(cache.action_path(&other)).unwrap().len());
        assert!(cache.get(&other, &mut |_| panic!("the shared archive stays")).unwrap().is_some());

        let report =
            collect(&cache, &GcPolicy { max_size: Some(0), ..GcPolicy::default() }, SystemTime::now()).unwrap();
        assert_eq!(report.skipped_in_use, 1);
        assert!(cache.action_path(&held).exists(), "a key being built is never evicted");
        assert!(!cache.action_path(&other).exists());
        assert_eq!(entries::blobs(&cache).unwrap().len(), 1, "only the held entry's archive is left");
    }

    #[test]
    fn snapshots_have_their_own_cap_and_do_not_count_toward_max_size() {
        let dir = tempfile::tempdir().unwrap();
        let cache = LocalCache::open(dir.path()).unwrap();
        let artifact = store(&cache, 1, &[1; 1000]);
        let (old, new) = (store(&cache, 2, &[2; 5000]), store(&cache, 3, &[3; 5000]));
        for (key, age) in [(&old, 7200), (&new, 60)] {
            let path = cache.action_path(key);
            let mut record: ActionRecord = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
            record.target = WARM_STATE_TARGET.into();
            fs::write(&path, serde_json::to_vec(&record).unwrap()).unwrap();
            let mtime = SystemTime::now() - Duration::from_secs(age);
            fs::File::options().write(true).open(&path).unwrap().set_modified(mtime).unwrap();
        }
        // 10 kB of snapshots fit no 8 kB cap: the least recently used goes; the 2 kB
        // --max-size concerns the artifact alone, which fits.
        let policy = GcPolicy { max_size: Some(2000), max_warm_size: Some(8000), ..GcPolicy::default() };
        let report = collect(&cache, &policy, SystemTime::now()).unwrap();
        let evicted: Vec<(&str, &str)> = report.evicted.iter().map(|e| (e.key.as_str(), e.reason)).collect();
        assert_eq!(evicted, [(old.as_str(), "least recently used over --max-warm-size")]);
        assert!(cache.action_path(&new).exists() && cache.action_path(&artifact).exists());
    }
}
