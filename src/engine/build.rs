//! The build stage: the targets that missed, built in the repository's work dir (checked out
//! under its lock), at most `--jobs` at once, each stored (src/engine/store.rs) and reported
//! as soon as it is built, not when the last one is done.
//!
//! Warm state (src/warm) wraps the builds: a snapshot into an empty cargo target dir before,
//! sccache's environment in each build, a new snapshot after.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::plan::PlannedTarget;
use super::plural;
use super::restore::sizes;
use super::source::LoadedTree;
use super::store::store;
use crate::build::{BuildDirs, build_target, expand_env};
use crate::cache::remote::{RemoteConfig, TieredStore, Uploader};
use crate::cache::{KeyLock, LocalCache};
use crate::cli::WarmArgs;
use crate::error::Error;
use crate::report::{Outcome, Phase, Reporter, human_duration};
use crate::source::{checkout, normalise_url, repo_id};

/// Where a built target's time went.
pub struct BuildTimes {
    pub build: Duration,
    /// Waiting for another cargo's lock: not part of `build`.
    pub waited: Duration,
    pub pack: Duration,
}

pub type Built = Result<BuildTimes, Error>;

/// How the builds run: at most `jobs` at once, without network when `offline`, with warm
/// state as `warm` asks.
pub struct HowToBuild<'a> {
    pub jobs: usize,
    pub offline: bool,
    pub warm: &'a WarmArgs,
    /// `--repo`: whose work dir a `--path` tree builds in.
    pub repo: &'a str,
    /// The remote cache, which sccache shares when it can (src/warm/sccache.rs).
    pub remote: &'a RemoteConfig,
}

/// What [`build_misses`] built, in `to_build`'s order.
pub struct BuildOutcome {
    pub results: Vec<(PlannedTarget, Built)>,
    /// The work dir and cargo target dir the builds ran in (for `--explain-rebuild`).
    pub work: PathBuf,
    pub cargo_target: PathBuf,
}

/// Checks `loaded` out into its repository's work dir (held locked meanwhile) and builds
/// `to_build` there, warm state around the builds.
pub fn build_misses(
    to_build: Vec<PlannedTarget>,
    loaded: &LoadedTree,
    store: &TieredStore,
    reporter: &Arc<Reporter>,
    how: &HowToBuild<'_>,
) -> Result<BuildOutcome, Error> {
    let cache = store.local();
    let sha = loaded.tree.provenance();
    // A --path tree builds in --repo's work dir and cargo target dir, as its commits do:
    // the checkout rewrites only files whose content differs (git blob ids on both
    // sides), so a --path miss after --sha builds compiles what changed, not everything.
    let repo_dir = loaded.repo_dir.clone().unwrap_or_else(|| cache.repo_dir(&repo_id(&normalise_url(how.repo))));
    let _work_lock = KeyLock::acquire(&repo_dir.join("work.lock"), || {
        reporter.info("waiting for another tbuild using the work dir")
    })?;
    let work = repo_dir.join("work");
    let written = checkout(&loaded.tree, &work, &repo_dir)?;
    reporter.info(&format!("checked out {sha} ({} written)", plural(written, "file")));
    let tracked = Arc::new(loaded.tree.entries().keys().cloned().collect());
    let dirs = BuildDirs { work: work.clone(), cargo_target: repo_dir.join("cargo-target"), tracked };
    // Warm state (src/warm): a snapshot into an empty target dir first, sccache if it works.
    let mut warm = crate::warm::WarmState::new(how.warm, &to_build, &loaded.tree);
    if let Some(warm) = &mut warm {
        warm.before_build(store, &dirs.cargo_target, &dirs.work, &loaded.tree, reporter);
    }
    let mut wrapper = crate::warm::sccache::build_env(how.warm.sccache, how.remote, reporter);
    if how.warm.explain_rebuild {
        let (name, value) = crate::warm::rebuild::CARGO_LOG;
        wrapper.insert(name.into(), value.into());
    }
    let cargo_target = dirs.cargo_target.clone();
    let results = build_all(to_build, dirs, store, &sha, reporter, (how.jobs, how.offline, wrapper));
    if let Some(warm) = &warm {
        let any_built = results.iter().any(|(_, r)| r.is_ok());
        warm.after_build(store, cache, &cargo_target, &loaded.tree, any_built, reporter);
    }
    Ok(BuildOutcome { results, work, cargo_target })
}

