//! Rows on the real tasker-core (`TBUILD_BENCH_CORE=<git dir>`): the synthetic repository has
//! tasker-core's size but not its history, its recipe or its toolchains, and the issue-14
//! numbers came from the real one. With the built-in recipe and the toolchains on PATH:
//! warm key, a full hit of `tasker-ctl` into a fresh `--out` against `zstd -d | tar -x` of
//! the same archive, a no-op repeat, `key --range` over the last N mainline commits (empty
//! cache and warm), and the rebuild-rate table of `key --range --stats`.
//!
//! The full hit needs a `tasker-ctl` build in the cache: `TBUILD_BENCH_CORE_CACHE=<dir>` names
//! a cache that holds one (stage it once with `tbuild core --repo <git dir> --sha <tip>
//! --targets tasker-ctl`; a cold build is 10-20 min on 2 cores) and is reused between runs;
//! without it the build happens here, in the scratch dir.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::measure::{Row, run};
use crate::{absolute_row, clean, ratio_row, repeat};

const FIVE: &str = "tasker-server,tasker-worker,tasker-ctl,python,typescript";

pub struct Core {
    pub git_dir: PathBuf,
    pub cache: PathBuf,
    pub work: PathBuf,
    pub tbuild: PathBuf,
    pub runs: usize,
}

impl Core {
    /// From `TBUILD_BENCH_CORE` and `TBUILD_BENCH_CORE_CACHE`; `None` when the first is unset.
    pub fn from_env(work: &Path, tbuild: &Path, runs: usize) -> Option<Core> {
        let git_dir = PathBuf::from(std::env::var_os("TBUILD_BENCH_CORE")?);
        let git_dir = git_dir.canonicalize().unwrap_or_else(|e| panic!("TBUILD_BENCH_CORE {git_dir:?}: {e}"));
        let cache = std::env::var_os("TBUILD_BENCH_CORE_CACHE").map_or_else(|| work.join("core-cache"), PathBuf::from);
        Some(Core { git_dir, cache, work: work.join("core"), tbuild: tbuild.to_path_buf(), runs })
    }

