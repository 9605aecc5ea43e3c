//! tbuild: turns a tasker-core commit into its artifacts (Rust binaries, Ruby extension,
//! Python wheel, TypeScript worker), restoring each from a content-addressed cache when its
//! inputs were built before.
//!
//! The pipeline runs one way, each stage taking the typed output of the one before; its
//! stages are the files of [`engine`], in order: [`engine::source`] (a tree from a commit or
//! a dir) -> [`engine::plan`] ([`recipe`], crate closures, [`key`]s) -> [`engine::restore`]
//! from the [`cache`] or [`engine::build`] (with [`build`]) and [`engine::store`] ->
//! [`engine::publish`] (the artifact layout and `manifest.json`) -> [`report`].
//!
//! [`commands`] turn arguments into one call into the engine (or a side tool of [`tools`]);
//! [`cache`] stands alone (no command-line or reporter types), as it could be its own crate.

pub mod build;
pub mod bundle;
pub mod cache;
pub mod cli;
pub mod commands;
pub mod config;
pub mod engine;
pub mod error;
pub mod fs;
pub mod http;
pub mod key;
pub mod recipe;
pub mod report;
pub mod source;
pub mod toolchain;
pub mod toolchain_memo;
pub mod tools;
pub mod units;
pub mod warm;

use std::sync::Arc;

pub use error::{Error, exit};

/// Runs a parsed command line.
pub fn run(mut cli: cli::Cli) -> Result<(), Error> {
    let reporter = Arc::new(report::Reporter::new(cli.quiet));
    // The process's one async runtime, started only by a command that needs it.
    let runtime = commands::Runtime::default();
    // Only the commands that look entries up read the config file: a broken one must not
    // stop `upstream check` or `cache ls`.
    match &mut cli.command {
        cli::Command::Core(args) => config::load()?.remote.apply(&mut args.remote),
        cli::Command::Restore(args) => config::load()?.remote.apply(&mut args.remote),
        _ => {}
    }
    // A missing --recipe file fails now, not after a fetch.
    if let Some(recipe) = cli.command.recipe_file() {
        recipe::check_recipe_file(recipe)?;
    }
    // Commands that need no cache dir do not create one.
    match &cli.command {
        cli::Command::Upstream(command) => return commands::upstream::run(command, &runtime, &reporter),
        cli::Command::Release(cli::ReleaseCommand::Download(args)) => {
            return commands::release::download(args, &runtime, &reporter);
        }
        cli::Command::Affected(args) => return commands::affected::run(args),
        cli::Command::Completions(args) => return commands::docs::completions(args.shell),
        cli::Command::Man => return commands::docs::man(),
        _ => {}
    }
    let cache_dir = cli.cache_dir.clone().or_else(cache::default_cache_dir).ok_or_else(|| {
        Error::Usage(
            "no cache dir: HOME and XDG_CACHE_HOME are not set; set TBUILD_CACHE_DIR (or pass --cache-dir DIR)".into(),
        )
    })?;
    // Absolute, because builds run cargo in other dirs with paths under the cache dir
    // (CARGO_TARGET_DIR): a relative one would point somewhere else for them.
    let cache_dir = std::path::absolute(&cache_dir)
        .map_err(|err| Error::Usage(format!("cache dir {}: {err}", cache_dir.display())))?;
    if cache_dir.exists() && !cache_dir.is_dir() {
        return Err(Error::Usage(format!(
            "cache dir {} is not a directory (a file is there): point --cache-dir or TBUILD_CACHE_DIR at a \
             directory (tbuild creates a missing one)",
            cache_dir.display()
        )));
    }
    // Held for the whole run, so `tbuild cache clean` never removes what this run uses;
    // clean itself takes it exclusively.
    let _in_use = match &cli.command {
        cli::Command::Cache { command: cli::CacheCommand::Clean { .. } } => None,
        _ => Some(cache::CacheDirLock::shared(&cache_dir, || {
            reporter.info("waiting for `tbuild cache clean` to finish")
        })?),
    };
    let cache = cache::LocalCache::open(&cache_dir)?;
    match &cli.command {
        cli::Command::Core(args) => commands::core::run(args, &cache, &runtime, reporter),
        cli::Command::Key(args) => commands::key::run(args, &cache, &reporter, cli.verbose > 0),
        cli::Command::Recipe(args) => commands::recipe::run(args, &cache, &reporter),
        cli::Command::Restore(args) => commands::restore::run(args, &cache, &runtime, reporter),
        cli::Command::Cache { command } => commands::cache::run(command, &cache, &reporter),
        cli::Command::Explain(args) => commands::explain::run(args, &cache, &reporter),
        cli::Command::Upstream(_)
        | cli::Command::Release(_)
        | cli::Command::Affected(_)
        | cli::Command::Completions(_)
        | cli::Command::Man => unreachable!("run above"),
    }
}