/// `--explain-rebuild`: what cargo found dirty in `p`'s build, and why (src/warm/rebuild.rs).
pub fn explain_rebuild(p: &PlannedTarget, cache: &LocalCache, work: &Path, target: &Path, reporter: &Reporter) {
    let log = cache.log_path(&p.target.name, &p.key);
    let text = std::fs::read(&log).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default();
    let units = crate::warm::rebuild::dirty_units(&text, &[(target, "target/"), (work, "")]);
    for line in crate::warm::rebuild::report(&units) {
        reporter.info(&format!("{}: {line}", p.target.name));
    }
}

/// What every build task shares.
#[derive(Clone)]
struct Task {
    dirs: BuildDirs,
    cache: LocalCache,
    uploads: Uploader,
    reporter: Arc<Reporter>,
    sha: String,
    offline: bool,
    /// sccache's environment (src/warm/sccache.rs), added to each target's env.
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
    (jobs, offline, wrapper): (usize, bool, BTreeMap<String, String>),
) -> Vec<(PlannedTarget, Built)> {
    let task = Task {
        dirs,
        cache: tiers.local().clone(),
        uploads: tiers.uploader(),
        reporter: reporter.clone(),
        sha: sha.to_string(),
        offline,
        wrapper,
    };
    tiers.runtime().block_on(async {
        let permits = Arc::new(tokio::sync::Semaphore::new(jobs));
        let mut set = tokio::task::JoinSet::new();
        for (index, p) in targets.iter().cloned().enumerate() {
            let (permits, task) = (permits.clone(), task.clone());
            task.reporter.phase(&p.target.name, Phase::Queued);
            set.spawn(async move {
                let _permit = permits.acquire_owned().await.expect("semaphore open");
                (index, task.build_one(p).await)
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

impl Task {
    /// Builds, packs and stores one target, reporting its outcome.
    async fn build_one(self, p: PlannedTarget) -> Built {
        let (name, reporter) = (p.target.name.clone(), self.reporter.clone());
        reporter.phase(&name, Phase::Build);
        let result = self.build_and_store(p).await;
        match &result {
            Ok(times) => reporter.done(&name, Outcome::Built, &times.detail),
            Err(_) => reporter.done(&name, Outcome::Failed, ""),
        }
        result.map(|times| times.times)
    }

    async fn build_and_store(self, p: PlannedTarget) -> Result<DoneBuild, Error> {
        let (reporter, name) = (self.reporter.clone(), p.target.name.clone());
        let log = self.cache.log_path(&name, &p.key);
        let mut env = expand_env(&p.target.env, self.offline)?;
        if self.offline {
            // --offline means no network at all, cargo's downloads included.
            env.insert("CARGO_NET_OFFLINE".into(), "true".into());
        }
        for (name, value) in self.wrapper {
            env.entry(name).or_insert(value);
        }
        let on_cargo_lock =
            |waiting: bool| reporter.phase(&name, if waiting { Phase::CargoLock } else { Phase::Build });
        let built = build_target(&p.target, &env, &self.dirs, &log, &on_cargo_lock).await?;
        reporter.phase(&name, Phase::Pack);
        let pack_started = Instant::now();
        let (build, waited) = (built.duration, built.waited);
        let (cache, uploads, sha) = (self.cache, self.uploads, self.sha);
        let record =
            tokio::task::spawn_blocking(move || store(&p, built.files, built.duration, &cache, &uploads, &sha))
                .await
                .expect("pack task does not panic")?;
        let times = BuildTimes { build, waited, pack: pack_started.elapsed() };
        let output = record.files.iter().map(|f| f.size).sum();
        let detail = built_detail(&times, output, record.artifact_size);
        Ok(DoneBuild { times, detail })
    }
}

/// A target built and stored, and the line that reports it.
struct DoneBuild {
    times: BuildTimes,
    detail: String,
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
