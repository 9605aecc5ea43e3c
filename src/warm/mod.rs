//! Warm build state for misses on fresh machines (`core --warm-state`): before a cargo build
//! into an empty cargo target dir, restore a snapshot of an earlier build's target dir; after
//! the build, save one. See [`snapshot`] for the entries, [`prune`] for what a snapshot holds
//! and [`mtime`] for why cargo finds the restored units fresh on another machine; [`rebuild`]
//! lists what cargo rebuilt anyway, and why (`--explain-rebuild`).
//!
//! Warm state never fails a build: a snapshot that cannot be restored or saved is a warning,
//! and the build runs as it would have without one.

pub mod mtime;
pub mod prune;
pub mod rebuild;
pub mod sccache;
pub mod snapshot;

use std::collections::BTreeSet;
use std::path::Path;

use crate::cache::{ArtifactStore, LocalCache};
use crate::cli::WarmArgs;
use crate::engine::plan::PlannedTarget;
use crate::report::{Reporter, human_bytes, human_duration};
use crate::source::Tree;
use snapshot::{Restored, Saved, SnapshotKeys};

/// Warm state for one run's cargo builds.
pub struct WarmState {
    keys: SnapshotKeys,
    toolchain: String,
    max_size: u64,
    /// Restored under the exact key: saving again would store what is there.
    restored_exact: bool,
    mark: Option<prune::Mark>,
    /// The work dir of the build, recorded in a snapshot (see `snapshot::save`).
    work: std::path::PathBuf,
}

impl WarmState {
    /// `None` unless `--warm-state` is on and some target to build compiles Rust.
    pub fn new(args: &WarmArgs, to_build: &[PlannedTarget], tree: &Tree) -> Option<WarmState> {
        if !args.warm_state {
            return None;
        }
        let rust: Vec<&PlannedTarget> = to_build.iter().filter(|p| p.toolchain.contains("rustc: ")).collect();
        let first = rust.first()?;
        // Only the Rust tools decide what is in a target dir, not ruby or bun.
        let toolchain: Vec<&str> = first
            .toolchain
            .lines()
            .flat_map(|l| l.split(", "))
            .filter(|l| l.starts_with("cargo: ") || l.starts_with("rustc: "))
            .collect();
        let toolchain = toolchain.join("\n");
        let profiles: BTreeSet<&str> = rust.iter().map(|p| p.target.profile.dir()).collect();
        let profiles = profiles.into_iter().collect::<Vec<_>>().join(",");
        let triple = std::env::var("CARGO_BUILD_TARGET")
            .unwrap_or_else(|_| format!("{}-{}", std::env::consts::ARCH, std::env::consts::OS));
        let keep = prune::WhatToKeep { incremental: args.warm_state_incremental };
        let lock = tree.read("Cargo.lock").map(|b| blake3::hash(&b).to_hex().to_string()).unwrap_or_default();
        Some(WarmState {
            keys: SnapshotKeys::new(&toolchain, &triple, &profiles, &lock, crate::cache::now_secs() / 86_400, keep),
            toolchain,
            max_size: args.warm_state_max_size,
            restored_exact: false,
            mark: None,
            work: std::path::PathBuf::new(),
        })
    }

    /// After the checkout, before the builds: restores a snapshot into an empty target dir,
    /// then marks the target dir's fingerprints (see [`prune`]).
    pub fn before_build(
        &mut self,
        store: &dyn ArtifactStore,
        target: &Path,
        work: &Path,
        tree: &Tree,
        reporter: &Reporter,
    ) {
        self.work = work.to_path_buf();
        let empty = std::fs::read_dir(target).map_or(true, |mut d| d.next().is_none());
        if empty {
            let sources = mtime::source_ids(tree);
            let mut on_corrupt = |c: crate::cache::CorruptEntry| {
                reporter.warn(&format!("warm-state snapshot is corrupt ({}: {}); dropped", c.path.display(), c.reason));
            };
            match snapshot::restore(store, &self.keys, target, work, &sources, &mut on_corrupt) {
                Ok(Some(restored)) => {
                    self.restored_exact = restored.exact;
                    reporter.info(&restored_message(&restored));
                }
                Ok(None) => reporter.info("warm state: no snapshot for this toolchain yet; building cold"),
                Err(err) => {
                    reporter.warn(&format!("warm state: snapshot not restored ({err}); building cold"));
                    let _ = std::fs::remove_dir_all(target);
                    if matches!(err, crate::cache::CacheError::CorruptArchive { .. }) {
                        for key in std::iter::once(&self.keys.exact).chain(&self.keys.latest) {
                            store.invalidate(key, None);
                        }
                    }
                }
            }
        }
        self.mark = Some(prune::mark(target));
    }

    /// After the builds: saves a snapshot of `target`, unless nothing Rust was built or the
    /// local cache holds one under the exact key already (restored from the remote, or
    /// saved by an earlier run here): like `actions/cache`, a key is saved once, so a warm
    /// machine does not pack its target dir after every miss.
    pub fn after_build(
        &self,
        store: &dyn ArtifactStore,
        local: &LocalCache,
        target: &Path,
        tree: &Tree,
        any_built: bool,
        reporter: &Reporter,
    ) {
        let Some(mark) = self.mark else { return };
        if self.restored_exact || !any_built || local.action_path(&self.keys.exact).exists() {
            return;
        }
        let context = (tree.provenance(), mtime::source_ids(tree), self.toolchain.as_str());
        let context = (context.0.as_str(), context.1, context.2, self.work.as_path());
        match snapshot::save(store, &local.tmp_dir(), &self.keys, target, mark, context, self.max_size) {
            Ok(Saved::Stored { size, files, took }) => reporter.info(&format!(
                "warm state: snapshot saved ({}, {files} files) in {}",
                human_bytes(size),
                human_duration(took)
            )),
            Ok(Saved::TooBig { size }) => reporter.warn(&format!(
                "warm state: the pruned cargo target dir is {}, over --warm-state-max-size {}; no snapshot saved",
                human_bytes(size),
                human_bytes(self.max_size)
            )),
            Err(err) => reporter.warn(&format!("warm state: snapshot not saved ({err})")),
        }
    }
}

fn restored_message(r: &Restored) -> String {
    let which = if r.exact { "exact" } else { "nearest" };
    format!(
        "warm state: restored the {which} snapshot (built from {}, {}, {} files) in {}; {} source files changed since",
        r.provenance,
        human_bytes(r.size),
        r.files,
        human_duration(r.took),
        r.changed
    )
}
