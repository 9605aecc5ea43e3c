//! The pipeline, one stage per file, in the order a run goes through them:
//!
//! 1. [`source`]: the tree of a commit (mirrored into the cache) or of a dir on disk;
//! 2. [`plan`]: its recipe, each target's inputs and key ([`plan::load`] does 1 and 2 for
//!    every command that needs a planned tree);
//! 3. [`restore`]: each key looked up (local cache, then the remote) and unpacked or linked;
//! 4. [`build`]: what missed, built in the repository's work dir, and [`store`]d;
//! 5. [`publish`]: the restored files laid out in `--out` with a `manifest.json`.
//!
//! [`core`] and [`restore_only`] run the stages for `tbuild core` and `tbuild restore`; the
//! commands (src/commands) only turn arguments into a [`Run`] and call one of them.
//! [`in_place`] lets a repeat with `--out` already right skip the restore.
//!
//! Locking, so that concurrent runs build each key once and never deadlock: lookups first
//! take no lock; the keys that missed are then locked in sorted order and looked up again
//! (another run may have stored them meanwhile); only then is the repository's work dir
//! locked for the checkout and builds. A run holding the work dir never waits for a key.

pub mod build;
pub mod in_place;
pub mod plan;
pub mod publish;
pub mod restore;
pub mod source;
pub mod store;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use self::build::{BuildOutcome, HowToBuild};
use self::plan::{Planned, PlannedTarget};
use self::publish::{Manifest, Staging, Status, TargetReport};
use self::restore::Stage;
use self::source::Rev;
use crate::cache::remote::{RemoteConfig, TieredStore};
use crate::cache::{KeyLock, LinkMode, LocalCache};
use crate::cli::WarmArgs;
use crate::error::Error;
use crate::report::{Outcome, Phase, Reporter, human_duration};
use crate::tools::github::{self, GithubEnv};

/// What a `core` or `restore` run was asked for, as plain values.
pub struct Run<'a> {
    pub rev: Rev<'a>,
    /// `--repo`: also whose work dir a `--path` tree builds in.
    pub repo: &'a str,
    pub offline: bool,
    pub recipe: Option<&'a Path>,
    pub targets: &'a [String],
    pub out: &'a Path,
    pub remote: &'a RemoteConfig,
    pub link_mode: LinkMode,
    /// `--max-entry-size`: a hit holding more is refused and rebuilt.
    pub max_entry_size: u64,
    /// `--json`: print the manifest on stdout.
    pub json: bool,
}

/// What only `core` needs on top of a [`Run`].
pub struct Builds<'a> {
    pub jobs: usize,
    pub warm: &'a WarmArgs,
    pub timings: Option<&'a Path>,
}

/// `tbuild core`: source -> plan -> restore or build -> publish.
pub fn core(
    run: &Run<'_>,
    builds: &Builds<'_>,
    cache: &LocalCache,
    runtime: &tokio::runtime::Handle,
    reporter: Arc<Reporter>,
) -> Result<(), Error> {
    let started = Instant::now();
    let github = GithubEnv::from_env();
    // Refuse a bad --out before any work.
    publish::check_out_outside_cache(run.out, cache)?;
    let staging = Staging::new(run.out)?;
    let store = open_store(run, cache, runtime, &reporter)?;
    let planned = plan_announced(run, cache, &reporter, true)?;
    let keys = planned.targets.iter().map(|p| (p.target.name.as_str(), p.key.as_str())).collect();
    let sha = planned.loaded.tree.provenance();
    let recipe_source = planned.recipe_source.to_string();
    if let Some(manifest) = in_place::unchanged(cache, run.out, &sha, &recipe_source, &keys) {
        let manifest = in_place::refresh(cache, run.out, manifest, planned.key_ms)?;
        for p in &planned.targets {
            reporter.done(&p.target.name, Outcome::InPlace, "in --out, unchanged");
        }
        reporter
            .summary(&format!("{sha}: outputs already in place in {}, unchanged; nothing restored", run.out.display()));
        return finish_outputs(run, builds, &github, &manifest, &planned, &reporter);
    }
    let stage = stage(run, cache, &store, &staging, &reporter, planned.key_ms);
    let mut reports = BTreeMap::new();
    let to_build = restore_or_lock(&stage, &planned.targets, &mut reports)?;
    let mut failures = Vec::new();
    if !to_build.keys.is_empty() {
        let how = HowToBuild {
            jobs: builds.jobs,
            offline: run.offline,
            warm: builds.warm,
            repo: run.repo,
            remote: run.remote,
        };
        let built = build::build_misses(to_build.keys, &planned.loaded, &store, &reporter, &how)?;
        failures = collect_built(&stage, built, builds.warm.explain_rebuild, &github, &mut reports);
    }
    drop(to_build.locks);
    let manifest = manifest(&planned, reports);
    staging.publish(&manifest)?;
    in_place::record(cache, run.out);
    // Uploads ran in the background of the builds; the run is not over until they are.
    if let Some(remote) = store.finish()? {
        reporter.info(&remote.to_string());
    }
    finish_outputs(run, builds, &github, &manifest, &planned, &reporter)?;
    report_core(&manifest, failures, started.elapsed(), run.out, &reporter)
}

