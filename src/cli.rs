//! The command line, in one place. Help texts read like the manual; settings that CI sets
//! once have an environment variable too.
//!
//! Each command's struct holds exactly the flags it reads, so clap refuses the rest: a flag
//! that parses is a flag that does something. Shared groups are flattened, never re-declared:
//! [`RevArgs`] (which tree), [`FormatArgs`] (`--format`, with `--json` short for
//! `--format json`, on every command that prints data), [`RemoteArgs`], [`RegistryArgs`].
//! `tbuild completions` and `tbuild man` are generated from these same definitions.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// The heading of the options every command takes, listed after the command's own.
const GLOBAL: &str = "Global options";

/// clap's parser for one name of `--targets a,b`: `"tasker-ctl, ruby"` means two targets.
fn target_name(text: &str) -> Result<String, String> {
    let name = text.trim();
    if name.is_empty() {
        return Err("an empty target name: give names separated by commas, e.g. --targets tasker-ctl,ruby".into());
    }
    Ok(name.to_string())
}

/// The public tasker-core repository, the default `--repo`.
pub const DEFAULT_REPO: &str = "https://github.com/tasker-systems/tasker-core.git";

/// `tbuild --version`: the crate version, the commit it was built from and the build date
/// (build.rs; `unknown` outside a git checkout).
pub const VERSION: &str =
    concat!(env!("CARGO_PKG_VERSION"), " (", env!("TBUILD_GIT_COMMIT"), " ", env!("TBUILD_BUILD_DATE"), ")");

#[derive(Debug, Parser)]
#[command(
    name = "tbuild",
    version = VERSION,
    about = "Build tasker-core's artifacts once, then restore them from a content-addressed cache",
    after_help = "Exit codes: 0 ok, 1 internal error, 2 usage, 3 source (unknown or ambiguous revision, \
unreachable repository), 4 recipe (malformed tbuild.toml, unknown layout or target), 5 missing toolchain, \
6 build failed, 7 cache error, 8 output dir refused, 9 cache miss (restore --fail-on-cache-miss), \
10 upstream check or constraint failed, 11 registry or GitHub request failed."
)]
pub struct Cli {
    /// Cache directory (action records, archives, git mirrors, build dirs)
    /// [default: $XDG_CACHE_HOME/tbuild, else ~/.cache/tbuild].
    #[arg(long, global = true, env = "TBUILD_CACHE_DIR", value_name = "DIR", help_heading = GLOBAL)]
    pub cache_dir: Option<PathBuf>,

    /// Only warnings and errors on stderr.
    #[arg(long, short, global = true, help_heading = GLOBAL)]
    pub quiet: bool,

    /// More diagnostics (repeat for more); TBUILD_LOG=debug does the same.
    #[arg(long, short, global = true, action = clap::ArgAction::Count, help_heading = GLOBAL)]
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
    /// Restore a commit's artifacts from the cache into --out, never building: the CI
    /// restore step. Writes GitHub Actions outputs and a step summary when run there.
    Restore(RestoreArgs),
    /// Inspect and maintain the cache dir: list, size, verify, evict, clean.
    Cache {
        #[command(subcommand)]
        command: CacheCommand,
    },
    /// Say why a target misses: compare its inputs with the closest stored entry.
    Explain(ExplainArgs),
    /// Print a shell completion script, e.g. `tbuild completions bash > /etc/bash_completion.d/tbuild`.
    Completions(CompletionsArgs),
    /// Print the manual page (roff), e.g. `tbuild man > /usr/local/share/man/man1/tbuild.1`.
    Man,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum, value_name = "SHELL")]
    pub shell: clap_complete::Shell,
}

impl Command {
    /// The `--recipe FILE` the command was given, if any.
    pub fn recipe_file(&self) -> Option<&std::path::Path> {
        match self {
            Command::Core(args) => args.recipe.as_deref(),
            Command::Key(args) => args.recipe.as_deref(),
            Command::Recipe(args) => args.recipe.as_deref(),
            Command::Restore(args) => args.recipe.as_deref(),
            Command::Explain(args) => args.recipe.as_deref(),
            Command::Cache { command: CacheCommand::Export(args) } => args.recipe.as_deref(),
            _ => None,
        }
    }
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Commit whose targets' entries to export (see `core --sha`).
    #[arg(long, value_name = "REV")]
    pub sha: String,

    #[command(flatten)]
    pub repo: RepoArgs,

    /// Recipe file to use instead of the repository's tbuild.toml or the built-in recipe.
    #[arg(long, value_name = "FILE")]
    pub recipe: Option<PathBuf>,

