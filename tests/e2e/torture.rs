//! Crash safety: `tbuild core`, `restore`, `cache import` and `cache gc` on a shared cache,
//! each killed with SIGKILL (its whole process group, cargo included) at a random moment,
//! over and over. After every kill `cache verify` must find nothing wrong; every run that
//! completes must serve the right bytes; at the end every entry `cache ls` shows must restore
//! byte-identically to its record, a final `core` of every commit must succeed, and the temp
//! files the kills left must be swept by `gc`, never seen as entries.
//!
//! The suite runs it small (`torture_small`); `scripts/torture.sh` runs the same code with
//! `TBUILD_TORTURE_KILLS` (>= 100) and `TBUILD_TORTURE_SEED` and prints the numbers. A failing
//! seed replays: the kill moments come from a seeded RNG, scaled to the measured length of
//! each kind of operation (so kills land in restores, packs and renames, not only in cargo).

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;

use crate::support::*;

/// Commits of the fixture and what their tasker-ctl prints: three distinct artifacts.
const COMMITS: [(&str, &str); 3] = [
    ("base", "tasker-ctl ctl-1 shared-1"),
    ("ctl-only", "tasker-ctl ctl-2 shared-1"),
    ("shared-change", "tasker-ctl ctl-2 shared-2"),
];
const TARGETS: &str = "tasker-ctl,tasker-server";

/// splitmix64: a seeded, dependency-free RNG, so a run replays from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Op {
    Core,
    Restore,
    Import,
    Gc,
}

#[derive(Default, Debug)]
pub struct Report {
    pub kills: BTreeMap<String, usize>,
    /// Where the killed core and restore runs were, by their last progress line.
    pub phases: BTreeMap<String, usize>,
    pub completed: usize,
    pub verifies: usize,
    pub entries_verified: usize,
    pub corrupt_served: usize,
    pub temp_left: usize,
    /// Files in the mirrors' pack dirs that are not packs or their indexes (killed imports).
    pub mirror_strays: Vec<String>,
}

struct Torture {
    world: World,
    rng: Rng,
    /// Typical length (moving average) of an uninterrupted run per operation: kills are drawn
    /// half of them in [0, 1.2 x this], a quarter in its second half, a quarter in [0, 4 x this].
    typical: BTreeMap<Op, Duration>,
    bundles: Vec<PathBuf>,
    report: Report,
}

impl Torture {
    fn args(&self, op: Op, commit: &str, out: &str, size: &str) -> Vec<String> {
        let recipe = fixture_recipe().to_str().unwrap().to_string();
        let repo = self.world.repo().to_str().unwrap().to_string();
        let out = self.world.out(out).to_str().unwrap().to_string();
        let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        match op {
            Op::Core => s(&["core", "--repo", &repo, "--sha", commit, "--out", &out, "--recipe", &recipe])
                .into_iter()
                .chain(s(&["--targets", TARGETS, "--json"]))
                .collect(),
            Op::Restore => s(&["restore", "--repo", &repo, "--sha", commit, "--out", &out, "--recipe", &recipe])
                .into_iter()
                .chain(s(&["--targets", TARGETS, "--json"]))
                .collect(),
            Op::Import => s(&["cache", "import", commit]),
            Op::Gc => s(&["cache", "gc", "--max-size", size]),
        }
    }

