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
6 build failed, 7 cache error, 8 output dir refused."
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

    /// How hits reach --out: `copy` extracts each archive; `hardlink` links files from an
    /// unpacked tree kept in the cache (read-only outputs, a hit costs O(files)); `reflink`
    /// clones them copy-on-write where the filesystem can (btrfs, XFS), else copies.
    #[arg(long, value_enum, default_value_t, env = "TBUILD_LINK_MODE", value_name = "MODE")]
    pub link_mode: crate::cache::LinkMode,
}

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("tree").required(true).args(["sha", "path", "range"]))]
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

    /// Commits A..B of --repo (first-parent walk from B, A excluded): for each, the targets
    /// whose keys differ from its first parent's, i.e. what a per-target cache rebuilds.
    #[arg(long, value_name = "A..B", conflicts_with = "path")]
    pub range: Option<String>,

    /// With --range: totals (commits needing no rebuild, mean share of targets rebuilt,
    /// rebuilds per target).
    #[arg(long, requires = "range")]
    pub stats: bool,
}

pub type RecipeArgs = KeyArgs;