    /// Only these targets (comma-separated names); all of the recipe's by default. Every
    /// one must be in the cache.
    #[arg(long, value_delimiter = ',', value_name = "A,B", value_parser = target_name)]
    pub targets: Vec<String>,

    /// Also pack the git objects of the commit, so that the importing machine can key (and
    /// build) it without ever fetching.
    #[arg(long)]
    pub with_source: bool,

    /// The bundle file to write (replaced atomically).
    #[arg(long, short, value_name = "FILE")]
    pub output: PathBuf,

    /// `json`: what was exported, on stdout.
    #[command(flatten)]
    pub format: FormatArgs<TextOrJson>,
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

    /// `json`: what was imported, on stdout.
    #[command(flatten)]
    pub format: FormatArgs<TextOrJson>,
}

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("tree").required(true).args(["sha", "path"]))]
pub struct ExplainArgs {
    /// The target to explain.
    #[arg(value_name = "TARGET")]
    pub target: String,

    #[command(flatten)]
    pub rev: RevArgs,

    /// Recipe file to use instead of the repository's tbuild.toml or the built-in recipe.
    #[arg(long, value_name = "FILE")]
    pub recipe: Option<PathBuf>,

    #[command(flatten)]
    pub format: FormatArgs<TextOrJson>,
}

/// Where the source tree comes from: a commit of a repository, or a checkout on disk. The
/// command's struct says which of the two are required (an `ArgGroup` named `tree`).
#[derive(Debug, Args)]
pub struct RevArgs {
    /// Commit to use: a full SHA, a unique short SHA, a branch or a tag.
    #[arg(long, value_name = "REV")]
    pub sha: Option<String>,

    /// A checkout on disk, used as it is instead of a commit: tracked files as they are on
    /// disk plus untracked files that .gitignore does not cover. It is only read; `core`
    /// builds in a copy under the cache dir.
    #[arg(long, value_name = "DIR")]
    pub path: Option<PathBuf>,

    #[command(flatten)]
    pub repo: RepoArgs,
}

/// The repository commits come from, and whether it may be fetched.
#[derive(Debug, Args)]
pub struct RepoArgs {
    /// Repository URL or local path, mirrored under the cache dir. With `core --path`, the
    /// repository whose work dir and cargo target dir the build reuses.
    #[arg(long = "repo", env = "TBUILD_CORE_REPO", default_value = DEFAULT_REPO, value_name = "URL|PATH")]
    pub url: String,

    /// Never touch the network: no fetch (the commit must already be in the mirror, or come
    /// from an imported bundle), no remote cache, cargo offline.
    #[arg(long, env = "TBUILD_OFFLINE", value_parser = clap::builder::BoolishValueParser::new())]
    pub offline: bool,
}

/// A format a command prints in; `JSON` is what `--json` selects, `DEFAULT` the name of the
/// value used without either flag.
///
/// `DEFAULT` is a name, not `Default::default()` with clap's `default_value_t`: in a generic
/// struct that renders the default into a `static`, which Rust shares between every `F`, so
/// all commands would get the first one's default.
pub trait OutputFormat: clap::ValueEnum + Clone + Copy + Send + Sync + std::fmt::Debug + 'static {
    const JSON: Self;
    const DEFAULT: &'static str;
}

/// `--format F` and its short form `--json`, the same on every command that prints data.
#[derive(Debug, Clone, Args)]
pub struct FormatArgs<F: OutputFormat> {
    /// What to print on stdout.
    #[arg(long, value_enum, default_value = F::DEFAULT, value_name = "FORMAT")]
    format: F,

    /// Short for `--format json`.
    #[arg(long, conflicts_with = "format")]
    json: bool,
}

impl<F: OutputFormat> FormatArgs<F> {
    /// The format chosen, `--json` included.
    pub fn get(&self) -> F {
        if self.json { F::JSON } else { self.format }
    }

    /// Whether JSON was asked for (`--json` or `--format json`).
    pub fn is_json(&self) -> bool
    where
        F: PartialEq,
    {
        self.get() == F::JSON
    }
}

/// Human-readable text (the default) or JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TextOrJson {
    /// For people; its wording may change.
    Text,
    /// One JSON document, for scripts.
    Json,
}

impl OutputFormat for TextOrJson {
    const JSON: Self = TextOrJson::Json;
    const DEFAULT: &'static str = "text";
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
    #[arg(long, value_delimiter = ',', value_name = "A,B", value_parser = target_name)]
    pub targets: Vec<String>,

    /// How many targets may build at once.
    #[arg(long, short, default_value_t = 2, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub jobs: u16,