/// `tbuild restore`: the CI restore step. The same lookups as [`core`] (its [`Stage`]), and
/// nothing else: no checkout, no work dir lock, no build.
///
/// On a partial hit the hits are published into `--out` and the manifest marks each missing
/// target `miss` (exit 0, `cache-hit=false`), so a job can use what is there and build the
/// rest. With `fail_on_miss` any miss leaves `--out` exactly as it was and exits 9: a job
/// that must not build gets all of its targets or none.
pub fn restore_only(
    run: &Run<'_>,
    fail_on_miss: bool,
    cache: &LocalCache,
    runtime: &tokio::runtime::Handle,
    reporter: Arc<Reporter>,
) -> Result<(), Error> {
    let started = Instant::now();
    let store = open_store(run, cache, runtime, &reporter)?;
    let github = GithubEnv::from_env();
    // Refuse a bad --out before any work.
    publish::check_out_outside_cache(run.out, cache)?;
    let staging = Staging::new(run.out)?;
    let planned = plan_announced(run, cache, &reporter, false)?;
    let stage = stage(run, cache, &store, &staging, &reporter, planned.key_ms);
    let mut reports = BTreeMap::new();
    let mut missed = Vec::new();
    for p in &planned.targets {
        if !stage.restore_hit(p, &mut reports)? {
            reporter.done(&p.target.name, Outcome::Missing, "");
            let mut report = stage.report(p, Status::Miss, None, Duration::ZERO, None);
            report.source = "none".into();
            reports.insert(p.target.name.clone(), report);
            missed.push(p.target.name.clone());
        }
    }
    let manifest = manifest(&planned, reports);
    let total = planned.targets.len();
    if !missed.is_empty() && fail_on_miss {
        // The outputs still tell later steps what happened; `staging` is dropped unpublished.
        github.write_outputs(&github::run_outputs(&manifest))?;
        github.write_summary(&github::run_summary("restore", &manifest))?;
        return Err(Error::CacheMiss { missed, total });
    }
    staging.publish(&manifest)?;
    if let Some(remote) = store.finish()? {
        reporter.info(&remote.to_string());
    }
    github.write_outputs(&github::run_outputs(&manifest))?;
    github.write_summary(&github::run_summary("restore", &manifest))?;
    print_manifest(run.json, &manifest);
    reporter.summary(&format!(
        "{}: {} restored, {} not in the cache in {}; artifacts in {}",
        plural(total, "target"),
        total - missed.len(),
        missed.len(),
        human_duration(started.elapsed()),
        run.out.display()
    ));
    Ok(())
}

/// The local cache with the run's remote under it.
fn open_store(
    run: &Run<'_>,
    cache: &LocalCache,
    runtime: &tokio::runtime::Handle,
    reporter: &Arc<Reporter>,
) -> Result<TieredStore, Error> {
    let warn = {
        let reporter = reporter.clone();
        Arc::new(move |message: &str| reporter.warn(message))
    };
    let store = TieredStore::open(cache, run.remote, run.offline, warn, runtime.clone()).map_err(Error::Usage)?;
    store.set_max_entry_size(run.max_entry_size);
    Ok(store)
}

/// [`plan::load`] with each target's hashing reported; `core` also names the tree and recipe
/// and ends the hash phase.
fn plan_announced(run: &Run<'_>, cache: &LocalCache, reporter: &Reporter, core: bool) -> Result<Planned, Error> {
    let planned = plan::load(cache, run.rev, run.recipe, run.targets, reporter, |tree, recipe, source| {
        if core {
            let sha = tree.provenance();
            reporter.info(&format!("{sha}: {}, recipe: {source}", plural(recipe.targets.len(), "target")));
        }
        for target in &recipe.targets {
            reporter.phase(&target.name, Phase::Hash);
        }
    })?;
    if core {
        planned.targets.iter().for_each(|p| reporter.phase_ended(&p.target.name));
    }
    Ok(planned)
}

fn stage<'a>(
    run: &Run<'_>,
    cache: &'a LocalCache,
    store: &'a TieredStore,
    staging: &'a Staging,
    reporter: &'a Reporter,
    key_ms: u64,
) -> Stage<'a> {
    let (link_mode, max_entry_size) = (run.link_mode, run.max_entry_size);
    Stage { cache, store, staging, reporter, key_ms, link_mode, max_entry_size }
}

/// The keys a run must build, each locked (in sorted order) so that concurrent runs build it
/// once; the locks are held until the run has published.
struct ToBuild {
    keys: Vec<PlannedTarget>,
    locks: Vec<KeyLock>,
}

