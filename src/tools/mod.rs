//! Side tools: commands around the pipeline that are not stages of it. Each stands on its own
//! and reads the pipeline's types (manifests, records, keys) without being called by it,
//! except for the CI conveniences `core` writes through ([`github`], [`timings`]).
//!
//! - [`upstream`]: how far the tasker-core versions a repository pins lag their registries;
//! - [`release`]: a GitHub release's prebuilt assets instead of a build;
//! - [`affected`]: which CI jobs a change touches, by path globs;
//! - [`explain`]: why a target's key misses, against the closest stored entry;
//! - [`github`]: Actions step outputs, summaries and log groups;
//! - [`timings`]: `--timings`, a run's phases drawn per target.

pub mod affected;
pub mod explain;
pub mod github;
pub mod release;
pub mod timings;
pub mod upstream;
