//! The command line, in one place. Help texts read like the manual; settings that CI sets
//! once have an environment variable too.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// The public tasker-core repository, the default `--repo`.
pub const DEFAULT_REPO: &str = "https://github.com/tasker-systems/tasker-core.git";

#[derive(Debug, Parser)]
#[command(
    name = "tbuild",
    version,
    about = "Build tasker-core's artifacts once, then restore them from a content-addressed cache",
    after_help = "Exit codes: 0 ok, 1 internal error, 2 usage, 3 source (unknown or ambiguous revision, \
unreachable repository), 4 recipe (malformed tbuild.toml, unknown layout or target), 5 missing toolchain, \
6 build failed, 7 cache error, 8 output dir refused, 9 upstream check or constraint failed, \
10 registry or GitHub request failed."
)]
pub struct Cli {
    /// Cache directory (action records, archives, git mirrors, build dirs).
    #[arg(long, global = true, env = "TBUILD_CACHE_DIR", value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,

    /// Only warnings and errors on stderr.
    #[arg(long, short, global = true)]
    pub quiet: bool,

    /// More diagnostics (repeat for more); TBUILD_LOG=debug does the same.
    #[arg(long, short, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Produce every artifact of a tasker-core commit: restore each target from the cache,
    /// or build and store it, then lay them out in --out.
    Core(CoreArgs),
    /// Print each target's key and input count without building.
    Key(KeyArgs),
    /// Print the recipe tbuild would use for a commit or a checkout.
    Recipe(RecipeArgs),
    /// Compare tasker-contrib's pinned tasker-core versions with the registries.
    #[command(subcommand)]
    Upstream(UpstreamCommand),
    /// Fetch tasker-core's prebuilt artifacts from a GitHub release.
    #[command(subcommand)]
    Release(ReleaseCommand),
    /// Which CI jobs a change needs, from the paths it touches.
    Affected(AffectedArgs),
}

/// Where the source tree comes from.
#[derive(Debug, Args)]
pub struct RevArgs {
    /// Commit to use: a full SHA, a unique short SHA, a branch or a tag.
    #[arg(long, value_name = "REV")]
    pub sha: String,

    /// Repository URL or local path, mirrored under the cache dir.
    #[arg(long, env = "TBUILD_CORE_REPO", default_value = DEFAULT_REPO, value_name = "URL|PATH")]
    pub repo: String,

    /// Never touch the network: the commit must already be in the mirror.
    #[arg(long)]
    pub offline: bool,
}

#[derive(Debug, Args)]
pub struct CoreArgs {
    #[command(flatten)]
    pub rev: RevArgs,

    /// Recipe file to use instead of the repository's tbuild.toml or the built-in recipe.
    #[arg(long, value_name = "FILE")]
    pub recipe: Option<PathBuf>,

    /// Output directory: the artifact layout plus manifest.json. Replaced as a whole.
    #[arg(long, default_value = "tbuild-out", value_name = "DIR")]
    pub out: PathBuf,

    /// Only these targets (comma-separated names).
    #[arg(long, value_delimiter = ',', value_name = "A,B")]
    pub targets: Vec<String>,

    /// How many targets may build at once.
    #[arg(long, short, default_value_t = 2, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub jobs: u16,

    /// Print the run's summary (the manifest) as JSON on stdout.
    #[arg(long)]
    pub json: bool,

    #[command(flatten)]
    pub release: PreferReleaseArgs,
}

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("tree").required(true).args(["sha", "path"]))]
pub struct KeyArgs {
    /// Commit to key (see `core --sha`).
    #[arg(long, value_name = "REV")]
    pub sha: Option<String>,

    /// A checkout on disk to key as it is (files ignored by .gitignore are left out).
    #[arg(long, value_name = "DIR", conflicts_with_all = ["repo", "offline"])]
    pub path: Option<PathBuf>,

    /// Repository URL or local path (with --sha).
    #[arg(long, env = "TBUILD_CORE_REPO", default_value = DEFAULT_REPO, value_name = "URL|PATH")]
    pub repo: String,

    /// Never touch the network (with --sha).
    #[arg(long)]
    pub offline: bool,

    #[arg(long, value_name = "FILE")]
    pub recipe: Option<PathBuf>,

    /// Only these targets (comma-separated names).
    #[arg(long, value_delimiter = ',', value_name = "A,B")]
    pub targets: Vec<String>,

    /// JSON output: per target its key, input count and (with -v) inputs.
    #[arg(long)]
    pub json: bool,
}

pub type RecipeArgs = KeyArgs;

#[derive(Debug, Subcommand)]
pub enum UpstreamCommand {
    /// How far each pinned package is behind its registry's latest stable release.
    #[command(after_help = "Exit codes: 0 ok, 2 bad versions file, 9 a package at or above --fail-on, \
10 a registry lookup failed (every package is still reported).")]
    Check(UpstreamCheckArgs),
    /// Whether the contrib packages' declared constraints admit the pinned and latest versions.
    #[command(after_help = "Exit codes: 0 every constraint admits its pinned version, 2 bad versions file or \
manifest, 9 a constraint refuses its pinned version.")]
    Constraints(UpstreamConstraintsArgs),
}

/// Registry access shared by the upstream commands.
#[derive(Debug, Args)]
pub struct RegistryArgs {
    /// Base URL of a registry, for a mirror or a test server: crates=URL (the sparse index),
    /// pypi=URL, rubygems=URL, npm=URL. Repeatable.
    #[arg(long = "registry-url", value_name = "KIND=URL")]
    pub registry_urls: Vec<String>,

