//! The one error type the commands return, and the exit code of each kind of failure.
//! The codes are documented in the README ("Exit codes"); keep them stable.

use crate::build::BuildError;
use crate::bundle::BundleError;
use crate::cache::CacheError;
use crate::engine::publish::PublishError;
use crate::recipe::RecipeError;
use crate::source::SourceError;
use crate::toolchain::ToolchainError;
use crate::tools::affected::AffectedError;
use crate::tools::release::ReleaseError;
use crate::tools::upstream::UpstreamError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Recipe(#[from] RecipeError),
    #[error(transparent)]
    Toolchain(#[from] ToolchainError),
    #[error(transparent)]
    Build(#[from] BuildError),
    #[error("{} of {total} targets failed: {}", failed.len(), failed.join(", "))]
    TargetsFailed { failed: Vec<String>, total: usize },
    #[error(transparent)]
    Cache(#[from] CacheError),
    #[error(transparent)]
    Publish(#[from] PublishError),
    #[error("{0}")]
    Usage(String),
    #[error(
        "{} of {total} targets not in the cache: {}; --out was left as it was (run `tbuild core` to build them, or drop --fail-on-cache-miss)",
        missed.len(),
        missed.join(", ")
    )]
    CacheMiss { missed: Vec<String>, total: usize },
    #[error(transparent)]
    Github(#[from] crate::tools::github::GithubError),
    #[error(transparent)]
    Bundle(#[from] BundleError),
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    #[error(transparent)]
    Release(#[from] ReleaseError),
    #[error(transparent)]
    Affected(#[from] AffectedError),
}

/// Exit codes; 2 is also what clap uses for a command line it cannot parse.
pub mod exit {
    pub const OK: i32 = 0;
    pub const INTERNAL: i32 = 1;
    pub const USAGE: i32 = 2;
    pub const SOURCE: i32 = 3;
    pub const RECIPE: i32 = 4;
    pub const TOOLCHAIN: i32 = 5;
    pub const BUILD: i32 = 6;
    pub const CACHE: i32 = 7;
    pub const OUTPUT: i32 = 8;
    /// `restore --fail-on-cache-miss` found a target missing.
    pub const CACHE_MISS: i32 = 9;
    /// `upstream check --fail-on` reached, or a constraint refuses its pinned version.
    pub const LAG: i32 = 10;
    /// A registry or the GitHub API failed or refused (not found, timeout, checksum mismatch).
    pub const REMOTE: i32 = 11;
}

impl Error {
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Source(_) => exit::SOURCE,
            Error::Recipe(_) => exit::RECIPE,
            Error::Toolchain(_) => exit::TOOLCHAIN,
            Error::Build(_) | Error::TargetsFailed { .. } => exit::BUILD,
            Error::Cache(_) => exit::CACHE,
            Error::Publish(_) => exit::OUTPUT,
            Error::Usage(_) => exit::USAGE,
            Error::CacheMiss { .. } => exit::CACHE_MISS,
            Error::Github(_) => exit::INTERNAL,
            Error::Bundle(_) => exit::CACHE,
            Error::Upstream(e) => e.exit_code(),
            Error::Release(e) => e.exit_code(),
            Error::Affected(e) => e.exit_code(),
        }
    }
}

// The side tools' exit codes live here, next to the table, so that the tools never import
// this module (which imports their error types): the import graph has no circle.
impl AffectedError {
    pub fn exit_code(&self) -> i32 {
        match self {
            AffectedError::Git { .. } => exit::SOURCE,
            AffectedError::Rules { .. } => exit::USAGE,
            AffectedError::Output(_) => exit::INTERNAL,
        }
    }
}

impl ReleaseError {
    pub fn exit_code(&self) -> i32 {
        match self {
            ReleaseError::BadRepo { .. } | ReleaseError::BadPattern { .. } => exit::USAGE,
            ReleaseError::Publish(_) => exit::OUTPUT,
            ReleaseError::Io { .. } => exit::INTERNAL,
            _ => exit::REMOTE,
        }
    }
}

impl UpstreamError {
    pub fn exit_code(&self) -> i32 {
        match self {
            UpstreamError::VersionsFile { .. } | UpstreamError::Manifest { .. } => exit::USAGE,
            UpstreamError::Write { .. } => exit::INTERNAL,
            UpstreamError::FailOn { .. } | UpstreamError::ConstraintsRefuse { .. } => exit::LAG,
            UpstreamError::LookupsFailed { .. } => exit::REMOTE,
        }
    }
}

/// The fs layer's errors are the cache's kind (exit 7) unless a layer maps them to its own.
impl From<crate::fs::FsError> for Error {
    fn from(err: crate::fs::FsError) -> Error {
        Error::Cache(err.into())
    }
}
