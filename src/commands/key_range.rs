//! `tbuild key --range A..B [--stats]`: what a per-target cache saves on a real history.
//!
//! For each commit of the first-parent walk from B down to A (A excluded, oldest first), the
//! targets whose keys differ from its first parent's: exactly the targets a run on that
//! commit rebuilds when the parent's artifacts are cached. Each commit is keyed from the
//! mirror's object database (no checkout) through the blob-digest memo and the crate-graph
//! memo, so a commit costs a tree listing plus the digests of the blobs it changed; a tree
//! keyed before (by any run with the same recipe, targets and versions) costs one small read
//! of the range memo (`cache::RangeKeyMemo`, which says why only this command may use it).
//!
//! Toolchains are not probed: they are the same for every commit of one run, so they cannot
//! make one commit's keys differ from its parent's, and leaving them out means a history can
//! be measured on a machine without the targets' toolchains. The keys compared here are
//! therefore not the keys `tbuild core` looks up (and are not printed); only whether they
//! change is.

use std::collections::{BTreeMap, HashMap};

use git2::{Oid, Repository, Sort};
use serde::Serialize;

use crate::cache::{BlobDigestMemo, KeyLock, LocalCache, RangeKeyMemo, RangeKeys};
use crate::cli::KeyArgs;
use crate::engine::plan::{plan_with, recipe_and_workspace};
use crate::error::Error;
use crate::recipe::lock_slice::SliceMemo;
use crate::report::Reporter;
use crate::source::{Mirror, SourceError, Tree, normalise_url, repo_id};

/// One commit of the range and the targets its change rebuilds.
#[derive(Debug, Serialize)]
pub struct CommitChange {
    pub sha: String,
    /// First parent; `None` for a root commit (every target is then rebuilt).
    pub parent: Option<String>,
    pub subject: String,
    /// Targets of the commit's recipe.
    pub targets: usize,
    /// Targets whose key differs from the parent's (or that the parent did not have).
    pub changed: Vec<String>,
    #[serde(skip)]
    pub all_targets: Vec<String>,
}

/// Totals over the range.
#[derive(Debug, Serialize)]
pub struct RangeStats {
    pub commits: usize,
    /// Commits whose every key equals its parent's: a full cache hit.
    pub no_rebuild: usize,
    pub no_rebuild_share: f64,
    /// Mean over commits of (targets rebuilt / targets).
    pub mean_rebuilt_share: f64,
    /// Per target: commits that rebuild it, and that as a share of the commits having it.
    pub per_target: BTreeMap<String, TargetStats>,
}

#[derive(Debug, Serialize)]
pub struct TargetStats {
    pub rebuilt: usize,
    pub commits: usize,
    pub share: f64,
}

#[derive(Serialize)]
struct RangeReport<'a> {
    range: &'a str,
    commits: &'a [CommitChange],
    #[serde(skip_serializing_if = "Option::is_none")]
    stats: Option<&'a RangeStats>,
}

type Keys = RangeKeys;

