//! tbuild: turns a tasker-core commit into its artifacts (Rust binaries, Ruby extension,
//! Python wheel, TypeScript worker), restoring each from a content-addressed cache when its
//! inputs were built before.
//!
//! The pipeline runs one way, each stage taking the typed output of the one before:
//! [`source`] (a tree from a commit or a dir) -> [`plan`] ([`recipe`], crate closures,
//! [`key`]s) -> restore from the [`cache`] or [`build`] and store -> [`publish`] (the artifact
//! layout and `manifest.json`) -> [`report`].

pub mod build;
pub mod cache;
pub mod cli;
pub mod commands;
pub mod error;
pub mod in_place;
pub mod key;
pub mod plan;
pub mod publish;
pub mod recipe;
pub mod report;
pub mod source;
pub mod toolchain;

use std::sync::Arc;

pub use error::{Error, exit};

/// Runs a parsed command line.
pub fn run(cli: cli::Cli) -> Result<(), Error> {
    let reporter = Arc::new(report::Reporter::new(cli.quiet));
    let cache_dir = cli.cache_dir.clone().unwrap_or_else(cache::default_cache_dir);
    let cache = cache::LocalCache::open(&cache_dir)?;
    match &cli.command {
        cli::Command::Core(args) => commands::core::run(args, &cache, reporter),
        cli::Command::Key(args) => commands::key::run(args, &cache, &reporter, cli.verbose > 0),
        cli::Command::Recipe(args) => commands::recipe::run(args, &cache, &reporter),
    }
}
