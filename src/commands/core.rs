//! `tbuild core`: source -> plan -> restore or build -> publish.
//!
//! Locking, so that concurrent runs build each key once and never deadlock: lookups first
//! take no lock; the keys that missed are then locked in sorted order and looked up again
//! (another run may have stored them meanwhile); only then is the repository's work dir
//! locked for the checkout and builds. A run holding the work dir never waits for a key.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::load_tree;
use crate::build::{BuildDirs, build_target, expand_env};
use crate::cache::remote::{TieredStore, Uploader};
use crate::cache::{
    ActionRecord, ArtifactStore, AtomicFile, BlobDigestMemo, CacheError, HitSource, KeyDerivation, KeyLock, LinkMode,
    LocalCache, RECORD_FORMAT, RecordRead, UnpackLimits, admission, now_secs, pack, restore_linked, unpack,
};
use crate::cli::CoreArgs;
use crate::error::Error;
use crate::in_place;
use crate::plan::{PlannedTarget, plan, recipe_and_workspace};
use crate::publish::{Durations, Manifest, Staging, Status, TargetReport};
use crate::report::{Outcome, Phase, Reporter, human_bytes, human_duration};
use crate::source::{checkout, normalise_url, repo_id};

pub fn run(args: &CoreArgs, cache: &LocalCache, reporter: Arc<Reporter>) -> Result<(), Error> {
    let started = Instant::now();
    if let Some(tag) = &args.release.prefer_release
        && super::release::prefer_release(args, tag, &reporter)?
    {
        return Ok(());
    }
    let github = crate::github::GithubEnv::from_env();
    // Refuse a bad --out before any work.
    super::check_out_outside_cache(&args.out, cache)?;
    let staging = Staging::new(&args.out)?;
    let store =
        TieredStore::open(cache, &args.remote, args.rev.repo.offline, reporter.clone()).map_err(Error::Usage)?;
    store.set_max_entry_size(args.max_entry_size);
    let loaded = load_tree(cache, &args.rev, &reporter)?;
    let sha = loaded.tree.provenance();
    let key_started = Instant::now();
    let mut memo = BlobDigestMemo::load(&cache.memo_path())?;
    let (recipe, recipe_source, graph) =
        recipe_and_workspace(&loaded.tree, args.recipe.as_deref(), Some(cache), &mut memo)?;
    let recipe = recipe.select(&args.targets)?;
    reporter.info(&format!("{sha}: {}, recipe: {recipe_source}", plural(recipe.targets.len(), "target")));
    for target in &recipe.targets {
        reporter.phase(&target.name, Phase::Hash);
    }
    let planned = plan(&loaded.tree, &recipe, graph.as_ref(), &mut memo, cache)?;
    memo.save()?;
    planned.iter().for_each(|p| reporter.phase_ended(&p.target.name));
    let key_ms = key_started.elapsed().as_millis() as u64;
    let keys = planned.iter().map(|p| (p.target.name.as_str(), p.key.as_str())).collect();
    if let Some(manifest) = in_place::unchanged(cache, &args.out, &sha, &recipe_source.to_string(), &keys) {
        let manifest = in_place::refresh(cache, &args.out, manifest, key_ms)?;
        for p in &planned {
            reporter.done(&p.target.name, Outcome::InPlace, "in --out, unchanged");
        }
        reporter.summary(&format!(
            "{sha}: outputs already in place in {}, unchanged; nothing restored",
            args.out.display()
        ));
        github.write_outputs(&crate::github::run_outputs(&manifest))?;
        github.write_summary(&crate::github::run_summary("core", &manifest))?;
        if let Some(path) = &args.timings {
            crate::timings::write(path, &format!("{sha} ({})", loaded.repo_url), reporter.timeline())?;
        }
        if args.format.is_json() {
            println!("{}", serde_json::to_string_pretty(&manifest).expect("manifests serialise"));
        }
        return Ok(());
    }

    let stage = Stage {
        cache,
        store: &store,
        staging: &staging,
        reporter: &reporter,
        key_ms,
        link_mode: args.link_mode,
        max_entry_size: args.max_entry_size,
    };
    let mut reports: BTreeMap<String, TargetReport> = BTreeMap::new();
    let mut misses = Vec::new();
    for p in &planned {
        if !stage.restore_hit(p, &mut reports)? {
            misses.push(p.clone());
        }
    }

    misses.sort_by(|a, b| a.key.cmp(&b.key));
    let mut held: Vec<KeyLock> = Vec::new();
    let mut to_build = Vec::new();
    for p in misses {
        let lock = cache.lock_key(&p.key, || reporter.phase(&p.target.name, Phase::Waiting))?;
        if !stage.restore_hit(&p, &mut reports)? {
            held.push(lock);
            to_build.push(p);
        }
    }

    let mut failures = Vec::new();
    if !to_build.is_empty() {
        // A --path tree builds in --repo's work dir and cargo target dir, as its commits do:
        // the checkout rewrites only files whose content differs (git blob ids on both
        // sides), so a --path miss after --sha builds compiles what changed, not everything.
        let repo_dir =
            loaded.repo_dir.clone().unwrap_or_else(|| cache.repo_dir(&repo_id(&normalise_url(&args.rev.repo.url))));
        let _work_lock = KeyLock::acquire(&repo_dir.join("work.lock"), || {
            reporter.info("waiting for another tbuild using the work dir")
        })?;
        let work = repo_dir.join("work");
        let written = checkout(&loaded.tree, &work, &repo_dir)?;
        reporter.info(&format!("checked out {sha} ({} written)", plural(written, "file")));
        let tracked = Arc::new(loaded.tree.entries().keys().cloned().collect());
        let dirs_work = work.clone();
        let dirs = BuildDirs { work, cargo_target: repo_dir.join("cargo-target"), tracked };
        // Warm state (src/warm): a snapshot into an empty target dir first, sccache if it works.
        let mut warm = crate::warm::WarmState::new(&args.warm, &to_build, &loaded.tree);
        if let Some(warm) = &mut warm {
            warm.before_build(&store, &dirs.cargo_target, &dirs.work, &loaded.tree, &reporter);
        }
        let mut wrapper = crate::warm::sccache::build_env(args.warm.sccache, &args.remote, &reporter);
        if args.warm.explain_rebuild {
            let (name, value) = crate::warm::rebuild::CARGO_LOG;
            wrapper.insert(name.into(), value.into());
        }
        let cargo_target = dirs.cargo_target.clone();
        let how = HowToBuild { jobs: args.jobs as usize, offline: args.rev.repo.offline, wrapper };
        let results = build_all(to_build, dirs, &store, &sha, &reporter, how);
        if let Some(warm) = &warm {
            let any_built = results.iter().any(|(_, r)| r.is_ok());
            warm.after_build(&store, cache, &cargo_target, &loaded.tree, any_built, &reporter);
        }
        for (p, result) in results {
            github.log_group(&p.target.name, &cache.log_path(&p.target.name, &p.key));
            if args.warm.explain_rebuild {
                explain_rebuild(&p, cache, &dirs_work, &cargo_target, &reporter);
            }
            // Each target's outcome was reported as it finished (build_all); a built target
            // is published from the cache, exactly as a hit would be.
            let built = result.is_ok();
            let restored = result.and_then(|times| Ok((stage.restore_built(&p)?, times)));
            match restored {
                Ok(((record, took, _), times)) => {
                    let mut r = stage.report(&p, Status::Built, Some(&record), took, None);
                    r.durations_ms.build = times.build.as_millis() as u64;
                    r.durations_ms.pack = times.pack.as_millis() as u64;
                    reports.insert(p.target.name.clone(), r);
                }
                Err(err) => {
                    if built {
                        reporter.done(&p.target.name, Outcome::Failed, "reading back the stored entry");
                    }
                    let r = stage.report(&p, Status::Failed, None, Duration::ZERO, Some(err.to_string()));
                    reports.insert(p.target.name.clone(), r);
                    failures.push((p.target.name.clone(), err));
                }
            }
        }
    }
    drop(held);

    let manifest = Manifest {
        tbuild: env!("CARGO_PKG_VERSION").into(),
        sha: sha.clone(),
        repo: loaded.repo_url.clone(),
        recipe: recipe_source.to_string(),
        targets: reports,
    };
    staging.publish(&manifest)?;
    in_place::record(cache, &args.out);
    // Uploads ran in the background of the builds; the run is not over until they are.
    if let Some(remote) = store.finish()? {
        reporter.info(&remote.to_string());
    }
    github.write_outputs(&crate::github::run_outputs(&manifest))?;
    github.write_summary(&crate::github::run_summary("core", &manifest))?;
    if let Some(path) = &args.timings {
        crate::timings::write(path, &format!("{sha} ({})", loaded.repo_url), reporter.timeline())?;
    }
    if args.format.is_json() {
        println!("{}", serde_json::to_string_pretty(&manifest).expect("manifests serialise"));
    }
    let hits = manifest.targets.values().filter(|t| t.status == Status::Hit).count();
    let built = manifest.targets.values().filter(|t| t.status == Status::Built).count();
    reporter.summary(&format!(
        "{}: {hits} restored, {built} built, {} failed in {}; artifacts in {}",
        plural(manifest.targets.len(), "target"),
        failures.len(),
        human_duration(started.elapsed()),
        args.out.display()
    ));
    match failures.len() {
        0 => Ok(()),
        1 => Err(failures.pop().expect("one").1),
        _ => {
            for (_, err) in &failures {
                eprintln!("{} {err}", crate::report::Palette::for_stderr().error());
            }
            Err(Error::TargetsFailed {
                failed: failures.into_iter().map(|(name, _)| name).collect(),
                total: planned.len(),
            })
        }
    }
}

