//! The restore stage: a planned target's entry looked up (local cache, then the remote tier)
//! and its files unpacked or linked into the staging dir of `--out`. `tbuild core` and
//! `tbuild restore` both look up through [`Stage`]; an entry that fails a check is reported,
//! dropped and treated as a miss, so the target is rebuilt rather than the run wedged.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::plan::PlannedTarget;
use super::plural;
use super::publish::{Durations, PublishError, Staging, Status, TargetReport};
use crate::cache::{
    ActionRecord, ArtifactStore, CacheError, CorruptEntry, HitSource, LinkMode, LocalCache, RECORD_FORMAT, RecordRead,
    UnpackLimits, admission, restore_linked, unpack,
};
use crate::error::Error;
use crate::report::{Outcome, Phase, Reporter, human_bytes, human_duration};

/// What restoring and reporting need from the run; `tbuild restore` looks up through it too.
pub struct Stage<'a> {
    pub cache: &'a LocalCache,
    /// Where entries are looked up: the local cache, then the remote if there is one.
    pub store: &'a dyn ArtifactStore,
    pub staging: &'a Staging,
    pub reporter: &'a Reporter,
    pub key_ms: u64,
    pub link_mode: LinkMode,
    /// `--max-entry-size`: a hit holding more is refused and rebuilt.
    pub max_entry_size: u64,
}

