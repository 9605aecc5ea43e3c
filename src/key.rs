//! Cache keys: what goes into a target's key, what is kept out, and why.
//!
//! A key must change whenever the target's outputs could change, and should change for
//! nothing else: every spurious change is a rebuild (minutes), every missed one a wrong
//! artifact (worse). It is blake3 over a canonical encoding of, in this order:
//!
//! 1. `tbuild-key` = [`KEY_VERSION`]: bumped when this encoding or the input selection
//!    changes, so old entries simply stop matching.
//! 2. `target` = the target's resolved recipe as JSON (kind, commands, env, packages, bins,
//!    features, profile, globs, outputs, artifact dir): a different build is a different key.
//!    Recipe-wide `env` is merged in; it is data the build sees.
//! 3. `toolchain` = the version output of every tool the kind runs (`rustc -vV` holds the host
//!    triple and LLVM version, `cargo -V`, `ruby -v`, ...), probed or taken from the
//!    toolchain memo, which is trusted only while the executable and what selects its version
//!    are unchanged ([`crate::toolchain_memo`]).
//! 4. `env` = `NAME=value` (or `NAME` unset) for each variable the recipe's `key_env` names plus
//!    the rustc-affecting defaults ([`crate::recipe::DEFAULT_KEY_ENV`]), sorted by name.
//! 5. `file` = path, git mode (100644/100755) and blake3 of the content, or `link` = path and
//!    symlink target, for each input, sorted by path.
//!
//! Each field is written as `tag NUL length(u64 LE) bytes`, so no value can be mistaken for
//! another field. The inputs are [`select_inputs`]: the global inputs (root `Cargo.toml`,
//! `Cargo.lock`, `.cargo/**`, `rust-toolchain*`, the recipe's `global_inputs`), every file of
//! every crate dir in the path-dependency closure of the target's packages (normal and build
//! dependencies, as cargo metadata gives them), minus the crate excludes (`tests/`, `benches/`,
//! `examples/`, `*.md` by default), minus the dirs of other workspace members nested inside a
//! crate, plus the target's `inputs` globs, minus its `exclude` globs. Symlinks are inputs
//! themselves (by target) and, when they point inside the repository, what they point to is
//! added too, so `crates/tasker-shared/proto -> ../../proto` brings `proto/`.
//!
//! Two inputs enter as per-target slices rather than byte for byte, so that a dependency
//! bump elsewhere in the workspace leaves a target's key alone
//! ([`crate::recipe::lock_slice`]): `Cargo.lock` as the lock entries of the target's resolved
//! closure (from the workspace members its cargo commands build, `-p` packages included
//! because their features unify with the target's, along the lock's own edges, which cargo
//! resolves for every feature and platform; a member's edges cut to its normal and build
//! dependencies), and a virtual workspace's root `Cargo.toml` with `[workspace.dependencies]`
//! cut to the entries those members inherit (and `members`/`exclude` dropped when every
//! cargo command names its packages). Profiles, `[patch]`, `[replace]`, `workspace.package`,
//! `workspace.lints` and anything unknown stay. Of the other crate manifests, only those of
//! the closure and of the `-p` packages' closures are inputs. When a slice cannot be made with
//! certainty (an edge naming no entry, a member missing from the lock, a root that is a
//! package, a file that does not parse), the whole file enters: a wrong slice is worse than
//! none. A slice enters as the `file` field of its path with the blake3 of the slice's
//! canonical bytes as content.
//!
//! Kept out on purpose: mtimes, absolute paths (the cache dir, the checkout dir, `$HOME`), the
//! commit SHA (two commits with the same inputs share artifacts: that is the point), where
//! the cache and work dirs are, and environment variables the recipe does not declare. Content is hashed the same way from git blobs and from files on disk, so a commit
//! and a checkout of it have the same keys; git blob ids only index the digest memo.
//!
//! # Every serialised field
//!
//! In the order [`derive_key`] writes them; `key_tests.rs` checks that this table names every
//! tag the code writes and every field a [`Target`] serialises.
//!
//! | tag | bytes | where it comes from |
//! |---|---|---|
//! | `tbuild-key` | [`KEY_VERSION`] in decimal | this module |
//! | `target` | the resolved [`Target`] as JSON, fields in declaration order: `name`, `kind`, `artifact_dir`, `workdir`, `commands`, `env` (recipe-wide `env` merged in), `packages`, `bins`, `features`, `profile`, `inputs`, `exclude`, `crate_exclude`, `tools`, `output` (each `path`, `dest`) | the recipe, after [`Target::resolved`] fills in what the kind derives |
//! | `toolchain` | the version output of each tool the kind runs plus the target's `tools`, in order | probed, or the toolchain memo |
//! | `env` (one per name) | `NAME=value`, or `NAME` when unset; names sorted | the recipe's `key_env` plus [`crate::recipe::DEFAULT_KEY_ENV`] (`RUSTFLAGS`, `CARGO_ENCODED_RUSTFLAGS`, `CARGO_BUILD_RUSTFLAGS`, `CARGO_BUILD_TARGET`; not for a `command` target without packages), read from tbuild's environment |
//! | `file` (one per input) | `path NUL mode (octal) NUL blake3 hex` of the content, or of the lock slice | [`select_inputs`], sorted by path |
//! | `link` (one per input) | `path NUL symlink target` | [`select_inputs`], sorted by path |
//!
//! The recipe's `name`, `global_inputs` and `key_env` do not enter as such: the last two
//! only through the `file` and `env` fields they select.
//!
//! # Knowingly not tracked
//!
//! What a build can read outside the tree and the declared environment. Each can change an
//! artifact without changing its key; each has a way in when it matters:
//!
//! - `~/.cargo/config.toml` (and `$CARGO_HOME/config.toml`, parent dirs' `.cargo/`): only the
//!   repository's own `.cargo/**` is an input. Settings that matter belong in the
//!   repository's `.cargo/config.toml`, or in a variable named in `key_env` (cargo reads
//!   `CARGO_BUILD_RUSTFLAGS`, `CARGO_PROFILE_*`, ... from the environment too).
//! - `CC`, `CXX`, `CFLAGS`, `CXXFLAGS`, `LDFLAGS`, `AR` and other variables read by build
//!   scripts (`cc`, `pkg-config`, `bindgen`): add them to the recipe's `key_env`, e.g.
//!   `key_env = ["CC", "CFLAGS"]`.
//! - System libraries and headers (OpenSSL, glibc, libpq) and the C compiler's version: the
//!   toolchain field holds only the kind's tools. Name the compiler in the target's `tools`
//!   (`tools = ["cc"]`) so its version enters, and for libraries put an image or lock id in a
//!   variable named in `key_env` (`key_env = ["IMAGE_DIGEST"]`).
//! - The build machine itself (CPU features with `-C target-cpu=native`, the kernel): the
//!   host triple is in `rustc -vV`, nothing finer; `RUSTFLAGS` (tracked) is where
//!   `target-cpu` is set.