/// `--explain-rebuild`: what cargo found dirty in `p`'s build, and why (src/warm/rebuild.rs).
fn explain_rebuild(
    p: &PlannedTarget,
    cache: &LocalCache,
    work: &std::path::Path,
    target: &std::path::Path,
    reporter: &Reporter,
) {
    let log = cache.log_path(&p.target.name, &p.key);
    let text = std::fs::read(&log).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default();
    let units = crate::warm::rebuild::dirty_units(&text, &[(target, "target/"), (work, "")]);
    for line in crate::warm::rebuild::report(&units) {
        reporter.info(&format!("{}: {line}", p.target.name));
    }
}

/// What restoring and reporting need from the run; `tbuild restore` looks up through it too.
pub(super) struct Stage<'a> {
    pub(super) cache: &'a LocalCache,
    /// Where entries are looked up: the local cache, then the remote if there is one.
    pub(super) store: &'a dyn ArtifactStore,
    pub(super) staging: &'a Staging,
    pub(super) reporter: &'a Reporter,
    pub(super) key_ms: u64,
    pub(super) link_mode: LinkMode,
    /// `--max-entry-size`: a hit holding more is refused and rebuilt.
    pub(super) max_entry_size: u64,
}

impl Stage<'_> {
    /// Restores `p` if the cache has it and records the hit; `false` on a miss.
    pub(super) fn restore_hit(
        &self,
        p: &PlannedTarget,
        reports: &mut BTreeMap<String, TargetReport>,
    ) -> Result<bool, Error> {
        self.reporter.phase(&p.target.name, Phase::Restore);
        let Some((record, took, source)) = self.restore(p, self.max_entry_size)? else { return Ok(false) };
        self.reporter.done(&p.target.name, Outcome::Restored, &restored_detail(&record, source, took));
        let mut report = self.report(p, Status::Hit, Some(&record), took, None);
        report.source = source.as_str().into();
        reports.insert(p.target.name.clone(), report);
        Ok(true)
    }

    /// Restores a target just built and stored.
    fn restore_built(&self, p: &PlannedTarget) -> Result<(ActionRecord, Duration, HitSource), Error> {
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
        let mut on_corrupt = |c: crate::cache::CorruptEntry| {
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
            let available = admission::free_bytes(root)
                .map_err(|source| crate::publish::PublishError::Io { path: root.to_path_buf(), source })?;
            if needed > available {
                let (target, path) = (p.target.name.clone(), root.to_path_buf());
                return Err(crate::publish::PublishError::NoRoom { target, path, needed, available }.into());
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
                return Err(crate::publish::PublishError::Io { path, source }.into());
            }
            _ => return Err(err.into()),
        };
        let name = &p.target.name;
        self.reporter.warn(&format!("cache entry of {name} refused: {err}; dropped, rebuilding"));
        self.store.invalidate(&p.key, digest.filter(|_| hostile));
        Ok(())
    }

    pub(super) fn report(
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

/// `in 2.1 s (and 1.3 s waiting for cargo's build lock), packed in 0.3 s; output 4.5 MiB, archive 1.0 MiB`.
fn built_detail(times: &BuildTimes, output: u64, archive: u64) -> String {
    let waited = if times.waited.is_zero() {
        String::new()
    } else {
        format!(" (and {} waiting for cargo's build lock)", human_duration(times.waited))
    };
    format!(
        "in {}{waited}, packed in {}; {}",
        human_duration(times.build),
        human_duration(times.pack),
        sizes(output, archive)
    )
}

/// The size of the files as they land in --out, and of the compressed archive in the cache.
fn sizes(output: u64, archive: u64) -> String {
    format!("output {}, archive {}", human_bytes(output), human_bytes(archive))
}

/// `1 target`, `3 targets`.
pub(super) fn plural(n: usize, noun: &str) -> String {
    if n == 1 { format!("1 {noun}") } else { format!("{n} {noun}s") }
}

/// Where a built target's time went.
struct BuildTimes {
    build: Duration,
    /// Waiting for another cargo's lock: not part of `build`.
    waited: Duration,
    pack: Duration,
}

type Built = Result<BuildTimes, Error>;

/// How the builds run: at most `jobs` at once, without network when `offline`, with
/// `wrapper` (sccache's environment, see src/warm/sccache.rs) added to each target's env.
struct HowToBuild {
    jobs: usize,
    offline: bool,
    wrapper: BTreeMap<String, String>,
}

/// Builds the targets, at most `jobs` at once, storing each as soon as it is built and
/// reporting its outcome then (not when the last one is done).
fn build_all(
    targets: Vec<PlannedTarget>,
    dirs: BuildDirs,
    tiers: &TieredStore,
    sha: &str,
    reporter: &Arc<Reporter>,
    how: HowToBuild,
) -> Vec<(PlannedTarget, Built)> {
    let HowToBuild { jobs, offline, wrapper } = how;
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("a tokio runtime");
    let (cache, uploads) = (tiers.local(), tiers.uploader());
    runtime.block_on(async {
        let permits = Arc::new(tokio::sync::Semaphore::new(jobs));
        let mut set = tokio::task::JoinSet::new();
        for (index, p) in targets.iter().cloned().enumerate() {
            let (permits, dirs, cache, reporter, sha) =
                (permits.clone(), dirs.clone(), cache.clone(), reporter.clone(), sha.to_string());
            let (uploads, wrapper) = (uploads.clone(), wrapper.clone());
            reporter.phase(&p.target.name, Phase::Queued);
            set.spawn(async move {
                let _permit = permits.acquire_owned().await.expect("semaphore open");
                reporter.phase(&p.target.name, Phase::Build);
                let log = cache.log_path(&p.target.name, &p.key);
                let name = p.target.name.clone();
                let result: Built = async {
                    let mut env = expand_env(&p.target.env, offline)?;
                    if offline {
                        // --offline means no network at all, cargo's downloads included.
                        env.insert("CARGO_NET_OFFLINE".into(), "true".into());
                    }
                    for (name, value) in wrapper {
                        env.entry(name).or_insert(value);
                    }
                    let on_cargo_lock =
                        |waiting: bool| reporter.phase(&name, if waiting { Phase::CargoLock } else { Phase::Build });
                    let built = build_target(&p.target, &env, &dirs, &log, &on_cargo_lock).await?;
                    reporter.phase(&p.target.name, Phase::Pack);
                    let pack_started = Instant::now();
                    let (build, waited) = (built.duration, built.waited);
                    let record = tokio::task::spawn_blocking(move || {
                        store(&p, built.files, built.duration, &cache, &uploads, &sha)
                    })
                    .await
                    .expect("pack task does not panic")?;
                    let times = BuildTimes { build, waited, pack: pack_started.elapsed() };
                    let output = record.files.iter().map(|f| f.size).sum();
                    reporter.done(&name, Outcome::Built, &built_detail(&times, output, record.artifact_size));
                    Ok(times)
                }
                .await;
                if result.is_err() {
                    reporter.done(&name, Outcome::Failed, "");
                }
                (index, result)
            });
        }
        let mut results: Vec<Option<Built>> = targets.iter().map(|_| None).collect();
        while let Some(joined) = set.join_next().await {
            let (index, result) = joined.expect("build tasks do not panic");
            results[index] = Some(result);
        }
        targets.into_iter().zip(results).map(|(p, r)| (p, r.expect("every task reports"))).collect()
    })
}

/// Packs a built target's files and stores the archive and its action record.
fn store(
    p: &PlannedTarget,
    files: BTreeMap<String, std::path::PathBuf>,
    took: Duration,
    cache: &LocalCache,
    uploads: &Uploader,
    sha: &str,
) -> Result<ActionRecord, Error> {
    let staged = cache.tmp_dir().join(format!("pack-{}.tar.zst", p.key));
    let (packed, file) = pack(&files, AtomicFile::create(&cache.tmp_dir(), &staged)?)?;
    file.commit()?;
    let record = ActionRecord {
        format: RECORD_FORMAT,
        target: p.target.name.clone(),
        key: p.key.clone(),
        artifact_digest: packed.digest,
        artifact_size: packed.size,
        files: packed.files,
        build_duration_ms: took.as_millis() as u64,
        provenance: sha.to_string(),
        toolchain: p.toolchain.clone(),
        created_at: now_secs(),
        derivation: Some(KeyDerivation::new(&p.target, &p.key_env, &p.inputs)),
    };
    cache.put(&record, &staged)?;
    uploads.upload(&record);
    Ok(record)
}