/// Restores every hit; locks the misses in key order and looks each up again (another run
/// may have stored it meanwhile).
fn restore_or_lock(
    stage: &Stage<'_>,
    planned: &[PlannedTarget],
    reports: &mut BTreeMap<String, TargetReport>,
) -> Result<ToBuild, Error> {
    let mut misses = Vec::new();
    for p in planned {
        if !stage.restore_hit(p, reports)? {
            misses.push(p.clone());
        }
    }
    misses.sort_by(|a, b| a.key.cmp(&b.key));
    let mut to_build = ToBuild { keys: Vec::new(), locks: Vec::new() };
    for p in misses {
        let lock = stage.cache.lock_key(&p.key, || stage.reporter.phase(&p.target.name, Phase::Waiting))?;
        if !stage.restore_hit(&p, reports)? {
            to_build.locks.push(lock);
            to_build.keys.push(p);
        }
    }
    Ok(to_build)
}

/// Publishes what was built from the cache, exactly as a hit would be, and records each
/// target's report; the failures, by target. Each outcome was reported as it finished.
fn collect_built(
    stage: &Stage<'_>,
    built: BuildOutcome,
    explain_rebuild: bool,
    github: &GithubEnv,
    reports: &mut BTreeMap<String, TargetReport>,
) -> Vec<(String, Error)> {
    let mut failures = Vec::new();
    for (p, result) in built.results {
        github.log_group(&p.target.name, &stage.cache.log_path(&p.target.name, &p.key));
        if explain_rebuild {
            build::explain_rebuild(&p, stage.cache, &built.work, &built.cargo_target, stage.reporter);
        }
        let was_built = result.is_ok();
        match result.and_then(|times| Ok((stage.restore_built(&p)?, times))) {
            Ok(((record, took, _), times)) => {
                let mut r = stage.report(&p, Status::Built, Some(&record), took, None);
                r.durations_ms.build = times.build.as_millis() as u64;
                r.durations_ms.pack = times.pack.as_millis() as u64;
                reports.insert(p.target.name.clone(), r);
            }
            Err(err) => {
                if was_built {
                    stage.reporter.done(&p.target.name, Outcome::Failed, "reading back the stored entry");
                }
                let r = stage.report(&p, Status::Failed, None, Duration::ZERO, Some(err.to_string()));
                reports.insert(p.target.name.clone(), r);
                failures.push((p.target.name.clone(), err));
            }
        }
    }
    failures
}

fn manifest(planned: &Planned, targets: BTreeMap<String, TargetReport>) -> Manifest {
    Manifest {
        tbuild: env!("CARGO_PKG_VERSION").into(),
        sha: planned.loaded.tree.provenance(),
        repo: planned.loaded.repo_url.clone(),
        recipe: planned.recipe_source.to_string(),
        targets,
    }
}

/// What `core` writes besides `--out`: the step outputs and summary, `--timings`, `--json`.
fn finish_outputs(
    run: &Run<'_>,
    builds: &Builds<'_>,
    github: &GithubEnv,
    manifest: &Manifest,
    planned: &Planned,
    reporter: &Reporter,
) -> Result<(), Error> {
    github.write_outputs(&github::run_outputs(manifest))?;
    github.write_summary(&github::run_summary("core", manifest))?;
    if let Some(path) = builds.timings {
        let title = format!("{} ({})", manifest.sha, planned.loaded.repo_url);
        crate::tools::timings::write(path, &title, reporter.timeline())?;
    }
    print_manifest(run.json, manifest);
    Ok(())
}

fn print_manifest(json: bool, manifest: &Manifest) {
    if json {
        println!("{}", serde_json::to_string_pretty(manifest).expect("manifests serialise"));
    }
}

/// The run's last line, and its error: the one failure, or all of them named.
fn report_core(
    manifest: &Manifest,
    mut failures: Vec<(String, Error)>,
    took: Duration,
    out: &Path,
    reporter: &Reporter,
) -> Result<(), Error> {
    let count = |status| manifest.targets.values().filter(|t| t.status == status).count();
    reporter.summary(&format!(
        "{}: {} restored, {} built, {} failed in {}; artifacts in {}",
        plural(manifest.targets.len(), "target"),
        count(Status::Hit),
        count(Status::Built),
        failures.len(),
        human_duration(took),
        out.display()
    ));
    match failures.len() {
        0 => Ok(()),
        1 => Err(failures.pop().expect("one").1),
        _ => {
            for (_, err) in &failures {
                eprintln!("{} {err}", crate::report::Palette::for_stderr().error());
            }
            let total = manifest.targets.len();
            Err(Error::TargetsFailed { failed: failures.into_iter().map(|(name, _)| name).collect(), total })
        }
    }
}

/// `1 target`, `3 targets`.
pub fn plural(n: usize, noun: &str) -> String {
    if n == 1 { format!("1 {noun}") } else { format!("{n} {noun}s") }
}