    /// `json`: the run's summary (the manifest), on stdout.
    #[command(flatten)]
    pub format: FormatArgs<TextOrJson>,

    #[command(flatten)]
    pub remote: RemoteArgs,

    #[command(flatten)]
    pub release: PreferReleaseArgs,

    /// Write a timeline of the run (one row per target, its phases coloured) to FILE;
    /// `.html` for a page with a table too, `.svg` for the picture alone.
    #[arg(long, value_name = "FILE", value_parser = crate::tools::timings::parse_path)]
    pub timings: Option<PathBuf>,

    /// How hits reach --out: `copy` extracts each archive; `hardlink` links files from an
    /// unpacked tree kept in the cache (read-only outputs, a hit costs O(files)); `reflink`
    /// clones them copy-on-write where the filesystem can (btrfs, XFS), else copies.
    #[arg(long, value_enum, default_value_t, env = "TBUILD_LINK_MODE", value_name = "MODE")]
    pub link_mode: crate::cache::LinkMode,

    /// A cache hit whose archive or unpacked files are larger than this is refused (dropped
    /// and rebuilt): an honest record can still list a disk's worth of bytes.
    #[arg(long, env = "TBUILD_MAX_ENTRY_SIZE", default_value = "4GiB", value_name = "SIZE",
        value_parser = crate::units::parse_size)]
    pub max_entry_size: u64,

    #[command(flatten)]
    pub warm: WarmArgs,
}

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("tree").required(true).args(["sha", "path", "range"]))]
pub struct KeyArgs {
    #[command(flatten)]
    pub rev: RevArgs,

    /// Recipe file to use instead of the repository's tbuild.toml or the built-in recipe.
    #[arg(long, value_name = "FILE")]
    pub recipe: Option<PathBuf>,

    /// Only these targets (comma-separated names).
    #[arg(long, value_delimiter = ',', value_name = "A,B", value_parser = target_name)]
    pub targets: Vec<String>,

    #[command(flatten)]
    pub format: FormatArgs<KeyFormat>,

    /// Commits A..B of --repo (first-parent walk from B, A excluded): for each, the targets
    /// whose keys differ from its first parent's, i.e. what a per-target cache rebuilds.
    #[arg(long, value_name = "A..B", conflicts_with = "path")]
    pub range: Option<String>,

    /// With --range: totals (commits needing no rebuild, mean share of targets rebuilt,
    /// rebuilds per target).
    #[arg(long, requires = "range")]
    pub stats: bool,
}

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("tree").required(true).args(["sha", "path"]))]
pub struct RecipeArgs {
    #[command(flatten)]
    pub rev: RevArgs,

    /// Recipe file to use instead of the repository's tbuild.toml or the built-in recipe.
    #[arg(long, value_name = "FILE")]
    pub recipe: Option<PathBuf>,

    /// Only these targets (comma-separated names).
    #[arg(long, value_delimiter = ',', value_name = "A,B", value_parser = target_name)]
    pub targets: Vec<String>,

    #[command(flatten)]
    pub format: FormatArgs<RecipeFormat>,
}

/// How `tbuild recipe` prints the recipe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RecipeFormat {
    /// The recipe as a tbuild.toml, after `# recipe:` and `# tree:` comment lines.
    Toml,
    /// `{"source", "tree", "recipe"}`.
    Json,
}

impl OutputFormat for RecipeFormat {
    const JSON: Self = RecipeFormat::Json;
    const DEFAULT: &'static str = "toml";
}