pub fn run(args: &KeyArgs, range: &str, cache: &LocalCache, reporter: &Reporter) -> Result<(), Error> {
    let (from, to) = range
        .split_once("..")
        .filter(|(a, b)| !a.is_empty() && !b.is_empty() && !b.starts_with('.'))
        .ok_or_else(|| Error::Usage(format!("--range {range:?} is not A..B (e.g. v1.0..main)")))?;
    let url = normalise_url(&args.rev.repo.url);
    let repo_dir = cache.repo_dir(&repo_id(&url));
    let (mirror_path, from, to) = {
        let _lock = KeyLock::acquire(&repo_dir.join("mirror.lock"), || {
            reporter.info("waiting for another tbuild fetching this repository")
        })?;
        // The walk and the parents' keys need history: a shallow first fetch is deepened.
        let mirror = Mirror::open(&repo_dir.join("mirror.git"), &url)?.needing_history();
        let mut progress = reporter.fetch_progress(&url);
        // Deepening first fetches every branch and tag with history: A and B are then there.
        mirror.deepen(args.rev.repo.offline, &mut progress)?;
        let from = mirror.resolve(from, args.rev.repo.offline, &mut progress)?;
        // The first resolve fetched if anything needed fetching.
        let to = match mirror.resolve(to, true, &mut progress) {
            Ok(oid) => oid,
            Err(_) => mirror.resolve(to, args.rev.repo.offline, &mut progress)?,
        };
        mirror.deepen(args.rev.repo.offline, &mut progress)?;
        (mirror.path(), from, to)
    };
    let open =
        || Repository::open_bare(&mirror_path).map_err(|source| SourceError::Git { path: mirror_path.clone(), source });
    let repo = open()?;
    let commits =
        first_parent_walk(&repo, from, to).map_err(|source| SourceError::Git { path: mirror_path.clone(), source })?;
    if commits.is_empty() {
        return Err(Error::Usage(format!("--range {range}: no commits (is B an ancestor of A?)")));
    }
    reporter.info(&format!("keying {} commits of {range}", commits.len()));

    let mut memo = BlobDigestMemo::load(&cache.memo_path())?;
    let mut known: HashMap<Oid, Keys> = HashMap::new();
    let mut slices = SliceMemo::default();
    let range_memo = range_memo(cache, args);
    let mut keys_of = |oid: Oid, memo: &mut BlobDigestMemo| -> Result<Keys, Error> {
        if let Some(keys) = known.get(&oid) {
            return Ok(keys.clone());
        }
        let keys = keys_at(open()?, oid, args, cache, memo, &mut slices, range_memo.as_ref())?;
        known.insert(oid, keys.clone());
        Ok(keys)
    };
    let mut changes = Vec::with_capacity(commits.len());
    for (oid, parent, subject) in commits {
        let keys = keys_of(oid, &mut memo)?;
        let parent_keys = match parent {
            Some(parent) => keys_of(parent, &mut memo)?,
            None => Keys::new(),
        };
        let changed = keys.iter().filter(|(t, k)| parent_keys.get(*t) != Some(k)).map(|(t, _)| t.clone()).collect();
        changes.push(CommitChange {
            sha: oid.to_string(),
            parent: parent.map(|p| p.to_string()),
            subject,
            targets: keys.len(),
            changed,
            all_targets: keys.keys().cloned().collect(),
        });
    }
    memo.save()?;

    let stats = args.stats.then(|| stats(&changes));
    if args.format.is_json() {
        let report = RangeReport { range, commits: &changes, stats: stats.as_ref() };
        println!("{}", serde_json::to_string_pretty(&report).expect("reports serialise"));
    } else {
        print_human(&changes, stats.as_ref());
    }
    Ok(())
}

/// `git log --first-parent --reverse A..B`: (commit, first parent, subject), oldest first.
fn first_parent_walk(repo: &Repository, from: Oid, to: Oid) -> Result<Vec<(Oid, Option<Oid>, String)>, git2::Error> {
    let mut walk = repo.revwalk()?;
    walk.push(to)?;
    walk.hide(from)?;
    walk.simplify_first_parent()?;
    walk.set_sorting(Sort::TOPOLOGICAL | Sort::REVERSE)?;
    let mut commits = Vec::new();
    for oid in walk {
        let commit = repo.find_commit(oid?)?;
        let parent = commit.parent_ids().next();
        commits.push((commit.id(), parent, commit.summary().ok().flatten().unwrap_or("").to_string()));
    }
    Ok(commits)
}

/// The memo of this run's context: everything besides the tree that decides its keys. None
/// when the `--recipe` file cannot be read (keying then reports why).
fn range_memo<'c>(cache: &'c LocalCache, args: &KeyArgs) -> Option<RangeKeyMemo<'c>> {
    let recipe = match &args.recipe {
        Some(path) => std::fs::read(path).ok()?,
        None => b"(the tree's or the built-in recipe)".to_vec(),
    };
    let versions = format!(
        "tbuild {} key v{} {}",
        env!("CARGO_PKG_VERSION"),
        crate::key::KEY_VERSION,
        crate::recipe::GRAPH_VERSION
    );
    let targets = args.targets.join(",");
    Some(RangeKeyMemo::new(cache, &[versions.as_bytes(), &recipe, targets.as_bytes()]))
}

