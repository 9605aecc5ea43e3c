//! The plan stage: from a tree and a recipe to each target's resolved recipe, input set and
//! key. Nothing here builds, restores or needs a checkout.

use std::collections::BTreeMap;

use crate::cache::{BlobDigestMemo, LocalCache};
use crate::error::Error;
use crate::key::{KeyInput, derive_key, select_inputs};
use crate::recipe::{Recipe, Target, workspace_graph};
use crate::source::Tree;
use crate::toolchain;

/// A target ready to be looked up: its resolved recipe and its key.
#[derive(Debug, Clone)]
pub struct PlannedTarget {
    pub target: Target,
    pub key: String,
    pub inputs: Vec<KeyInput>,
    pub toolchain: String,
}

/// Plans every target of `recipe` over `tree`. The toolchains of all targets are probed
/// first, so a missing tool is reported before anything else happens.
pub fn plan(
    tree: &Tree,
    recipe: &Recipe,
    cache: Option<&LocalCache>,
    memo: &mut BlobDigestMemo,
) -> Result<Vec<PlannedTarget>, Error> {
    let resolved: Vec<Target> = recipe.targets.iter().map(|t| t.resolved(recipe)).collect();
    let fingerprints = toolchain::probe(&resolved)?;
    let graph =
        if resolved.iter().any(|t| !t.packages.is_empty()) { Some(workspace_graph(tree, memo, cache)?) } else { None };
    let mut planned = Vec::with_capacity(resolved.len());
    for target in resolved {
        let inputs = select_inputs(tree.entries(), graph.as_ref(), recipe, &target)?;
        let key_env: Vec<(String, Option<String>)> = target
            .key_env(recipe)
            .into_iter()
            .map(|name| {
                let value = std::env::var(&name).ok();
                (name, value)
            })
            .collect();
        let toolchain = toolchain::target_fingerprint(&target, &fingerprints);
        let key = derive_key(tree, &inputs, &target, &toolchain, &key_env, memo)?;
        planned.push(PlannedTarget { target, key: key.key, inputs: key.inputs, toolchain });
    }
    Ok(planned)
}

/// Per-target summary for `tbuild key`.
pub fn summary(planned: &[PlannedTarget]) -> BTreeMap<String, (String, usize)> {
    planned.iter().map(|p| (p.target.name.clone(), (p.key.clone(), p.inputs.len()))).collect()
}