use std::collections::{BTreeMap, BTreeSet};

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use serde::Serialize;

use crate::cache::BlobDigestMemo;
use crate::recipe::{DEFAULT_GLOBAL_INPUTS, Recipe, RecipeError, Target, WorkspaceGraph};
use crate::source::{Entry, SourceError, Tree};

/// Version of the key derivation. Bump it whenever anything in the module doc changes, and
/// with every remote format (`cache-layout.md`). 2 came with the per-target lock slices and
/// with remote format 2, whose signatures cover the whole record, so that a tbuild signing
/// the old way never shares a key with one signing the new way (each would refuse and
/// overwrite the other's entries). `the_key_of_fixed_inputs_is_pinned` (`key_tests.rs`) pins
/// one key's hex, so an encoding change without a bump fails a test.
pub const KEY_VERSION: u32 = 2;

/// One input as it entered the key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyInput {
    pub path: String,
    pub mode: u32,
    /// blake3 hex of a file, or the target of a symlink.
    pub content: String,
}

/// A target's key and what it was derived from.
#[derive(Debug, Clone)]
pub struct TargetKey {
    pub key: String,
    pub inputs: Vec<KeyInput>,
}

/// Derives the key of `target` (already resolved) over `inputs` of `tree`.
pub fn derive_key(
    tree: &Tree,
    inputs: &BTreeSet<String>,
    target: &Target,
    toolchain: &str,
    key_env: &[(String, Option<String>)],
    slices: &BTreeMap<String, Vec<u8>>,
    memo: &mut BlobDigestMemo,
) -> Result<TargetKey, SourceError> {
    let mut hasher = KeyHasher::new();
    hasher.field("tbuild-key", KEY_VERSION.to_string().as_bytes());
    hasher.field("target", serde_json::to_string(target).expect("targets serialise").as_bytes());
    hasher.field("toolchain", toolchain.as_bytes());
    for (name, value) in key_env {
        match value {
            Some(value) => hasher.field("env", format!("{name}={value}").as_bytes()),
            None => hasher.field("env", name.as_bytes()),
        }
    }
    let mut listed = Vec::with_capacity(inputs.len());
    for path in inputs {
        let entry = &tree.entries()[path];
        let content = match entry {
            Entry::File { .. } if slices.contains_key(path) => blake3::hash(&slices[path]).to_hex().to_string(),
            Entry::File { .. } => tree.digest(path, memo)?.to_hex().to_string(),
            Entry::Symlink { target } => target.clone(),
        };
        match entry {
            Entry::File { .. } => hasher.field("file", format!("{path}\0{:o}\0{content}", entry.mode()).as_bytes()),
            Entry::Symlink { .. } => hasher.field("link", format!("{path}\0{content}").as_bytes()),
        }
        listed.push(KeyInput { path: path.clone(), mode: entry.mode(), content });
    }
    Ok(TargetKey { key: hasher.finish(), inputs: listed })
}

/// The fields are collected and hashed in one call: blake3 over thousands of tiny updates
/// costs several times more than over the same bytes at once (same digest either way).
struct KeyHasher(Vec<u8>);