/// `tbuild cache ...`.
#[derive(Debug, Subcommand)]
pub enum CacheCommand {
    /// Write one commit's cache entries (and with --with-source its git objects) to a bundle
    /// file that `tbuild cache import` reads on another machine.
    Export(ExportArgs),
    /// Verify a bundle whole, then add its entries (and source) to this cache.
    Import(ImportArgs),
    /// Print the cache dir.
    Dir {
        /// `json`: `{"dir": ...}`.
        #[command(flatten)]
        format: FormatArgs<TextOrJson>,
    },
    /// List the cache entries: target, key, commit, size, age, last use.
    Ls {
        /// `json`: one object per entry.
        #[command(flatten)]
        format: FormatArgs<TextOrJson>,
    },
    /// Disk use by kind: records, archives, memos, logs, temp, git mirrors, build dirs.
    Du {
        /// `json`: bytes per kind and the total.
        #[command(flatten)]
        format: FormatArgs<TextOrJson>,
    },
    /// Re-hash every archive, check every record against it, and test-unpack every entry as
    /// a restore would; exit 7 if any is corrupt or would be refused.
    Verify {
        /// Remove the corrupt records and archives (by default they are only reported).
        #[arg(long)]
        fix: bool,
        /// `json`: counts and every problem found.
        #[command(flatten)]
        format: FormatArgs<TextOrJson>,
        /// Entries over this size are reported, as a restore refuses them (see `core --max-entry-size`).
        #[arg(long, env = "TBUILD_MAX_ENTRY_SIZE", default_value = "4GiB", value_name = "SIZE",
            value_parser = crate::units::parse_size)]
        max_entry_size: u64,
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
        /// Evict least recently used warm-state snapshots (core --warm-state) until they fit;
        /// they do not count toward --max-size. `0` removes them all.
        #[arg(long, value_name = "SIZE", default_value = "4GiB", value_parser = crate::units::parse_size)]
        max_warm_size: u64,
        /// Also delete each repository's cargo target dir (the next miss compiles from scratch).
        #[arg(long)]
        prune_target_dirs: bool,
        /// Print what would be removed; remove nothing.
        #[arg(long)]
        dry_run: bool,
        /// `json`: what was evicted and removed, what was kept.
        #[command(flatten)]
        format: FormatArgs<TextOrJson>,
    },
    /// Remove the cached artifacts and build dirs (git mirrors stay); refused while
    /// another tbuild uses the cache.
    Clean {
        /// Remove everything, git mirrors included.
        #[arg(long)]
        all: bool,
        /// `json`: each path removed with its bytes, and the total freed.
        #[command(flatten)]
        format: FormatArgs<TextOrJson>,
    },
}

/// How `tbuild key` prints the keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum KeyFormat {
    /// One line per target: name, key, input count (with -v, its inputs below it).
    Text,
    /// Per target its key, input count and (with -v) inputs.
    Json,
    /// Step outputs to $GITHUB_OUTPUT (`<target>-key`, and `key` for the whole set), or those
    /// lines on stdout when it is unset. Not with --range.
    Github,
}

impl OutputFormat for KeyFormat {
    const JSON: Self = KeyFormat::Json;
    const DEFAULT: &'static str = "text";
}

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("tree").required(true).args(["sha", "path"]))]
#[command(after_help = "On a miss: without --fail-on-cache-miss the hits are published (the manifest marks the \
misses `miss`) and tbuild exits 0 with cache-hit=false; with it, a miss leaves --out untouched and tbuild exits 9.")]
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
    #[arg(long, value_delimiter = ',', value_name = "A,B", value_parser = target_name)]
    pub targets: Vec<String>,

    /// How hits reach --out (see `core --link-mode`).
    #[arg(long, value_enum, default_value_t, env = "TBUILD_LINK_MODE", value_name = "MODE")]
    pub link_mode: crate::cache::LinkMode,

    /// A cache hit whose archive or unpacked files are larger than this is refused (dropped
    /// and rebuilt): an honest record can still list a disk's worth of bytes.
    #[arg(long, env = "TBUILD_MAX_ENTRY_SIZE", default_value = "4GiB", value_name = "SIZE",
        value_parser = crate::units::parse_size)]
    pub max_entry_size: u64,

    /// Exit 9 without touching --out when any selected target is not in the cache.
    #[arg(long)]
    pub fail_on_cache_miss: bool,

    /// `json`: the run's summary (the manifest), on stdout.
    #[command(flatten)]
    pub format: FormatArgs<TextOrJson>,
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

#[derive(Debug, Subcommand)]
pub enum UpstreamCommand {
    /// How far each pinned package is behind its registry's latest stable release.
    #[command(after_help = "Exit codes: 0 ok, 2 bad versions file, 10 a package at or above --fail-on, \
11 a registry lookup failed (every package is still reported).")]
    Check(UpstreamCheckArgs),
    /// Whether the contrib packages' declared constraints admit the pinned and latest versions.
    #[command(after_help = "Exit codes: 0 every constraint admits its pinned version, 2 bad versions file or \
manifest, 10 a constraint refuses its pinned version.")]
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

/// How `upstream check` reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CheckFormat {
    /// A table for people.
    Table,
    /// One JSON document.
    Json,
    /// The tracking issue's body.
    Markdown,
    /// GITHUB_OUTPUT outputs, GITHUB_STEP_SUMMARY and annotations.
    Github,
}

impl OutputFormat for CheckFormat {
    const JSON: Self = CheckFormat::Json;
    const DEFAULT: &'static str = "table";
}

#[derive(Debug, Args)]
pub struct UpstreamCheckArgs {
    /// The pins: `{"rust": {"tasker-worker": "0.1.3"}, "python": {...}, ...}`.
    #[arg(long, default_value = crate::tools::upstream::DEFAULT_VERSIONS_FILE, value_name = "FILE")]
    pub versions: std::path::PathBuf,

