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
    LocalCache, RECORD_FORMAT, UnpackLimits, now_secs, pack, restore_linked, unpack,
};
use crate::cli::CoreArgs;
use crate::error::Error;
use crate::in_place;
use crate::plan::{PlannedTarget, plan, recipe_and_workspace};
use crate::publish::{Durations, Manifest, Staging, Status, TargetReport};
use crate::report::{Outcome, Phase, Reporter, human_bytes, human_duration};
use crate::source::{checkout, repo_id};

pub fn run(args: &CoreArgs, cache: &LocalCache, reporter: Arc<Reporter>) -> Result<(), Error> {
    let started = Instant::now();
    if let Some(tag) = &args.release.prefer_release
        && super::release::prefer_release(args, tag, &reporter)?
    {
        return Ok(());
    }
    let github = crate::github::GithubEnv::from_env();
    // Refuse a bad --out before any work.
    let staging = Staging::new(&args.out)?;
    let store = TieredStore::open(cache, &args.remote, args.rev.offline, reporter.clone()).map_err(Error::Usage)?;
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
    let planned = plan(&loaded.tree, &recipe, graph.as_ref(), &mut memo)?;
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
        if args.json {
            println!("{}", serde_json::to_string_pretty(&manifest).expect("manifests serialise"));
        }
        return Ok(());
    }

    let stage =
        Stage { cache, store: &store, staging: &staging, reporter: &reporter, key_ms, link_mode: args.link_mode };
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
        // A --path tree builds in a copy of its own, next to no mirror.
        let repo_dir = loaded.repo_dir.clone().unwrap_or_else(|| cache.repo_dir(&repo_id(&loaded.repo_url)));
        let _work_lock = KeyLock::acquire(&repo_dir.join("work.lock"), || {
            reporter.info("waiting for another tbuild using the work dir")
        })?;
        let work = repo_dir.join("work");
        let written = checkout(&loaded.tree, &work, &repo_dir)?;
        reporter.info(&format!("checked out {sha} ({} written)", plural(written, "file")));
        let tracked = Arc::new(loaded.tree.entries().keys().cloned().collect());
        let dirs = BuildDirs { work, cargo_target: repo_dir.join("cargo-target"), tracked };
        // Warm state (src/warm): a snapshot into an empty target dir first, sccache if it works.
        let mut warm = crate::warm::WarmState::new(&args.warm, &to_build, &loaded.tree);
        if let Some(warm) = &mut warm {
            warm.before_build(&store, &dirs.cargo_target, &dirs.work, &loaded.tree, &reporter);
        }
        let wrapper = crate::warm::sccache::build_env(args.warm.sccache, &args.remote, &reporter);
        let cargo_target = dirs.cargo_target.clone();
        let how = HowToBuild { jobs: args.jobs as usize, offline: args.rev.offline, wrapper };
        let results = build_all(to_build, dirs, &store, &sha, &reporter, how);
        if let Some(warm) = &warm {
            let any_built = results.iter().any(|(_, r)| r.is_ok());
            warm.after_build(&store, cache, &cargo_target, &loaded.tree, any_built, &reporter);
        }
        for (p, result) in results {
            github.log_group(&p.target.name, &cache.log_path(&p.target.name, &p.key));
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
    if args.json {
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

/// What restoring and reporting need from the run; `tbuild restore` looks up through it too.
pub(super) struct Stage<'a> {
    pub(super) cache: &'a LocalCache,
    /// Where entries are looked up: the local cache, then the remote if there is one.
    pub(super) store: &'a dyn ArtifactStore,
    pub(super) staging: &'a Staging,
    pub(super) reporter: &'a Reporter,
    pub(super) key_ms: u64,
    pub(super) link_mode: LinkMode,
}

impl Stage<'_> {
    /// Restores `p` if the cache has it and records the hit; `false` on a miss.
    pub(super) fn restore_hit(
        &self,
        p: &PlannedTarget,
        reports: &mut BTreeMap<String, TargetReport>,
    ) -> Result<bool, Error> {
        self.reporter.phase(&p.target.name, Phase::Restore);
        let Some((record, took, source)) = self.restore(p)? else { return Ok(false) };
        self.reporter.done(&p.target.name, Outcome::Restored, &restored_detail(&record, source, took));
        let mut report = self.report(p, Status::Hit, Some(&record), took, None);
        report.source = source.as_str().into();
        reports.insert(p.target.name.clone(), report);
        Ok(true)
    }

    /// Restores a target just built and stored.
    fn restore_built(&self, p: &PlannedTarget) -> Result<(ActionRecord, Duration, HitSource), Error> {
        // Its line is final already (built): the timeline alone records the publishing.
        self.reporter.timeline().start(&p.target.name, "restore");
        let stored = self.restore(p)?;
        self.reporter.phase_ended(&p.target.name);
        stored.ok_or_else(|| {
            let reason = "the entry just stored cannot be read back".into();
            CacheError::CorruptArchive { path: self.cache.action_path(&p.key), reason }.into()
        })
    }

    /// A cache hit restored into the staging dir, or `None` on a miss. Entries that fail a
    /// check are reported, dropped and treated as misses, so the target is rebuilt.
    fn restore(&self, p: &PlannedTarget) -> Result<Option<(ActionRecord, Duration, HitSource)>, Error> {
        let (cache, staging, reporter) = (self.store, self.staging, self.reporter);
        let started = Instant::now();
        let name = &p.target.name;
        let mut on_corrupt = |c: crate::cache::CorruptEntry| {
            let (path, reason) = (c.path.display(), c.reason);
            reporter.warn(&format!("cache entry of {name} is corrupt ({path}: {reason}); dropped, rebuilding"));
        };
        let dest = staging.target_dir(name)?;
        if self.link_mode != LinkMode::Copy {
            let warn = |message: &str| reporter.warn(message);
            // Linked trees live in the local cache; a remote hit takes the copy path below
            // once, and links from then on.
            match restore_linked(self.cache, &p.key, &dest, self.link_mode, &mut on_corrupt, &warn)? {
                Some(record) => return Ok(Some((record, started.elapsed(), HitSource::Local))),
                None => {
                    staging.target_dir(name)?;
                }
            }
        }
        let Some(hit) = cache.get(&p.key, &mut on_corrupt)? else {
            reporter.phase_ended(name);
            return Ok(None);
        };
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
            // Evicted by a concurrent `tbuild cache gc` between the lookup and now: a miss.
            Err(CacheError::Io { path, source })
                if path == hit.archive && source.kind() == std::io::ErrorKind::NotFound =>
            {
                reporter.phase_ended(name);
                staging.target_dir(name)?;
                Ok(None)
            }
            Err(err @ (CacheError::UnsafeEntry { .. } | CacheError::CorruptArchive { .. })) => {
                reporter.warn(&format!("cache entry of {name} refused: {err}; dropped, rebuilding"));
                // An unsafe entry is unsafe under any record; a mismatch only blames this one.
                let hostile = matches!(err, CacheError::UnsafeEntry { .. });
                cache.invalidate(&p.key, hostile.then_some(hit.record.artifact_digest.as_str()));
                staging.target_dir(name)?;
                Ok(None)
            }
            // Writing into the staging dir failed: that is --out's file system, not the cache.
            Err(CacheError::Io { path, source }) if path.starts_with(staging.root()) => {
                Err(crate::publish::PublishError::Io { path, source }.into())
            }
            Err(err) => Err(err.into()),
        }
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
