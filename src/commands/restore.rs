//! `tbuild restore`: the CI restore step. The same lookups as `tbuild core` (its [`Stage`]),
//! and nothing else: no checkout, no work dir lock, no build.
//!
//! On a partial hit the hits are published into `--out` and the manifest marks each missing
//! target `miss` (exit 0, `cache-hit=false`), so a job can use what is there and build the
//! rest. With `--fail-on-cache-miss` any miss leaves `--out` exactly as it was and exits 9:
//! a job that must not build gets all of its targets or none.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::core::{Stage, plural};
use super::load_tree;
use crate::cache::remote::TieredStore;
use crate::cache::{BlobDigestMemo, LocalCache};
use crate::cli::RestoreArgs;
use crate::error::Error;
use crate::github::{GithubEnv, run_outputs, run_summary};
use crate::plan::{plan, recipe_and_workspace};
use crate::publish::{Manifest, Staging, Status, TargetReport};
use crate::report::{Outcome, Phase, Reporter, human_duration};

pub fn run(args: &RestoreArgs, cache: &LocalCache, reporter: Arc<Reporter>) -> Result<(), Error> {
    let started = Instant::now();
    let store =
        TieredStore::open(cache, &args.remote, args.rev.repo.offline, reporter.clone()).map_err(Error::Usage)?;
    store.set_max_entry_size(args.max_entry_size);
    let reporter = &*reporter;
    let github = GithubEnv::from_env();
    // Refuse a bad --out before any work.
    super::check_out_outside_cache(&args.out, cache)?;
    let staging = Staging::new(&args.out)?;
    let loaded = load_tree(cache, &args.rev, reporter)?;
    let sha = loaded.tree.provenance();
    let key_started = Instant::now();
    let mut memo = BlobDigestMemo::load(&cache.memo_path())?;
    let (recipe, recipe_source, graph) =
        recipe_and_workspace(&loaded.tree, args.recipe.as_deref(), Some(cache), &mut memo)?;
    let recipe = recipe.select(&args.targets)?;
    for target in &recipe.targets {
        reporter.phase(&target.name, Phase::Hash);
    }
    let planned = plan(&loaded.tree, &recipe, graph.as_ref(), &mut memo, cache)?;
    memo.save()?;
    let key_ms = key_started.elapsed().as_millis() as u64;

    let stage = Stage {
        cache,
        store: &store,
        staging: &staging,
        reporter,
        key_ms,
        link_mode: args.link_mode,
        max_entry_size: args.max_entry_size,
    };
    let mut reports: BTreeMap<String, TargetReport> = BTreeMap::new();
    let mut missed = Vec::new();
    for p in &planned {
        if !stage.restore_hit(p, &mut reports)? {
            reporter.done(&p.target.name, Outcome::Missing, "");
            let mut report = stage.report(p, Status::Miss, None, Duration::ZERO, None);
            report.source = "none".into();
            reports.insert(p.target.name.clone(), report);
            missed.push(p.target.name.clone());
        }
    }
    let manifest = Manifest {
        tbuild: env!("CARGO_PKG_VERSION").into(),
        sha: sha.clone(),
        repo: loaded.repo_url.clone(),
        recipe: recipe_source.to_string(),
        targets: reports,
    };

    if !missed.is_empty() && args.fail_on_cache_miss {
        // The outputs still tell later steps what happened; `staging` is dropped unpublished.
        github.write_outputs(&run_outputs(&manifest))?;
        github.write_summary(&run_summary("restore", &manifest))?;
        return Err(Error::CacheMiss { missed, total: planned.len() });
    }
    staging.publish(&manifest)?;
    if let Some(remote) = store.finish()? {
        reporter.info(&remote.to_string());
    }
    github.write_outputs(&run_outputs(&manifest))?;
    github.write_summary(&run_summary("restore", &manifest))?;
    if args.format.is_json() {
        println!("{}", serde_json::to_string_pretty(&manifest).expect("manifests serialise"));
    }
    reporter.summary(&format!(
        "{}: {} restored, {} not in the cache in {}; artifacts in {}",
        plural(planned.len(), "target"),
        planned.len() - missed.len(),
        missed.len(),
        human_duration(started.elapsed()),
        args.out.display()
    ));
    Ok(())
}
