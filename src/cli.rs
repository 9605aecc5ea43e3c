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
    /// Inspect and maintain the cache dir: list, size, verify, evict, clean.
    Cache {
        #[command(subcommand)]
        command: CacheCommand,
    },
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

    /// Write a timeline of the run (one row per target, its phases coloured) to FILE;
    /// `.html` for a page with a table too, `.svg` for the picture alone.
    #[arg(long, value_name = "FILE", value_parser = crate::timings::parse_path)]
    pub timings: Option<PathBuf>,
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

    /// JSON output: per target its key, input count and (with -v) inputs (`--format json`).
    #[arg(long, conflicts_with = "format")]
    pub json: bool,

    /// How `key` prints the keys: `github` writes them as step outputs to $GITHUB_OUTPUT
    /// (`<target>-key`, and `key` for the whole set), or prints those lines when it is unset.
    #[arg(long, value_enum, default_value_t = KeyFormat::Text)]
    pub format: KeyFormat,
}

pub type RecipeArgs = KeyArgs;

/// `tbuild cache ...`.
#[derive(Debug, Subcommand)]
pub enum CacheCommand {
    /// Print the cache dir.
    Dir,
    /// List the cache entries: target, key, commit, size, age, last use.
    Ls {
        /// JSON on stdout: one object per entry.
        #[arg(long)]
        json: bool,
    },
    /// Disk use by kind: records, archives, memos, logs, temp, git mirrors, build dirs.
    Du {
        /// JSON on stdout: bytes per kind and the total.
        #[arg(long)]
        json: bool,
    },
    /// Re-hash every archive and check every record against it; exit 7 if any is corrupt.
    Verify {
        /// Remove the corrupt records and archives (by default they are only reported).
        #[arg(long)]
        fix: bool,
        /// JSON on stdout: counts and every problem found.
        #[arg(long)]
        json: bool,
    },
    /// Evict least recently used entries, unreferenced archives and stale temp files.
    /// Safe while other tbuilds run.
    Gc {
        /// Evict least recently used entries until records + archives fit, e.g. 5GiB, 500MB.
        #[arg(long, value_name = "SIZE", value_parser = crate::units::parse_size)]
        max_size: Option<u64>,
        /// Evict entries not used for this long, e.g. 30d, 12h.
        #[arg(long, value_name = "AGE", value_parser = crate::units::parse_age)]
        max_age: Option<std::time::Duration>,
        /// Also delete each repository's cargo target dir (the next miss compiles from scratch).
        #[arg(long)]
        prune_target_dirs: bool,
        /// Print what would be removed; remove nothing.
        #[arg(long)]
        dry_run: bool,
        /// JSON on stdout: what was evicted and removed, what was kept.
        #[arg(long)]
        json: bool,
    },
    /// Remove the cached artifacts and build dirs (git mirrors stay); refused while
    /// another tbuild uses the cache.
    Clean {
        /// Remove everything, git mirrors included.
        #[arg(long)]
        all: bool,
    },
}

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
#[command(after_help = "On a miss: without --fail-on-cache-miss the hits are published (the manifest marks the \
misses `miss`) and tbuild exits 0 with cache-hit=false; with it, --out is left untouched and tbuild exits 9.")]
pub struct RestoreArgs {
    #[command(flatten)]
    pub rev: RevArgs,

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
