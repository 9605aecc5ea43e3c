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
6 build failed, 7 cache error, 8 output dir refused, 9 cache miss (restore --fail-on-cache-miss)."
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
    /// Restore a commit's artifacts from the cache into --out, never building: the CI
    /// restore step. Writes GitHub Actions outputs and a step summary when run there.
    Restore(RestoreArgs),
    /// Work with the cache dir: move entries between machines as bundles.
    #[command(subcommand)]
    Cache(CacheCommand),
    /// Say why a target misses: compare its inputs with the closest stored entry.
    Explain(ExplainArgs),
}

#[derive(Debug, Subcommand)]
pub enum CacheCommand {
    /// Write one commit's cache entries (and with --with-source its git objects) to a bundle
    /// file that `tbuild cache import` reads on another machine.
    Export(ExportArgs),
    /// Verify a bundle whole, then add its entries (and source) to this cache.
    Import(ImportArgs),
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Commit whose targets' entries to export (see `core --sha`).
    #[arg(long, value_name = "REV")]
    pub sha: String,

    /// Repository URL or local path, mirrored under the cache dir.
    #[arg(long, env = "TBUILD_CORE_REPO", default_value = DEFAULT_REPO, value_name = "URL|PATH")]
    pub repo: String,

    /// Never touch the network: the commit must already be in the mirror.
    #[arg(long, env = "TBUILD_OFFLINE", value_parser = clap::builder::BoolishValueParser::new())]
    pub offline: bool,

    #[arg(long, value_name = "FILE")]
    pub recipe: Option<PathBuf>,

    /// Only these targets (comma-separated names); all of the recipe's by default. Every
    /// one must be in the cache.
    #[arg(long, value_delimiter = ',', value_name = "A,B")]
    pub targets: Vec<String>,

    /// Also pack the git objects of the commit, so that the importing machine can key (and
    /// build) it without ever fetching.
    #[arg(long)]
    pub with_source: bool,

    /// The bundle file to write (replaced atomically).
    #[arg(long, short, value_name = "FILE")]
    pub output: PathBuf,

    /// Print what was exported as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// A bundle written by `tbuild cache export`.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,

    /// Repository whose mirror receives the bundle's git objects; by default the one the
    /// bundle was exported from. Give the URL you will pass to `core --repo`.
    #[arg(long, value_name = "URL|PATH")]
    pub repo: Option<String>,

    /// Print what was imported as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("tree").required(true).args(["sha", "path"]))]
pub struct ExplainArgs {
    /// The target to explain.
    #[arg(value_name = "TARGET")]
    pub target: String,

    /// Commit to explain (see `core --sha`).
    #[arg(long, value_name = "REV")]
    pub sha: Option<String>,

    /// A checkout on disk, as `core --path` would build it.
    #[arg(long, value_name = "DIR")]
    pub path: Option<PathBuf>,

    /// Repository URL or local path (with --sha).
    #[arg(long, env = "TBUILD_CORE_REPO", default_value = DEFAULT_REPO, value_name = "URL|PATH")]
    pub repo: String,

    /// Never touch the network (with --sha).
    #[arg(long, env = "TBUILD_OFFLINE", value_parser = clap::builder::BoolishValueParser::new())]
    pub offline: bool,

    #[arg(long, value_name = "FILE")]
    pub recipe: Option<PathBuf>,

    /// JSON output.
    #[arg(long)]
    pub json: bool,
}

/// Where the source tree comes from.
#[derive(Debug, Args)]
pub struct RevArgs {
    /// Commit to use: a full SHA, a unique short SHA, a branch or a tag.
    #[arg(long, value_name = "REV")]
    pub sha: Option<String>,

    /// Build a checkout on disk as it is instead of a commit: uncommitted changes and
    /// untracked files that .gitignore does not cover included. Builds run in a copy under
    /// the cache dir; the checkout itself is only read.
    #[arg(long, value_name = "DIR")]
    pub path: Option<PathBuf>,

    /// Repository URL or local path, mirrored under the cache dir.
    #[arg(long, env = "TBUILD_CORE_REPO", default_value = DEFAULT_REPO, value_name = "URL|PATH")]
    pub repo: String,

    /// Never touch the network: no fetch (the commit must already be in the mirror, or come
    /// from an imported bundle), no remote cache, cargo offline.
    #[arg(long, env = "TBUILD_OFFLINE", value_parser = clap::builder::BoolishValueParser::new())]
    pub offline: bool,
}

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("tree").required(true).args(["sha", "path"]))]
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
    pub remote: RemoteArgs,
}

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("tree").required(true).args(["sha", "path"]))]
pub struct KeyArgs {
    /// Commit to key (see `core --sha`).
    #[arg(long, value_name = "REV")]
    pub sha: Option<String>,