    /// Seconds before one request is given up.
    #[arg(long, default_value_t = 20, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout: u64,

    /// Retries of a timed-out request, a network error, HTTP 429 or 5xx (backoff 0.25 s, doubling).
    #[arg(long, default_value_t = 2, value_name = "N")]
    pub retries: u32,

    /// Requests in flight at once.
    #[arg(long, default_value_t = 8, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub concurrency: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CheckFormat {
    Table,
    Json,
    Markdown,
    Github,
}

#[derive(Debug, Args)]
pub struct UpstreamCheckArgs {
    /// The pins: `{"rust": {"tasker-worker": "0.1.3"}, "python": {...}, ...}`.
    #[arg(long, default_value = crate::upstream::DEFAULT_VERSIONS_FILE, value_name = "FILE")]
    pub versions: std::path::PathBuf,

    #[command(flatten)]
    pub registry: RegistryArgs,

    /// table, json, markdown (the tracking issue's body) or github (GITHUB_OUTPUT outputs,
    /// GITHUB_STEP_SUMMARY, annotations).
    #[arg(long, value_enum, default_value = "table")]
    pub format: CheckFormat,

    /// Exit 9 when a package's severity is at least this one.
    #[arg(long, value_enum, value_name = "SEVERITY")]
    pub fail_on: Option<crate::upstream::Severity>,

    /// Rewrite the pins that are behind to their latest stable version (other keys kept).
    #[arg(long)]
    pub update: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TableOrJson {
    Table,
    Json,
}

#[derive(Debug, Args)]
pub struct UpstreamConstraintsArgs {
    /// The contrib checkout to scan (gemspecs, Gemfiles, pyproject.toml, package.json, Cargo.toml).
    #[arg(default_value = ".", value_name = "DIR")]
    pub dir: std::path::PathBuf,

    /// The pins (default: DIR/.github/upstream-versions.json).
    #[arg(long, value_name = "FILE")]
    pub versions: Option<std::path::PathBuf>,

    #[command(flatten)]
    pub registry: RegistryArgs,

    /// Check against the pins only; do not ask the registries for the latest versions.
    #[arg(long)]
    pub offline: bool,

    #[arg(long, value_enum, default_value = "table")]
    pub format: TableOrJson,
}

#[derive(Debug, Subcommand)]
pub enum ReleaseCommand {
    /// Download a release's assets, verify them against its checksum file and lay them out
    /// like `tbuild core --out`.
    #[command(after_help = "Exit codes: 0 ok, 8 --out refused, 10 release not found, API error, \
no asset matched or checksum mismatch (nothing is written).")]
    Download(ReleaseDownloadArgs),
}

/// Where releases come from.
#[derive(Debug, Args, Clone)]
pub struct GithubArgs {
    /// GitHub API base URL (GitHub Enterprise: https://HOST/api/v3). The token is GITHUB_TOKEN.
    #[arg(long, env = "GITHUB_API_URL", default_value = "https://api.github.com", value_name = "URL")]
    pub api_url: String,
}

#[derive(Debug, Args)]
pub struct ReleaseDownloadArgs {
    /// Release tag, e.g. nightly.
    #[arg(long, value_name = "TAG")]
    pub tag: String,

    /// Repository that publishes the release.
    #[arg(long, default_value = "tasker-systems/tasker-core", value_name = "OWNER/NAME")]
    pub repo: String,

    /// Output directory, laid out like `tbuild core --out`. Replaced as a whole.
    #[arg(long, default_value = "tbuild-out", value_name = "DIR")]
    pub out: std::path::PathBuf,

    /// Only assets whose name matches one of these globs (default: every asset but checksum files).
    #[arg(long, value_name = "GLOB")]
    pub pattern: Vec<String>,

    #[command(flatten)]
    pub github: GithubArgs,

    /// Print the manifest as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

/// `tbuild core --prefer-release`: use a release built from the same commit instead of building.
#[derive(Debug, Args)]
pub struct PreferReleaseArgs {
    /// Use this release's assets when it was built from --sha; otherwise restore or build as usual.
    #[arg(long, value_name = "TAG")]
    pub prefer_release: Option<String>,

    /// The repository of --prefer-release (default: OWNER/NAME of a github.com --repo).
    #[arg(long, value_name = "OWNER/NAME", requires = "prefer_release")]
    pub release_repo: Option<String>,

    #[command(flatten)]
    pub github: GithubArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AffectedFormat {
    Json,
    Github,
}

#[derive(Debug, Args)]
#[command(after_help = "Exit codes: 0 ok, 2 bad rule file, 3 unknown revision or not a repository.")]
pub struct AffectedArgs {
    /// The change's base (the target branch): jobs are chosen from the diff between the merge
    /// base of --base and --head, and --head.
    #[arg(long, value_name = "REF")]
    pub base: String,

    #[arg(long, default_value = "HEAD", value_name = "REF")]
    pub head: String,

    /// Rule file (TOML, see the README); default: the design doc's table.
    #[arg(long, value_name = "FILE")]
    pub rules: Option<std::path::PathBuf>,

    /// The repository (a work tree or a bare repository).
    #[arg(long, default_value = ".", value_name = "PATH")]
    pub repo: std::path::PathBuf,

    /// json (on stdout) or github (`job=true|false` lines appended to $GITHUB_OUTPUT).
    #[arg(long, value_enum, default_value = "json")]
    pub format: AffectedFormat,
}