    fn tbuild(&self, cache: &Path, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.tbuild);
        cmd.arg("-q").args(args).env("TBUILD_CACHE_DIR", cache).env("CI", "1");
        cmd.env_remove("TBUILD_CORE_REPO").env_remove("TBUILD_CONFIG");
        cmd
    }

    /// Every target, or the five without Ruby when Bundler is not on PATH (a key refuses a
    /// missing tool), as the "5 targets" rows.
    fn targets(&self) -> &'static str {
        let bundle =
            std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("bundle").is_file()));
        if bundle { "tasker-server,tasker-worker,tasker-ctl,ruby,python,typescript" } else { FIVE }
    }

    fn repo(&self) -> &str {
        self.git_dir.to_str().expect("a UTF-8 path")
    }

    fn git(&self, args: &[&str]) -> String {
        let out = Command::new("git").arg("--git-dir").arg(&self.git_dir).args(args).output().expect("git");
        assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    /// The rows, and the rebuild-rate table (printed by the caller after the rows).
    pub fn rows(&self) -> (Vec<Row>, String) {
        fs::create_dir_all(&self.work).unwrap();
        let tip = self.git(&["rev-parse", "main^{commit}"]);
        eprintln!("bench: real tasker-core {} at {}, cache {}", self.repo(), &tip[..12], self.cache.display());
        // The range rows first: they need no staged entry, which may still be building.
        let (mut rows, table) = self.range_rows(&tip);
        let out = self.work.join("out");
        let core = |out: &Path| {
            let args = ["core", "--repo", self.repo(), "--sha", &tip, "--targets", "tasker-ctl", "--out"];
            let mut cmd = self.tbuild(&self.cache, &args);
            cmd.arg(out);
            cmd
        };
        // Stage (or confirm) the tasker-ctl entry; then a warm mirror, memo and toolchain memo.
        let staged = run(&mut core(&out));
        eprintln!("bench: tasker-ctl staged/restored in {:.1}s", staged.wall.as_secs_f64());

        let targets = self.targets();
        eprintln!("bench: warm key of {targets}");
        let args = ["key", "--repo", self.repo(), "--sha", &tip, "--offline", "--targets", targets];
        let mut key = self.tbuild(&self.cache, &args);
        run(&mut key);
        let name = if targets == FIVE { "core: warm key (5, no Ruby)" } else { "core: warm key (6 targets)" };
        rows.push(absolute_row(name, repeat(self.runs, || {}, || run(&mut key)), 50.0));

        let (unpacked, archives) = (self.work.join("unpacked"), self.archives_of(&tip));
        let base = repeat(self.runs, || clean(&unpacked), || run(&mut untar(&archives, &unpacked)));
        let _ = fs::remove_dir_all(&unpacked);
        let hit = repeat(self.runs, || clean(&out), || run(&mut core(&out)));
        rows.push(ratio_row("core: full hit tasker-ctl", hit, "zstd -d | tar -x", base, 1.2, "<= 1.2"));
        let noop = repeat(self.runs, || {}, || run(&mut core(&out)));
        rows.push(absolute_row("core: no-op repeat", noop, 50.0));
        let _ = fs::remove_dir_all(&out);
        (rows, table)
    }

    /// `key --range` over the last 100 and 50 first-parent commits, the five targets the
    /// issue's rebuild rates count: empty cache (a fresh cache dir per run, mirror included)
    /// and warm (100 only).
    fn range_rows(&self, tip: &str) -> (Vec<Row>, String) {
        let runs = std::env::var("BENCH_CORE_RANGE_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(3usize).max(1);
        let empty = self.work.join("range-cache");
        let mut rows = Vec::new();
        let mut table = String::new();
        for (commits, empty_goal, warm_goal) in [(100, 25_000.0, Some(2_000.0)), (50, 15_000.0, None)] {
            let from = self.git(&["rev-parse", &format!("{tip}~{commits}")]);
            let range = format!("{from}..{tip}");
            let args = ["key", "--repo", self.repo(), "--range", &range, "--stats", "--targets", FIVE];
            let mut cmd = self.tbuild(&empty, &args);
            let cold = repeat(runs, || drop(fs::remove_dir_all(&empty)), || run(&mut cmd));
            rows.push(absolute_row(leak(format!("key --range {commits}, empty")), cold, empty_goal));
            let Some(goal) = warm_goal else { continue };
            let warm = repeat(self.runs, || {}, || run(&mut cmd));
            rows.push(absolute_row(leak(format!("key --range {commits}, warm")), warm, goal));
            let out = cmd.output().expect("key --range --stats");
            assert!(out.status.success(), "key --range: {}", String::from_utf8_lossy(&out.stderr));
            table = String::from_utf8_lossy(&out.stdout).into_owned();
        }
        let _ = fs::remove_dir_all(&empty);
        (rows, table)
    }

    /// The archives of tasker-ctl's entry at `tip`: the blobs its action record names.
    fn archives_of(&self, tip: &str) -> Vec<PathBuf> {
        let args = ["key", "--repo", self.repo(), "--sha", tip, "--offline", "--targets", "tasker-ctl", "--json"];
        let out = self.tbuild(&self.cache, &args).output().expect("tbuild key");
        assert!(out.status.success(), "tbuild key: {}", String::from_utf8_lossy(&out.stderr));
        let text = String::from_utf8_lossy(&out.stdout);
        let key = hex_words(&text).into_iter().next().expect("a key in `key --json`");
        let record = self.cache.join(format!("v1/actions/{}/{key}.json", &key[..2]));
        let record = fs::read_to_string(&record).unwrap_or_else(|e| panic!("{}: {e}", record.display()));
        let blobs: Vec<PathBuf> = hex_words(&record)
            .into_iter()
            .map(|d| self.cache.join(format!("v1/blobs/{}/{d}.tar.zst", &d[..2])))
            .filter(|p| p.is_file())
            .collect();
        assert!(!blobs.is_empty(), "the record of {key} names no archive in the cache");
        blobs
    }
}

/// `zstd -d | tar -x` of each archive into its own dir under `dest`.
fn untar(archives: &[PathBuf], dest: &Path) -> Command {
    let script = "d=$1; shift; i=0; for a; do i=$((i+1)); mkdir -p \"$d/$i\"; zstd -d -q -c \"$a\" | tar -xf - -C \"$d/$i\"; done";
    let mut cmd = Command::new("sh");
    cmd.args(["-c", script, "sh"]).arg(dest).args(archives);
    cmd
}

/// Every run of 64 hex digits in `text`, in order.
fn hex_words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_ascii_hexdigit()).filter(|w| w.len() == 64).map(str::to_string).collect()
}

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}
