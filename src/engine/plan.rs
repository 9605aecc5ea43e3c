//! The plan stage: from a tree and a recipe to each target's resolved recipe, input set and
//! key. Nothing here builds, restores or needs a checkout.
//!
//! [`load`] is the way in for every command that needs a planned tree: it reads the tree
//! ([`super::source`]), finds the recipe, keeps the asked-for targets and keys them, loading
//! and saving the blob digest memo around it.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use crate::cache::{BlobDigestMemo, LocalCache};
use crate::error::Error;
use crate::key::{KeyInput, derive_key, select_inputs};
use crate::recipe::WorkspaceGraph;
use crate::recipe::lock_slice::{SliceMemo, WorkspaceFiles};
use crate::recipe::{Found, Recipe, RecipeSource, Target, builtin_recipe, find_recipe, workspace_graph};
use crate::source::Tree;
use crate::toolchain;
use crate::toolchain_memo::ToolMemo;

use super::source::{self, LoadedTree, Rev};
use crate::report::Reporter;

/// A target ready to be looked up: its resolved recipe and its key.
#[derive(Debug, Clone)]
pub struct PlannedTarget {
    pub target: Target,
    pub key: String,
    pub inputs: Vec<KeyInput>,
    pub toolchain: String,
    /// The values of the variables that fed the key (`None`: unset), sorted by name.
    pub key_env: Vec<(String, Option<String>)>,
}

/// A tree planned for a run: what every command that looks keys up starts from.
pub struct Planned {
    pub loaded: LoadedTree,
    /// The recipe with only the selected targets.
    pub recipe: Recipe,
    pub recipe_source: RecipeSource,
    pub targets: Vec<PlannedTarget>,
    /// Milliseconds from the tree read to the keys (recipe, closures, digests, keys).
    pub key_ms: u64,
}

/// Reads `rev`'s tree, finds its recipe (`recipe_file` when given), keeps `targets` (all when
/// empty) and keys them. `on_recipe` sees the tree and the selected recipe before the keys are
/// computed, which is where a run reports its targets.
pub fn load(
    cache: &LocalCache,
    rev: Rev<'_>,
    recipe_file: Option<&Path>,
    targets: &[String],
    reporter: &Reporter,
    on_recipe: impl FnOnce(&Tree, &Recipe, &RecipeSource),
) -> Result<Planned, Error> {
    let loaded = source::load(cache, rev, reporter)?;
    let started = Instant::now();
    let mut memo = BlobDigestMemo::load(&cache.memo_path())?;
    let (recipe, recipe_source, graph) = recipe_and_workspace(&loaded.tree, recipe_file, Some(cache), &mut memo)?;
    let recipe = recipe.select(targets)?;
    on_recipe(&loaded.tree, &recipe, &recipe_source);
    let planned = plan(&loaded.tree, &recipe, graph.as_ref(), &mut memo, cache)?;
    memo.save()?;
    let key_ms = started.elapsed().as_millis() as u64;
    Ok(Planned { loaded, recipe, recipe_source, targets: planned, key_ms })
}

/// `rev`'s tree and its recipe with only `targets`, unplanned (for `tbuild recipe`).
pub fn load_recipe(
    cache: &LocalCache,
    rev: Rev<'_>,
    recipe_file: Option<&Path>,
    targets: &[String],
    reporter: &Reporter,
) -> Result<(LoadedTree, Recipe, RecipeSource), Error> {
    let loaded = source::load(cache, rev, reporter)?;
    let mut memo = BlobDigestMemo::load(&cache.memo_path())?;
    let (recipe, recipe_source, _) = recipe_and_workspace(&loaded.tree, recipe_file, Some(cache), &mut memo)?;
    memo.save()?;
    let recipe = recipe.select(targets)?;
    Ok((loaded, recipe, recipe_source))
}