/// Target -> key of the commit `oid` (toolchains left out, see the module doc), from the
/// range memo when it knows the commit's tree.
fn keys_at(
    repo: Repository,
    oid: Oid,
    args: &KeyArgs,
    cache: &LocalCache,
    memo: &mut BlobDigestMemo,
    slices: &mut SliceMemo,
    range_memo: Option<&RangeKeyMemo>,
) -> Result<Keys, Error> {
    let tree_id = repo.find_commit(oid).map(|c| c.tree_id().to_string()).ok();
    let memo_and_tree = range_memo.zip(tree_id);
    if let Some(keys) = memo_and_tree.as_ref().and_then(|(m, t)| m.get(t)) {
        return Ok(keys);
    }
    let tree = Tree::from_commit(repo, oid)?;
    let (recipe, _, graph) = recipe_and_workspace(&tree, args.recipe.as_deref(), Some(cache), memo)?;
    let recipe = recipe.select(&args.targets)?;
    let planned = plan_with(&tree, &recipe, graph.as_ref(), memo, &BTreeMap::new(), slices)?;
    let keys: Keys = planned.iter().map(|p| (p.target.name.clone(), p.key.clone())).collect();
    if let Some((range_memo, tree_id)) = memo_and_tree {
        let env = planned.iter().flat_map(|p| p.key_env.iter().map(|(name, _)| name));
        range_memo.put(&tree_id, &keys, env)?;
    }
    Ok(keys)
}

/// Totals over `changes` (not empty).
pub fn stats(changes: &[CommitChange]) -> RangeStats {
    let commits = changes.len();
    let no_rebuild = changes.iter().filter(|c| c.changed.is_empty()).count();
    let rebuilt_share: f64 =
        changes.iter().map(|c| if c.targets == 0 { 0.0 } else { c.changed.len() as f64 / c.targets as f64 }).sum();
    // Counted over the commits having each target: targets come and go with the recipe.
    let mut per_target: BTreeMap<String, TargetStats> = BTreeMap::new();
    for change in changes {
        for name in &change.all_targets {
            let t = per_target.entry(name.clone()).or_insert(TargetStats { rebuilt: 0, commits: 0, share: 0.0 });
            t.commits += 1;
            t.rebuilt += usize::from(change.changed.contains(name));
        }
    }
    for t in per_target.values_mut() {
        t.share = t.rebuilt as f64 / t.commits as f64;
    }
    RangeStats {
        commits,
        no_rebuild,
        no_rebuild_share: no_rebuild as f64 / commits as f64,
        mean_rebuilt_share: rebuilt_share / commits as f64,
        per_target,
    }
}

fn print_human(changes: &[CommitChange], stats: Option<&RangeStats>) {
    for c in changes {
        let what = if c.changed.is_empty() { "no rebuild".to_string() } else { c.changed.join(", ") };
        println!("{}  {}/{} rebuilt  {what}  # {}", &c.sha[..12], c.changed.len(), c.targets, c.subject);
    }
    let Some(s) = stats else { return };
    println!();
    println!(
        "{} commits: {} ({:.0}%) need no rebuild; mean share of targets rebuilt {:.0}%",
        s.commits,
        s.no_rebuild,
        s.no_rebuild_share * 100.0,
        s.mean_rebuilt_share * 100.0
    );
    let width = s.per_target.keys().map(String::len).max().unwrap_or(6).max(6);
    println!("  {:width$}  rebuilt  share", "target");
    for (name, t) in &s.per_target {
        println!("  {name:width$}  {:>3}/{:<3}  {:>4.0}%", t.rebuilt, t.commits, t.share * 100.0);
    }
}
