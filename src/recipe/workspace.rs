//! The cargo workspace's crate graph: which crate dirs feed a package (its path-dependency
//! closure through normal and build dependencies; dev-dependencies do not feed a build).
//!
//! The graph is parsed from the manifests where that is certain (see
//! [`super::manifest_graph`]: no process per manifest set, which over a long `key --range` was
//! most of a cold run); otherwise it comes from `cargo metadata --no-deps --offline`
//! (authoritative, no network), run on a skeleton of the tree: every `Cargo.toml` with its content plus an empty file at every
//! `*.rs` path, which is all cargo looks at to discover packages and targets. So a commit
//! needs no checkout to be keyed, and a tree on disk goes through the very same code. The
//! result is memoised in the cache by a digest of the manifests' contents and the `.rs` paths.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::RecipeError;
use crate::cache::{BlobDigestMemo, LocalCache};
use crate::source::{Entry, Tree};

/// Bump when the graph's shape or derivation changes: old memos are then ignored.
pub const GRAPH_VERSION: &str = "tbuild-graph-v1";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkspaceGraph {
    /// Workspace members by package name.
    pub packages: BTreeMap<String, WorkspacePackage>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkspacePackage {
    /// The crate dir relative to the repository root (`""` for a root package).
    pub dir: String,
    /// Dirs of the path dependencies (normal and build) of this package.
    pub path_deps: Vec<String>,
}

impl WorkspaceGraph {
    /// The crate dirs in the closure of `packages`, sorted.
    pub fn closure(&self, target: &str, packages: &[String]) -> Result<BTreeSet<String>, RecipeError> {
        let by_dir: BTreeMap<&str, &WorkspacePackage> = self.packages.values().map(|p| (p.dir.as_str(), p)).collect();
        let mut dirs = BTreeSet::new();
        let mut pending: Vec<String> = Vec::new();
        for name in packages {
            let package = self.packages.get(name).ok_or_else(|| RecipeError::UnknownPackage {
                target: target.into(),
                package: name.clone(),
                members: self.packages.keys().cloned().collect::<Vec<_>>().join(", "),
            })?;
            pending.push(package.dir.clone());
        }
        while let Some(dir) = pending.pop() {
            if !dirs.insert(dir.clone()) {
                continue;
            }
            // A path dependency outside the workspace feeds the key with its dir only.
            if let Some(package) = by_dir.get(dir.as_str()) {
                pending.extend(package.path_deps.iter().cloned());
            }
        }
        Ok(dirs)
    }

    /// Every member's crate dir, to keep one crate's files out of an enclosing crate's inputs.
    pub fn member_dirs(&self) -> BTreeSet<String> {
        self.packages.values().map(|p| p.dir.clone()).collect()
    }
}

/// The workspace graph of `tree`, from the memo when its manifests were seen before, else
/// parsed from the manifests ([`super::manifest_graph`]), else from `cargo metadata`.
pub fn workspace_graph(
    tree: &Tree,
    memo: &mut BlobDigestMemo,
    cache: Option<&LocalCache>,
) -> Result<WorkspaceGraph, RecipeError> {
    let skeleton = Skeleton::of(tree)?;
    let digest = skeleton.digest(tree, memo)?;
    let memo_path = cache.map(|c| c.graph_path(&digest));
    if let (Some(cache), Some(path)) = (cache, &memo_path)
        && let Some(graph) = cache.get_json::<WorkspaceGraph>(path)
    {
        return Ok(graph);
    }
    let graph = match skeleton.parsed(tree)? {
        Some(graph) => graph,
        None => skeleton.cargo_metadata(tree)?,
    };
    if let (Some(cache), Some(path)) = (cache, &memo_path) {
        // A memo that cannot be written costs time next run, not correctness.
        if let Err(err) = cache.put_json(path, &graph) {
            tracing::warn!("could not memoise the crate graph: {err}");
        }
    }
    Ok(graph)
}

/// What cargo looks at to discover a workspace's packages: every `Cargo.toml` with its
/// content and the paths of the `.rs` files.
pub struct Skeleton {
    manifests: Vec<String>,
    sources: Vec<String>,
}

fn io(e: crate::source::SourceError) -> RecipeError {
    RecipeError::Workspace { message: e.to_string() }
}

impl Skeleton {
    pub fn of(tree: &Tree) -> Result<Skeleton, RecipeError> {
        let manifests: Vec<String> = tree
            .entries()
            .iter()
            .filter(|(path, entry)| {
                matches!(entry, Entry::File { .. }) && (*path == "Cargo.toml" || path.ends_with("/Cargo.toml"))
            })
            .map(|(path, _)| path.clone())
            .collect();
        if !manifests.iter().any(|p| p == "Cargo.toml") {
            return Err(RecipeError::Workspace { message: "there is no Cargo.toml at the repository root".into() });
        }
        let sources: Vec<String> = tree.entries().keys().filter(|p| p.ends_with(".rs")).cloned().collect();
        Ok(Skeleton { manifests, sources })
    }

    /// Names the manifests' contents and the `.rs` paths: the memo's key.
    pub fn digest(&self, tree: &Tree, memo: &mut BlobDigestMemo) -> Result<String, RecipeError> {
        let mut hasher = blake3::Hasher::new();
        hasher.update(GRAPH_VERSION.as_bytes());
        for path in &self.manifests {
            hasher.update(b"\0m\0").update(path.as_bytes()).update(b"\0");
            hasher.update(tree.digest(path, memo).map_err(io)?.as_bytes());
        }
        for path in &self.sources {
            hasher.update(b"\0s\0").update(path.as_bytes());
        }
        Ok(hasher.finalize().to_hex().to_string())
    }

    /// The graph parsed from the manifests; `None` when the parser is not certain.
    pub fn parsed(&self, tree: &Tree) -> Result<Option<WorkspaceGraph>, RecipeError> {
        let mut texts = BTreeMap::new();
        for path in &self.manifests {
            // Not UTF-8: cargo would refuse it, let it say so.
            let Ok(text) = String::from_utf8(tree.read(path).map_err(io)?) else { return Ok(None) };
            texts.insert(path.clone(), text);
        }
        let files: BTreeSet<String> = self.manifests.iter().chain(&self.sources).cloned().collect();
        Ok(super::manifest_graph::parse_graph(&super::manifest_graph::Manifests { texts: &texts, files: &files }))
    }

    /// The graph from `cargo metadata --no-deps --offline` on the skeleton written to a
    /// temporary dir (authoritative, no network, no checkout).
    pub fn cargo_metadata(&self, tree: &Tree) -> Result<WorkspaceGraph, RecipeError> {
        let skeleton = tempfile::tempdir().map_err(|e| RecipeError::Workspace { message: e.to_string() })?;
        let root = skeleton.path().canonicalize().map_err(|e| RecipeError::Workspace { message: e.to_string() })?;
        let write = |path: &str, bytes: &[u8]| -> Result<(), RecipeError> {
            let full = root.join(path);
            std::fs::create_dir_all(full.parent().expect("joined paths have parents"))
                .and_then(|_| std::fs::write(&full, bytes))
                .map_err(|e| RecipeError::Workspace { message: format!("writing skeleton {}: {e}", full.display()) })
        };
        for path in &self.manifests {
            write(path, &tree.read(path).map_err(io)?)?;
        }
        for path in &self.sources {
            write(path, b"")?;
        }
        graph_from_metadata(&root)
    }
}

fn graph_from_metadata(root: &Path) -> Result<WorkspaceGraph, RecipeError> {
    let metadata = cargo_metadata::MetadataCommand::new()
        .manifest_path(root.join("Cargo.toml"))
        .current_dir(root)
        .no_deps()
        .other_options(vec!["--offline".to_string()])
        .exec()
        .map_err(|e| RecipeError::Workspace { message: metadata_error(e) })?;
    let relative = |dir: &Path| -> String {
        dir.strip_prefix(root)
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_else(|_| dir.to_string_lossy().into_owned())
    };
    let mut packages = BTreeMap::new();
    for package in &metadata.packages {
        let dir = relative(package.manifest_path.parent().expect("manifests live in a dir").as_std_path());
        let mut path_deps: Vec<String> = package
            .dependencies
            .iter()
            .filter(|d| d.kind != cargo_metadata::DependencyKind::Development)
            .filter_map(|d| d.path.as_ref().map(|p| relative(p.as_std_path())))
            .collect();
        path_deps.sort();
        path_deps.dedup();
        packages.insert(package.name.to_string(), WorkspacePackage { dir, path_deps });
    }
    Ok(WorkspaceGraph { packages })
}

fn metadata_error(err: cargo_metadata::Error) -> String {
    match err {
        cargo_metadata::Error::CargoMetadata { stderr } => stderr.trim().to_string(),
        cargo_metadata::Error::Io(e) if e.kind() == std::io::ErrorKind::NotFound => "cargo is not on PATH".into(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph(edges: &[(&str, &str, &[&str])]) -> WorkspaceGraph {
        WorkspaceGraph {
            packages: edges
                .iter()
                .map(|(name, dir, deps)| {
                    (
                        name.to_string(),
                        WorkspacePackage {
                            dir: dir.to_string(),
                            path_deps: deps.iter().map(|d| d.to_string()).collect(),
                        },
                    )
                })
                .collect(),
        }
    }

    #[test]
    fn closure_follows_path_deps_transitively() {
        let g = graph(&[
            ("ctl", "crates/ctl", &["crates/client", "vendor/outside"]),
            ("client", "crates/client", &["crates/shared"]),
            ("shared", "crates/shared", &[]),
            ("secure", "crates/secure", &[]),
        ]);
        let dirs = g.closure("t", &["ctl".into()]).unwrap();
        assert_eq!(
            dirs.into_iter().collect::<Vec<_>>(),
            ["crates/client", "crates/ctl", "crates/shared", "vendor/outside"]
        );
        let err = g.closure("t", &["nope".into()]).unwrap_err().to_string();
        assert!(err.contains("nope") && err.contains("secure"), "{err}");
    }
}