    /// A checkout on disk to key as it is (what `git status` sees: tracked files as they are
    /// on disk plus untracked files that .gitignore does not cover). --repo is not used.
    #[arg(long, value_name = "DIR")]
    pub path: Option<PathBuf>,

    /// Repository URL or local path (with --sha).
    #[arg(long, env = "TBUILD_CORE_REPO", default_value = DEFAULT_REPO, value_name = "URL|PATH")]
    pub repo: String,

    /// Never touch the network (with --sha).
    #[arg(long, env = "TBUILD_OFFLINE", value_parser = clap::builder::BoolishValueParser::new())]
    pub offline: bool,

    #[arg(long, value_name = "FILE")]
    pub recipe: Option<PathBuf>,

    /// Only these targets (comma-separated names).
    #[arg(long, value_delimiter = ',', value_name = "A,B")]
    pub targets: Vec<String>,

    /// JSON output: per target its key, input count and (with -v) inputs (`--format json`).
    #[arg(long, conflicts_with = "format")]
    pub json: bool,

    /// How `key` prints the keys: `github` writes them as step outputs to $GITHUB_OUTPUT
    /// (`<target>-key`, and `key` for the whole set), or prints those lines when it is unset.
    #[arg(long, value_enum, default_value_t = KeyFormat::Text)]
    pub format: KeyFormat,
}

pub type RecipeArgs = KeyArgs;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum KeyFormat {
    Text,
    Json,
    Github,
}

impl KeyArgs {
    /// `--json` is kept as the short form of `--format json`.
    pub fn format(&self) -> KeyFormat {
        if self.json { KeyFormat::Json } else { self.format }
    }
}

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("tree").required(true).args(["sha", "path"]))]
#[command(after_help = "On a miss: without --fail-on-cache-miss the hits are published (the manifest marks the \
misses `miss`) and tbuild exits 0 with cache-hit=false; with it, --out is left untouched and tbuild exits 9.")]
pub struct RestoreArgs {
    #[command(flatten)]
    pub rev: RevArgs,

    #[command(flatten)]
    pub remote: RemoteArgs,

    /// Recipe file to use instead of the repository's tbuild.toml or the built-in recipe.
    #[arg(long, value_name = "FILE")]
    pub recipe: Option<PathBuf>,

    /// Output directory: the restored artifact layout plus manifest.json. Replaced as a whole.
    #[arg(long, default_value = "tbuild-out", value_name = "DIR")]
    pub out: PathBuf,

    /// Only these targets (comma-separated names).
    #[arg(long, value_delimiter = ',', value_name = "A,B")]
    pub targets: Vec<String>,

    /// Exit 9 without touching --out when any selected target is not in the cache.
    #[arg(long)]
    pub fail_on_cache_miss: bool,

    /// Print the run's summary (the manifest) as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

/// A remote cache shared by machines, under the local one (`core`, and any command that
/// looks entries up). See the README's "Remote caches" section.
#[derive(Debug, Clone, Default, Args)]
pub struct RemoteArgs {
    /// Remote cache: http(s)://[user:pass@]host/prefix (bazel-remote, WebDAV),
    /// s3://bucket/prefix, or gha (the GitHub Actions cache).
    #[arg(long, env = "TBUILD_REMOTE", value_name = "URL")]
    pub remote: Option<String>,

    /// Endpoint of an S3-compatible store (MinIO, R2, Ceph...), addressed path-style;
    /// without it, AWS S3 in AWS_REGION.
    #[arg(long, env = "TBUILD_S3_ENDPOINT", value_name = "URL")]
    pub s3_endpoint: Option<String>,

    /// A remote that fails is an error (exit 7) instead of a warning and a local build.
    #[arg(long, env = "TBUILD_REMOTE_REQUIRED")]
    pub remote_required: bool,

    /// Restore from the remote but never upload (untrusted runs: pull requests from forks).
    #[arg(long, env = "TBUILD_REMOTE_READ_ONLY")]
    pub remote_read_only: bool,

    /// Seconds a remote may stay silent (connecting, or between bytes) before the request
    /// is abandoned.
    #[arg(long, env = "TBUILD_REMOTE_TIMEOUT", default_value_t = 10, value_name = "SECS")]
    pub remote_timeout: u64,
}