impl KeyHasher {
    fn new() -> KeyHasher {
        KeyHasher(Vec::with_capacity(64 * 1024))
    }

    fn field(&mut self, tag: &str, value: &[u8]) {
        self.0.extend_from_slice(tag.as_bytes());
        self.0.push(0);
        self.0.extend_from_slice(&(value.len() as u64).to_le_bytes());
        self.0.extend_from_slice(value);
    }

    fn finish(self) -> String {
        blake3::hash(&self.0).to_hex().to_string()
    }
}

/// The input paths of `target` (resolved) in a tree with `entries`. Pure: see the module doc.
pub fn select_inputs(
    entries: &BTreeMap<String, Entry>,
    graph: Option<&WorkspaceGraph>,
    recipe: &Recipe,
    target: &Target,
) -> Result<BTreeSet<String>, RecipeError> {
    let mut selected = BTreeSet::new();
    // One set for the global inputs and the target's own: one match per path, not two.
    let globals = glob_set(
        DEFAULT_GLOBAL_INPUTS
            .iter()
            .copied()
            .chain(recipe.global_inputs.iter().map(String::as_str))
            .chain(target.inputs.iter().map(String::as_str)),
    )?;
    for path in entries.keys() {
        if globals.is_match(path) {
            selected.insert(path.clone());
        }
    }

    if !target.packages.is_empty() {
        let graph = graph.ok_or_else(|| RecipeError::Workspace {
            message: "the target names packages but the tree has no cargo workspace".into(),
        })?;
        let members = graph.member_dirs();
        let crate_exclude = glob_set(target.crate_exclude.iter().flatten().map(String::as_str))?;
        for manifest in crate::recipe::lock_slice::command_manifests(graph, target) {
            if entries.contains_key(&manifest) {
                selected.insert(manifest);
            }
        }
        for dir in graph.closure(&target.name, &target.packages)? {
            let prefix = if dir.is_empty() { String::new() } else { format!("{dir}/") };
            let nested: Vec<String> =
                members.iter().filter(|m| **m != dir && m.starts_with(&prefix)).map(|m| format!("{m}/")).collect();
            for path in entries.range(prefix.clone()..).map(|(p, _)| p).take_while(|p| p.starts_with(&prefix)) {
                let rel = &path[prefix.len()..];
                if nested.iter().any(|n| path.starts_with(n.as_str())) || crate_exclude.is_match(rel) {
                    continue;
                }
                selected.insert(path.clone());
            }
        }
    }

    follow_symlinks(entries, &mut selected);

    let exclude = glob_set(target.exclude.iter().map(String::as_str))?;
    selected.retain(|path| !exclude.is_match(path));
    Ok(selected)
}

/// Adds what selected symlinks point to, when that is inside the tree, until nothing changes.
fn follow_symlinks(entries: &BTreeMap<String, Entry>, selected: &mut BTreeSet<String>) {
    let mut pending: Vec<String> =
        selected.iter().filter(|p| matches!(entries[*p], Entry::Symlink { .. })).cloned().collect();
    let mut followed = BTreeSet::new();
    while let Some(link) = pending.pop() {
        if !followed.insert(link.clone()) {
            continue;
        }
        let Entry::Symlink { target } = &entries[&link] else { continue };
        let Some(resolved) = resolve_inside(&link, target) else {
            tracing::debug!("symlink {link} -> {target} leaves the repository; only the link itself is an input");
            continue;
        };
        let mut reached: Vec<&String> = Vec::new();
        if let Some((path, _)) = entries.get_key_value(&resolved) {
            reached.push(path);
        } else {
            let prefix = format!("{resolved}/");
            reached.extend(entries.range(prefix.clone()..).map(|(p, _)| p).take_while(|p| p.starts_with(&prefix)));
        }
        for path in reached {
            if selected.insert(path.clone()) && matches!(entries[path], Entry::Symlink { .. }) {
                pending.push(path.clone());
            }
        }
    }
}

/// The repository-relative path a symlink at `link` with `target` points to, lexically;
/// `None` when it is absolute or climbs out of the repository.
fn resolve_inside(link: &str, target: &str) -> Option<String> {
    if target.starts_with('/') {
        return None;
    }
    let mut parts: Vec<&str> = link.split('/').collect();
    parts.pop();
    for part in target.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            name => parts.push(name),
        }
    }
    Some(parts.join("/"))
}

/// Globs relative to the repository root; `*` stops at `/`, `**` crosses it.
pub fn glob_set<'a>(globs: impl IntoIterator<Item = &'a str>) -> Result<GlobSet, RecipeError> {
    let mut builder = GlobSetBuilder::new();
    for glob in globs {
        let compiled = GlobBuilder::new(glob)
            .literal_separator(true)
            .build()
            .map_err(|e| RecipeError::Glob { glob: glob.into(), message: e.kind().to_string() })?;
        builder.add(compiled);
    }
    builder.build().map_err(|e| RecipeError::Glob { glob: String::new(), message: e.to_string() })
}

#[cfg(test)]
#[path = "key_tests.rs"]
mod tests;