    /// Starts ARGS in a process group of its own, so one signal reaches cargo and rustc too.
    fn spawn(&self, args: &[String]) -> Child {
        self.world
            .command(&args.iter().map(String::as_str).collect::<Vec<_>>(), &[])
            .process_group(0)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// One operation, killed at a random moment unless it finishes first.
    fn round(&mut self) {
        let op = [Op::Core, Op::Core, Op::Core, Op::Restore, Op::Import, Op::Gc][self.rng.below(6) as usize];
        let (commit, expected) = COMMITS[self.rng.below(COMMITS.len() as u64) as usize];
        let out = format!("out{}", self.rng.below(2));
        let size = ["0", "1MiB", "100MiB"][self.rng.below(3) as usize];
        let arg = match op {
            Op::Import => {
                self.bundles[self.rng.below(self.bundles.len() as u64) as usize].to_str().unwrap().to_string()
            }
            _ => commit.to_string(),
        };
        let args = self.args(op, &arg, &out, size);
        // Anywhere in a typical run; or in its second half, where packs, stores and renames
        // happen; or much later, for the long ones (a build).
        let typical = self.typical[&op].as_millis().max(2) as u64;
        let kill_at = Duration::from_millis(match self.rng.below(4) {
            0 => self.rng.below(typical * 4),
            1 => typical / 2 + self.rng.below(typical * 6 / 10),
            _ => self.rng.below(typical * 12 / 10),
        });

        let started = Instant::now();
        let mut child = self.spawn(&args);
        let pid = child.id();
        let finished = loop {
            if child.try_wait().unwrap().is_some() {
                break true;
            }
            if started.elapsed() >= kill_at {
                break false;
            }
            std::thread::sleep(Duration::from_millis(2));
        };
        if !finished {
            kill_group(pid);
        }
        let took = started.elapsed();
        let output = child.wait_with_output().unwrap();
        if finished || output.status.code().is_some() {
            // It ended on its own (perhaps just before the signal): it must have succeeded.
            assert_ok(&output);
            self.report.completed += 1;
            let typical = self.typical.get_mut(&op).unwrap();
            *typical = (*typical + took) / 2;
            if op == Op::Core || op == Op::Restore {
                self.check_served(&output, &out, expected);
            }
        } else {
            wait_for_group(pid);
            *self.report.kills.entry(format!("{op:?}").to_lowercase()).or_default() += 1;
            if op == Op::Core || op == Op::Restore {
                *self.report.phases.entry(phase(&output.stderr)).or_default() += 1;
            }
            // Whatever state the kill left, nothing in the cache may be corrupt.
            let verify = self.world.tbuild(&["cache", "verify"]);
            assert_ok(&verify);
            self.report.verifies += 1;
        }
    }

    /// What a completed run published must be exactly what its manifest says, and the right
    /// program for the commit.
    fn check_served(&mut self, output: &Output, out: &str, expected: &str) {
        let manifest: Value = serde_json::from_slice(&output.stdout).unwrap();
        let out_dir = self.world.out(out);
        for (target, entry) in manifest["targets"].as_object().unwrap() {
            if entry["status"] == "miss" {
                continue;
            }
            let files = entry["files"].as_array().unwrap_or_else(|| panic!("{target}: {entry}"));
            let dir = out_dir.join(entry["artifact_dir"].as_str().unwrap_or("tasker-core-binaries"));
            if files_differ(&dir, files, &out_dir) {
                self.report.corrupt_served += 1;
            }
        }
        if manifest["targets"]["tasker-ctl"]["status"] != "miss" {
            let ctl = out_dir.join("tasker-core-binaries/tasker-ctl");
            if run_binary(&ctl) != expected {
                self.report.corrupt_served += 1;
            }
        }
        assert_eq!(self.report.corrupt_served, 0, "a wrong artifact was served: {manifest}");
    }
}

/// Whether the files listed (manifest or record `files`) differ from what is on disk; paths
/// are relative to the artifact dir, or to the out dir when they do not exist there.
pub(crate) fn files_differ(dir: &Path, files: &[Value], out_dir: &Path) -> bool {
    files.iter().any(|f| {
        let rel = f["path"].as_str().unwrap();
        let path = if dir.join(rel).symlink_metadata().is_ok() { dir.join(rel) } else { out_dir.join(rel) };
        let Ok(meta) = path.symlink_metadata() else { return true };
        if let Some(link) = f.get("link").and_then(Value::as_str) {
            return std::fs::read_link(&path).map(|l| l.to_string_lossy() != link).unwrap_or(true);
        }
        let bytes = std::fs::read(&path).unwrap();
        let digest = f.get("digest").and_then(Value::as_str);
        let mode_ok =
            f.get("mode").and_then(Value::as_u64).is_none_or(|m| m as u32 == meta.permissions().mode() & 0o777);
        Some(bytes.len() as u64) != f["size"].as_u64()
            || digest.is_some_and(|d| d != blake3::hash(&bytes).to_hex().as_str())
            || !mode_ok
    })
}

/// The phase a killed run was in, from its last progress line (`tbuild: tasker-ctl: pack`).
fn phase(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let Some(last) = text.lines().rev().find(|l| !l.trim().is_empty()) else { return "startup".into() };
    let last = last.trim_start_matches("tbuild: ");
    let phase = if last.starts_with("fetch") || last.contains("targets, recipe") {
        "resolve"
    } else if last.starts_with("checked out") {
        "checkout"
    } else if last.ends_with(": build") {
        "build"
    } else if last.ends_with(": pack") {
        "pack"
    } else if last.contains("built in") || last.contains("restore") || last.contains("hit") {
        "restore or store"
    } else {
        "other"
    };
    phase.into()
}

fn kill_group(pid: u32) {
    let _ = Command::new("kill").args(["-KILL", "--", &format!("-{pid}")]).status();
}

/// Waits (bounded) until no process of the killed group is left, so orphaned cargo and rustc
/// processes never pile up between rounds.
fn wait_for_group(pgid: u32) {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(5) {
        let alive = std::fs::read_dir("/proc").unwrap().flatten().any(|p| {
            let Ok(stat) = std::fs::read_to_string(p.path().join("stat")) else { return false };
            // pid (comm) state ppid pgrp ...: comm may hold spaces, so split after the ')'.
            let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
            let fields: Vec<&str> = rest.split_whitespace().collect();
            fields.len() > 2 && fields[2] == pgid.to_string() && fields[0] != "Z"
        });
        if !alive {
            return;
        }
        kill_group(pgid);
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn timed(world: &World, args: &[String]) -> (Output, Duration) {
    let started = Instant::now();
    let output = world.tbuild(&args.iter().map(String::as_str).collect::<Vec<_>>());
    (output, started.elapsed())
}

/// Runs the torture: `kills` SIGKILLs, the RNG seeded with `seed`.
pub fn torture(kills: usize, seed: u64) -> Report {
    let world = World::new();
    let mut t =
        Torture { world, rng: Rng(seed), typical: BTreeMap::new(), bundles: Vec::new(), report: Report::default() };

    // Uninterrupted runs first: every commit built once (the cargo target dir is warm after
    // that, so later builds are mostly pack and store), a bundle of each, and the lengths of
    // a restore, an import and a gc to scale the kill moments by.
    for (commit, expected) in COMMITS {
        let (output, took) = timed(&t.world, &t.args(Op::Core, commit, "out0", ""));
        assert_ok(&output);
        t.check_served(&output, "out0", expected);
        // The last (incremental) build is the typical one.
        t.typical.insert(Op::Core, took);
        let bundle = t.world.out(&format!("{commit}.tbundle"));
        let recipe = fixture_recipe();
        let export = t.world.tbuild(&[
            "cache",
            "export",
            "--repo",
            t.world.repo().to_str().unwrap(),
            "--sha",
            commit,
            "--recipe",
            recipe.to_str().unwrap(),
            "--targets",
            TARGETS,
            // The source too: an import then also writes a pack into the mirror.
            "--with-source",
            "-o",
            bundle.to_str().unwrap(),
        ]);
        assert_ok(&export);
        t.bundles.push(bundle);
    }
    let (output, took) = timed(&t.world, &t.args(Op::Restore, "base", "out1", ""));
    assert_ok(&output);
    t.typical.insert(Op::Restore, took);
    let (output, took) = timed(&t.world, &t.args(Op::Gc, "", "", "0"));
    assert_ok(&output);
    t.typical.insert(Op::Gc, took.max(Duration::from_millis(50)));
    let bundle = t.bundles[0].to_str().unwrap().to_string();
    let (output, took) = timed(&t.world, &t.args(Op::Import, &bundle, "", ""));
    assert_ok(&output);
    t.typical.insert(Op::Import, took);

    let started = Instant::now();
    while t.report.kills.values().sum::<usize>() < kills {
        t.round();
        assert!(started.elapsed() < Duration::from_secs(60 * 60), "the torture is not converging: {:?}", t.report);
    }
    finish(&mut t);
    t.report
}

/// The checks after the last kill.
fn finish(t: &mut Torture) {
    let cache = t.world.cache();
    let world = &t.world;
    // Nothing but entries in the entry dirs: temp files live in tmp/ and nowhere else.
    for (dir, suffix) in [("v1/actions", ".json"), ("v1/blobs", ".tar.zst")] {
        for file in walk(&cache.join(dir)) {
            let name = file.file_name().unwrap().to_str().unwrap();
            let stem = name.strip_suffix(suffix).unwrap_or_else(|| panic!("not an entry: {}", file.display()));
            assert!(stem.len() == 64 && stem.bytes().all(|b| b.is_ascii_hexdigit()), "not an entry: {name}");
        }
    }
    assert_ok(&world.tbuild(&["cache", "verify"]));

    // Every entry the kills left restores byte-identically to its record.
    check_entries(t, "left");

    // A plain run of every commit succeeds and serves the right programs.
    // Into the out dirs the killed runs used, whose next run removes their staging dirs.
    for (i, (commit, expected)) in COMMITS.into_iter().enumerate() {
        let out = format!("out{}", i % 2);
        let args = t.args(Op::Core, commit, &out, "");
        let output = t.world.tbuild(&args.iter().map(String::as_str).collect::<Vec<_>>());
        assert_ok(&output);
        t.check_served(&output, &out, expected);
    }
    // And so does every entry now (the hits among them survived the kills too).
    check_entries(t, "final");
    let world = &t.world;
    // No staging dir of a killed run is left next to an out dir.
    let strays: Vec<_> = std::fs::read_dir(world.dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("tbuild-staging"))
        .collect();
    assert!(strays.is_empty(), "staging dirs of killed runs left behind: {strays:?}");

    // Temp files the kills left are swept by gc once they are old enough to be nobody's.
    let tmp = cache.join("v1/tmp");
    let left: Vec<_> = std::fs::read_dir(&tmp).unwrap().flatten().map(|e| e.path()).collect();
    t.report.temp_left = left.len();
    let two_hours_ago = SystemTime::now() - Duration::from_secs(2 * 3600);
    for path in &left {
        let file = std::fs::File::open(path).unwrap();
        file.set_modified(two_hours_ago).unwrap();
    }
    assert_ok(&world.tbuild(&["cache", "gc"]));
    for file in walk(&cache.join("repos")) {
        let in_pack_dir = file.parent().is_some_and(|p| p.ends_with("objects/pack"));
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        if in_pack_dir && !(name.ends_with(".pack") || name.ends_with(".idx") || name.ends_with(".rev")) {
            t.report.mirror_strays.push(name);
        }
    }
    let after: Vec<_> = std::fs::read_dir(&tmp).unwrap().flatten().map(|e| e.path()).collect();
    assert!(after.is_empty(), "gc left temp files: {after:?}");
    assert_ok(&world.tbuild(&["cache", "verify"]));
}

/// Restores every entry `cache ls` shows, by itself, and compares the files with its record.
fn check_entries(t: &mut Torture, round: &str) {
    let cache = t.world.cache();
    let world = &t.world;
    let mut verified = 0;
    let ls = world.tbuild(&["cache", "ls", "--json"]);
    assert_ok(&ls);
    let entries: Vec<Value> = serde_json::from_slice(&ls.stdout).unwrap();
    for (i, entry) in entries.iter().enumerate() {
        assert!(entry.get("error").is_none(), "ls shows a broken entry: {entry}");
        let (target, key) = (entry["target"].as_str().unwrap(), entry["key"].as_str().unwrap());
        let record: Value =
            serde_json::from_slice(&std::fs::read(cache.join(format!("v1/actions/{}/{key}.json", &key[..2]))).unwrap())
                .unwrap();
        let out = format!("check-{round}-{i}");
        let recipe = fixture_recipe();
        let repo = world.repo();
        let output = world.tbuild(&[
            "restore",
            "--repo",
            repo.to_str().unwrap(),
            "--sha",
            entry["provenance"].as_str().unwrap(),
            "--recipe",
            recipe.to_str().unwrap(),
            "--targets",
            target,
            "--out",
            world.out(&out).to_str().unwrap(),
            "--fail-on-cache-miss",
            "--json",
        ]);
        assert_ok(&output);
        let manifest: Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(manifest["targets"][target]["key"], key, "{target}: restored another entry");
        let out_dir = world.out(&out);
        let dir = out_dir.join("tasker-core-binaries");
        assert!(!files_differ(&dir, record["files"].as_array().unwrap(), &out_dir), "{target} {key}: bytes differ");
        verified += 1;
    }

    t.report.entries_verified += verified;
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            if entry.file_type().unwrap().is_dir() {
                stack.push(entry.path());
            } else {
                found.push(entry.path());
            }
        }
    }
    found
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .map(|v| v.parse().unwrap_or_else(|_| panic!("{name}={v}: not a number")))
        .unwrap_or(default)
}

/// The suite's run: 16 kills. `scripts/torture.sh` sets TBUILD_TORTURE_KILLS for the big one.
#[test]
fn torture_kills_never_corrupt_the_cache() {
    let kills = env_number("TBUILD_TORTURE_KILLS", 16) as usize;
    let seed = env_number("TBUILD_TORTURE_SEED", 8);
    let started = Instant::now();
    let report = torture(kills, seed);
    println!(
        "torture seed {seed}: {} kills survived ({}; core/restore killed in: {}), {} runs completed, {} verify passes, \
         {} entries restored byte-identically, {} corrupt entries served, {} temp files left by kills (swept by gc), \
         stray files in mirror pack dirs: {:?}, {:.0?}",
        report.kills.values().sum::<usize>(),
        report.kills.iter().map(|(k, n)| format!("{k} {n}")).collect::<Vec<_>>().join(", "),
        report.phases.iter().map(|(k, n)| format!("{k} {n}")).collect::<Vec<_>>().join(", "),
        report.completed,
        report.verifies,
        report.entries_verified,
        report.corrupt_served,
        report.temp_left,
        report.mirror_strays,
        started.elapsed(),
    );
    assert_eq!(report.corrupt_served, 0);
    assert!(report.mirror_strays.is_empty(), "killed fetches or imports left files in the mirror: {report:?}");
    assert!(report.entries_verified > 0, "no entry left to check: {report:?}");
}

/// A fetch killed while it updated a ref leaves `refs/heads/main.lock` in the mirror, and an
/// import or fetch killed mid-pack a `pack_git2_*` temp file. Before the fix every later fetch
/// failed ("failed to lock file", exit 3, blaming the network). The next run that opens the
/// mirror removes them (it holds mirror.lock, so they are nobody's), and so does gc.
#[test]
fn what_a_killed_fetch_leaves_in_the_mirror_breaks_no_later_fetch() {
    let world = World::new();
    world.core_targets("main", "out", "tasker-ctl");
    let mirror =
        std::fs::read_dir(world.cache().join("repos")).unwrap().next().unwrap().unwrap().path().join("mirror.git");
    let left = ["refs/heads/main.lock", "FETCH_HEAD.lock", "objects/pack/pack_git2_0123456789abcdef"];
    let plant = || {
        for path in left {
            std::fs::write(mirror.join(path), b"left by a SIGKILL").unwrap();
        }
    };
    plant();
    // main moves, so the run must fetch and update refs/heads/main.
    std::fs::write(
        world.repo().join("crates/tasker-ctl/src/main.rs"),
        "fn main() { println!(\"tasker-ctl moved\"); }\n",
    )
    .unwrap();
    world.commit_all("move main");
    let manifest = world.core_targets("main", "out", "tasker-ctl");
    assert_eq!(manifest["targets"]["tasker-ctl"]["status"], "built");
    assert_eq!(run_binary(&world.out("out").join("tasker-core-binaries/tasker-ctl")), "tasker-ctl moved");
    for path in left {
        assert!(!mirror.join(path).exists(), "{path} is left");
    }
    // gc sweeps them too, for a mirror no run opens again.
    plant();
    let report: Value = serde_json::from_slice(&world.tbuild(&["cache", "gc", "--json"]).stdout).unwrap();
    assert_eq!(report["temp_files"], left.len(), "{report}");
    for path in left {
        assert!(!mirror.join(path).exists(), "gc left {path}");
    }
}