    #[command(flatten)]
    pub registry: RegistryArgs,

    #[command(flatten)]
    pub format: FormatArgs<CheckFormat>,

    /// Exit 10 when a package's severity is at least this one.
    #[arg(long, value_enum, value_name = "SEVERITY")]
    pub fail_on: Option<crate::tools::upstream::Severity>,

    /// Rewrite the pins that are behind to their latest stable version (other keys kept).
    #[arg(long)]
    pub update: bool,
}

/// A table for people (the default) or JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TableOrJson {
    /// A table for people.
    Table,
    /// One JSON document.
    Json,
}

impl OutputFormat for TableOrJson {
    const JSON: Self = TableOrJson::Json;
    const DEFAULT: &'static str = "table";
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

    #[command(flatten)]
    pub format: FormatArgs<TableOrJson>,
}

#[derive(Debug, Subcommand)]
pub enum ReleaseCommand {
    /// Download a release's assets, verify them against its checksum file and lay them out
    /// like `tbuild core --out`.
    #[command(after_help = "Exit codes: 0 ok, 8 --out refused, 11 release not found, API error, \
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

    /// `json`: the manifest, on stdout.
    #[command(flatten)]
    pub format: FormatArgs<TextOrJson>,
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

/// How `affected` reports the jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AffectedFormat {
    /// The selection, on stdout.
    Json,
    /// `job=true|false` lines appended to $GITHUB_OUTPUT (on stdout when it is unset).
    Github,
}

impl OutputFormat for AffectedFormat {
    const JSON: Self = AffectedFormat::Json;
    const DEFAULT: &'static str = "json";
}

#[derive(Debug, Args)]
#[command(after_help = "Exit codes: 0 ok, 2 bad rule file, 3 unknown revision or not a repository.")]
pub struct AffectedArgs {
    /// The change's base (the target branch): jobs are chosen from the diff between the merge
    /// base of --base and --head, and --head. Forty zeros (a branch's first push) select every
    /// job that has a file.
    #[arg(long, value_name = "REF")]
    pub base: String,

    #[arg(long, default_value = "HEAD", value_name = "REF")]
    pub head: String,

    /// Rule file (TOML, see the README); default: the design doc's table.
    #[arg(long, value_name = "FILE")]
    pub rules: Option<std::path::PathBuf>,

    /// The repository (a work tree or a bare repository), or any directory inside it.
    #[arg(long, default_value = ".", value_name = "PATH")]
    pub repo: std::path::PathBuf,

    #[command(flatten)]
    pub format: FormatArgs<AffectedFormat>,
}

/// Warm build state for cargo misses (see the README's "Warm misses" section).
#[derive(Debug, Clone, Args)]
pub struct WarmArgs {
    /// Before a cargo build on a miss into an empty cargo target dir, restore a snapshot of
    /// an earlier build's target dir; after it, save one (local cache and remote alike).
    #[arg(long, env = "TBUILD_WARM_STATE")]
    pub warm_state: bool,

    /// Largest snapshot to save, e.g. 3GiB; a bigger pruned target dir is not saved.
    #[arg(long, env = "TBUILD_WARM_STATE_MAX_SIZE", value_name = "SIZE", default_value = "3GiB",
        value_parser = crate::units::parse_size)]
    pub warm_state_max_size: u64,

    /// Put rustc's incremental state (`<profile>/incremental/`) into snapshots too: a fresh
    /// machine whose work dir is at the same path as the snapshot's (the same cache dir
    /// path, as on CI runners) then recompiles an edited crate incrementally. Snapshots with
    /// it are keyed apart from those without.
    #[arg(long, env = "TBUILD_WARM_STATE_INCREMENTAL")]
    pub warm_state_incremental: bool,

    /// Run cargo with its fingerprint log (CARGO_LOG=cargo::core::compiler::fingerprint=info)
    /// and list, after each build, every unit cargo found dirty with the first stale item.
    #[arg(long, env = "TBUILD_EXPLAIN_REBUILD")]
    pub explain_rebuild: bool,

    /// Compile through sccache (RUSTC_WRAPPER): `auto` uses it when it is on PATH and works,
    /// `always` warns when it does not, `never` does not look.
    #[arg(long, env = "TBUILD_SCCACHE", value_name = "WHEN", default_value = "auto")]
    pub sccache: SccacheMode,
}

/// When to run rustc through sccache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SccacheMode {
    Auto,
    Always,
    Never,
}
