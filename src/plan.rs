//! The plan stage: from a tree and a recipe to each target's resolved recipe, input set and
//! key. Nothing here builds, restores or needs a checkout.

use std::collections::BTreeMap;
use std::path::Path;

use crate::cache::{BlobDigestMemo, LocalCache};
use crate::error::Error;
use crate::key::{KeyInput, derive_key, select_inputs};
use crate::recipe::WorkspaceGraph;
use crate::recipe::lock_slice::{SliceMemo, WorkspaceFiles};
use crate::recipe::{Found, Recipe, RecipeSource, Target, builtin_recipe, find_recipe, workspace_graph};
use crate::source::Tree;
use crate::toolchain;
use crate::toolchain_memo::ToolMemo;

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