impl Stage<'_> {
    /// Restores `p` if the cache has it and records the hit; `false` on a miss.
    pub fn restore_hit(&self, p: &PlannedTarget, reports: &mut BTreeMap<String, TargetReport>) -> Result<bool, Error> {
        self.reporter.phase(&p.target.name, Phase::Restore);
        let Some((record, took, source)) = self.restore(p, self.max_entry_size)? else { return Ok(false) };
        self.reporter.done(&p.target.name, Outcome::Restored, &restored_detail(&record, source, took));
        let mut report = self.report(p, Status::Hit, Some(&record), took, None);
        report.source = source.as_str().into();
        reports.insert(p.target.name.clone(), report);
        Ok(true)
    }

    /// Restores a target just built and stored.
    pub fn restore_built(&self, p: &PlannedTarget) -> Result<(ActionRecord, Duration, HitSource), Error> {
        // What this run just built is restored whatever its size: the cap is for hits. Its
        // line is final already (built): the timeline alone records the publishing.
        self.reporter.timeline().start(&p.target.name, "restore");
        let stored = self.restore(p, u64::MAX)?;
        self.reporter.phase_ended(&p.target.name);
        stored.ok_or_else(|| {
            let reason = "the entry just stored cannot be read back".into();
            CacheError::CorruptArchive { path: self.cache.action_path(&p.key), reason }.into()
        })
    }

    /// A cache hit restored into the staging dir, or `None` on a miss. Entries that fail a
    /// check are reported, dropped and treated as misses, so the target is rebuilt.
    fn restore(&self, p: &PlannedTarget, max_size: u64) -> Result<Option<(ActionRecord, Duration, HitSource)>, Error> {
        let (cache, staging, reporter) = (self.store, self.staging, self.reporter);
        let started = Instant::now();
        let name = &p.target.name;
        let mut on_corrupt = |c: CorruptEntry| {
            let (path, reason) = (c.path.display(), c.reason);
            reporter.warn(&format!("cache entry of {name} is corrupt ({path}: {reason}); dropped, rebuilding"));
        };
        let dest = staging.target_dir(name)?;
        if self.link_mode != LinkMode::Copy {
            // Linked trees live in the local cache; a remote hit takes the copy path below
            // once, and links from then on.
            // The same validated, no-follow read as every other reader (a planted FIFO must
            // not hang the run); a bad record is left for `restore_linked` to report and drop.
            let local = match self.cache.read_record(&p.key) {
                Ok(RecordRead::Found(record)) => Some(*record),
                _ => None,
            };
            let admitted = match &local {
                Some(record) if record.format <= RECORD_FORMAT => self.admit(p, record, max_size)?,
                _ => false,
            };
            if admitted {
                let warn = |message: &str| reporter.warn(message);
                match restore_linked(self.cache, &p.key, &dest, self.link_mode, &mut on_corrupt, &warn) {
                    Ok(Some(record)) => return Ok(Some((record, started.elapsed(), HitSource::Local))),
                    Ok(None) => {}
                    Err(err) => self.unrestorable(p, err, local.as_ref().map(|r| r.artifact_digest.as_str()))?,
                }
            }
            staging.target_dir(name)?;
        }
        let Some(hit) = cache.get(&p.key, &mut on_corrupt)? else {
            reporter.phase_ended(name);
            return Ok(None);
        };
        if !self.admit(p, &hit.record, max_size)? {
            reporter.phase_ended(name);
            return Ok(None);
        }
        let limits = UnpackLimits::for_files(&hit.record.files);
        let unpacked = unpack(&hit.archive, None, &dest, limits).and_then(|files| {
            if files == hit.record.files {
                Ok(())
            } else {
                let reason = "its files differ from its action record".into();
                Err(CacheError::CorruptArchive { path: hit.archive.clone(), reason })
            }
        });
        match unpacked {
            Ok(()) => Ok(Some((hit.record, started.elapsed(), hit.source))),
            Err(err) => {
                self.unrestorable(p, err, Some(&hit.record.artifact_digest))?;
                reporter.phase_ended(name);
                staging.target_dir(name)?;
                Ok(None)
            }
        }
    }

    /// Whether `record` may be restored: not over `--max-entry-size` (else it is refused:
    /// dropped and rebuilt), and, when its files will be written into `--out` (copy,
    /// reflink), with room for them there (else an error naming both sizes).
    fn admit(&self, p: &PlannedTarget, record: &ActionRecord, max_size: u64) -> Result<bool, Error> {
        if let Some(reason) = admission::oversized(record, max_size) {
            let name = &p.target.name;
            self.reporter.warn(&format!("cache entry of {name} refused: {reason}; dropped, rebuilding"));
            self.store.invalidate(&p.key, None);
            return Ok(false);
        }
        if self.link_mode != LinkMode::Hardlink {
            let needed = admission::unpacked_size(record);
            let root = self.staging.root();
            let available =
                admission::free_bytes(root).map_err(|source| PublishError::Io { path: root.to_path_buf(), source })?;
            if needed > available {
                let (target, path) = (p.target.name.clone(), root.to_path_buf());
                return Err(PublishError::NoRoom { target, path, needed, available }.into());
            }
        }
        Ok(true)
    }

    /// The one place that decides what a failed restore of a hit means:
    /// - the archive vanished (a concurrent `tbuild cache gc`): a plain miss;
    /// - the entry is unsafe, lies about its files, or its layout cannot be unpacked (see
    ///   [`admission::layout_collision`]): refused, dropped from the local cache (a remote
    ///   one is overwritten by the rebuild's upload) and rebuilt, so it never wedges a run;
    /// - anything else is the machine's: an error, exit 8 when it is --out's file system.
    ///
    /// `Ok` means "treat as a miss"; `digest` names the entry's archive when known.
    fn unrestorable(&self, p: &PlannedTarget, err: CacheError, digest: Option<&str>) -> Result<(), Error> {
        let in_out = |path: &std::path::Path| path.starts_with(self.staging.root());
        let hostile = match &err {
            CacheError::Io { path, source } if source.kind() == std::io::ErrorKind::NotFound && !in_out(path) => {
                // Evicted between the lookup and now (or a tree being re-made): a miss.
                return Ok(());
            }
            CacheError::UnsafeEntry { .. } => true,
            CacheError::Io { source, .. } if admission::layout_collision(source) => true,
            // A mismatch only blames this record: another may share the archive.
            CacheError::CorruptArchive { .. } => false,
            CacheError::Io { path, .. } if in_out(path) => {
                let CacheError::Io { path, source } = err else { unreachable!("matched above") };
                return Err(PublishError::Io { path, source }.into());
            }
            _ => return Err(err.into()),
        };
        let name = &p.target.name;
        self.reporter.warn(&format!("cache entry of {name} refused: {err}; dropped, rebuilding"));
        self.store.invalidate(&p.key, digest.filter(|_| hostile));
        Ok(())
    }

    pub fn report(
        &self,
        p: &PlannedTarget,
        status: Status,
        record: Option<&ActionRecord>,
        restore: Duration,
        error: Option<String>,
    ) -> TargetReport {
        TargetReport {
            key: p.key.clone(),
            status,
            source: if status == Status::Hit { "local" } else { "build" }.into(),
            artifact_dir: p.target.artifact_dir.clone(),
            inputs: p.inputs.len(),
            artifact_digest: record.map(|r| r.artifact_digest.clone()),
            durations_ms: Durations { key: self.key_ms, restore: restore.as_millis() as u64, build: 0, pack: 0 },
            files: record.map(|r| r.files.clone()).unwrap_or_default(),
            error,
        }
    }
}

/// `in 45 ms from the remote cache; 3 files, output 4.5 MiB, archive 1.0 MiB`.
fn restored_detail(record: &ActionRecord, source: HitSource, took: Duration) -> String {
    let from = if source == HitSource::Remote { " from the remote cache" } else { "" };
    format!(
        "in {}{from}; {}, {}",
        human_duration(took),
        plural(record.files.len(), "file"),
        sizes(record.files.iter().map(|f| f.size).sum(), record.artifact_size)
    )
}

/// The size of the files as they land in --out, and of the compressed archive in the cache.
pub(super) fn sizes(output: u64, archive: u64) -> String {
    format!("output {}, archive {}", human_bytes(output), human_bytes(archive))
}