/// The recipe for `tree` (see [`find_recipe`]) and, when it needs one, the tree's cargo
/// workspace graph (memoised in `cache`). Layout detection comes first, so a tree that is no
/// tasker-core gets that error rather than a cargo one.
pub fn recipe_and_workspace(
    tree: &Tree,
    recipe_file: Option<&Path>,
    cache: Option<&LocalCache>,
    memo: &mut BlobDigestMemo,
) -> Result<(Recipe, RecipeSource, Option<WorkspaceGraph>), Error> {
    match find_recipe(tree, recipe_file)? {
        Found::Recipe(recipe, source) => {
            let needs_graph = recipe.targets.iter().any(|t| !t.packages.is_empty());
            let graph = if needs_graph { Some(workspace_graph(tree, memo, cache)?) } else { None };
            Ok((recipe, source, graph))
        }
        Found::BuiltIn(layout) => {
            let graph = workspace_graph(tree, memo, cache)?;
            Ok((builtin_recipe(layout, &graph, tree)?, RecipeSource::BuiltIn(layout), Some(graph)))
        }
    }
}

/// Plans every target of `recipe` over `tree`. The toolchains of all targets are probed
/// first (or taken from the cache's toolchain memo), so a missing tool is reported before
/// anything else happens.
pub fn plan(
    tree: &Tree,
    recipe: &Recipe,
    graph: Option<&WorkspaceGraph>,
    memo: &mut BlobDigestMemo,
    cache: &LocalCache,
) -> Result<Vec<PlannedTarget>, Error> {
    let resolved: Vec<Target> = recipe.targets.iter().map(|t| t.resolved(recipe)).collect();
    let fingerprints = toolchain::probe(&resolved, &mut ToolMemo::open(cache))?;
    plan_with(tree, recipe, graph, memo, &fingerprints, &mut SliceMemo::default())
}

/// [`plan`] with toolchain fingerprints already probed (or, for comparing keys across
/// commits, deliberately left empty: the toolchain is the same for every commit of a run),
/// and the run's lock-slice memo (one per run: many commits share their lock).
pub fn plan_with(
    tree: &Tree,
    recipe: &Recipe,
    graph: Option<&WorkspaceGraph>,
    memo: &mut BlobDigestMemo,
    fingerprints: &BTreeMap<String, String>,
    slice_memo: &mut SliceMemo,
) -> Result<Vec<PlannedTarget>, Error> {
    let resolved: Vec<Target> = recipe.targets.iter().map(|t| t.resolved(recipe)).collect();
    let selected = resolved
        .iter()
        .map(|target| select_inputs(tree.entries(), graph, recipe, target))
        .collect::<Result<Vec<_>, _>>()?;
    tree.digest_ahead(selected.iter().flatten(), memo)?;
    // Cargo.lock and the root manifest are parsed once per tree, sliced per target.
    let mut workspace_files = match graph {
        Some(_) => Some(WorkspaceFiles::read(tree, slice_memo)?),
        None => None,
    };
    let mut planned = Vec::with_capacity(resolved.len());
    for (target, inputs) in resolved.into_iter().zip(selected) {
        let key_env: Vec<(String, Option<String>)> = target
            .key_env(recipe)
            .into_iter()
            .map(|name| {
                let value = std::env::var(&name).ok();
                (name, value)
            })
            .collect();
        let toolchain = toolchain::target_fingerprint(&target, fingerprints);
        let slices = match (graph, &mut workspace_files) {
            (Some(graph), Some(files)) => files.target_slices(tree, graph, &target, slice_memo)?,
            _ => BTreeMap::new(),
        };
        let key = derive_key(tree, &inputs, &target, &toolchain, &key_env, &slices, memo)?;
        planned.push(PlannedTarget { target, key: key.key, inputs: key.inputs, toolchain, key_env });
    }
    Ok(planned)
}

/// Per-target summary for `tbuild key`.
pub fn summary(planned: &[PlannedTarget]) -> BTreeMap<String, (String, usize)> {
    planned.iter().map(|p| (p.target.name.clone(), (p.key.clone(), p.inputs.len()))).collect()
}
