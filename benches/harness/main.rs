//! The benchmark harness: tbuild against the physical baselines, measured in the same run on
//! the same bytes, printed as ratios (the machines here are small and shared: seconds drift
//! with the load, ratios much less). Run it through `scripts/bench.sh`, which builds the
//! release binary and documents the knobs.
//!
//! `harness run` generates a tasker-core-sized repository and artifacts from a seed, stages a
//! cache entry per target with one real `tbuild core` build (command-kind targets that copy
//! the synthetic artifacts), then measures key, pack, unpack, a full hit and a no-op repeat.
//! The other subcommands are the in-process halves of those measurements, run as child
//! processes so each gets its own peak-RSS figure.

mod measure;
mod real_core;
mod synth;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use measure::{Row, Sample, run, summarise};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    match args.first().map(String::as_str) {
        Some("pack") => pack(Path::new(&args[1]), Path::new(&args[2])),
        Some("unpack") => unpack(Path::new(&args[1]), Path::new(&args[2])),
        Some("b3sum") => b3sum(&args[1..]),
        Some("run") | None => bench(),
        Some(other) => {
            eprintln!("unknown subcommand {other}: run | pack SRC OUT | unpack ARCHIVES DEST | b3sum FILE...");
            std::process::exit(2);
        }
    }
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Settings, from the environment `scripts/bench.sh` sets.
struct Settings {
    work: PathBuf,
    tbuild: PathBuf,
    scale: f64,
    runs: usize,
    seed: u64,
    history: usize,
    b3sum: Option<PathBuf>,
}

fn bench() {
    let s = Settings {
        work: PathBuf::from(std::env::var("BENCH_WORK").expect("BENCH_WORK: a scratch dir")),
        tbuild: PathBuf::from(std::env::var("TBUILD").expect("TBUILD: the release tbuild binary")),
        scale: env_or("BENCH_SCALE", 1.0),
        runs: env_or("BENCH_RUNS", 5usize).max(1),
        seed: env_or("BENCH_SEED", 7u64),
        history: env_or("BENCH_HISTORY", 100usize),
        b3sum: std::env::var_os("B3SUM").map(PathBuf::from).filter(|p| !p.as_os_str().is_empty()),
    };
    let real_core = real_core::Core::from_env(&s.work, &s.tbuild, s.runs);
    if std::env::var_os("BENCH_ONLY_CORE").is_some() {
        let core = real_core.expect("BENCH_ONLY_CORE needs TBUILD_BENCH_CORE");
        print_core(core.rows());
        return;
    }
    let w = &s.work;
    let (repo, gen_dir, cache) = (w.join("repo"), w.join("artifacts"), w.join("cache"));
    let started = std::time::Instant::now();
    let sha = synth::repo(&repo, s.seed, s.history).expect("generate the repository");
    synth::artifacts(&gen_dir, s.seed, s.scale).expect("generate the artifacts");
    eprintln!("bench: generated repo and artifacts in {:.1}s", started.elapsed().as_secs_f64());
    let recipe = w.join("bench-recipe.toml");
    fs::write(&recipe, recipe_text(&gen_dir)).expect("write the recipe");

    let tbuild = |args: &[&str]| {
        let mut cmd = Command::new(&s.tbuild);
        cmd.args(["-q"]).args(args).env("TBUILD_CACHE_DIR", &cache).env("CI", "1");
        cmd
    };
    let repo_arg = repo.to_str().unwrap().to_string();
    let recipe_arg = recipe.to_str().unwrap().to_string();
    let core = |out: &Path, extra: &[&str]| {
        // A full SHA is looked up in the mirror without fetching once the first run mirrored it.
        let mut args = vec!["core", "--repo", &repo_arg, "--sha", &sha, "--recipe", &recipe_arg];
        args.extend(["--out", out.to_str().unwrap()]);
        args.extend_from_slice(extra);
        tbuild(&args)
    };

    // Stage the cache: one real build of every target (copies + pack + store).
    let first = run(&mut core(&w.join("out-build"), &[]));
    eprintln!("bench: staged the cache with one build in {:.1}s", first.wall.as_secs_f64());
    // Disk is shared here: keep one copy of the artifacts besides the cache's archives.
    let _ = fs::remove_dir_all(w.join("out-build"));
    let _ = Command::new("sh").args(["-c", "rm -rf \"$1\"/repos/*/work/.bench-*", "sh"]).arg(&cache).status();
    let blobs = archives(&cache);
    let artifact_bytes: u64 = dir_bytes(&gen_dir);
    let archive_bytes: u64 = blobs.iter().map(|b| fs::metadata(b).unwrap().len()).sum();

    let mut rows = Vec::new();
    rows.extend(key_rows(&s, &repo, &sha, &cache, &tbuild(&[]), &recipe_arg));
    rows.extend(tool_rows(&s, &repo, &sha, &cache, &tbuild(&[])));

    // Pack: every target's files, tbuild's encoder (in a child for its RSS) vs tar | zstd.
    let packs = w.join("packs");
    let pack_t = repeat(s.runs, || clean(&packs), || run(Command::new(exe()).args(["pack"]).arg(&gen_dir).arg(&packs)));
    let pack_b = repeat(
        s.runs,
        || clean(&packs),
        || {
            let script = "for t in \"$1\"/*/; do n=$(basename \"$t\"); tar -cf - -C \"$t\" . | zstd -3 -T0 -q -o \"$2/$n.tar.zst\"; done";
            run(Command::new("sh").args(["-c", script, "sh"]).arg(&gen_dir).arg(&packs))
        },
    );
    rows.push(ratio_row("pack (all targets)", pack_t, "tar -c | zstd -3 -T0", pack_b, 1.25, "<= 1.25 (>= 0.8x speed)"));
    let _ = fs::remove_dir_all(&packs);

    // Unpack the stored archives: verify + extract vs zstd -d | tar -x of the same bytes.
    let dest = w.join("unpacked");
    let mut unpack_cmd = Command::new(exe());
    unpack_cmd.arg("unpack").arg(cache.join("v1/blobs")).arg(&dest);
    let unpack_t = repeat(s.runs, || clean(&dest), || run(&mut unpack_cmd));
    let unpack_script = "i=0; for a in $(find \"$1\" -name '*.tar.zst' | sort); do i=$((i+1)); mkdir -p \"$2/$i\"; zstd -d -q -c \"$a\" | tar -xf - -C \"$2/$i\"; done";
    let unpack_base =
        || run(Command::new("sh").args(["-c", unpack_script, "sh"]).arg(cache.join("v1/blobs")).arg(&dest));
    let unpack_b = repeat(s.runs, || clean(&dest), unpack_base);
    rows.push(ratio_row(
        "unpack (all archives)",
        unpack_t,
        "zstd -d | tar -x",
        unpack_b,
        1.11,
        "<= 1.11 (>= 0.9x speed)",
    ));
    let _ = fs::remove_dir_all(&dest);

    // A full hit end to end, and a no-op repeat, against the unpack baseline.
    let out = w.join("out");
    let hit = repeat(s.runs, || clean(&out), || run(&mut core(&out, &[])));
    rows.push(ratio_row("core: full hit (copy)", hit, "zstd -d | tar -x", unpack_b, 1.2, "<= 1.2"));
    for mode in link_modes(&s.tbuild) {
        let first = run(&mut core(&out, &["--link-mode", &mode]));
        let _ = first; // fills the store's tree once
        let sample = repeat(s.runs, || clean(&out), || run(&mut core(&out, &["--link-mode", &mode])));
        let name: &'static str = Box::leak(format!("core: full hit ({mode})").into_boxed_str());
        rows.push(ratio_row(name, sample, "zstd -d | tar -x", unpack_b, 1.2, "<= 1.2"));
    }
    clean(&out);
    run(&mut core(&out, &[]));
    let noop = repeat(s.runs, || {}, || run(&mut core(&out, &[])));
    rows.push(absolute_row("core: no-op repeat", noop, 200.0));

    // What `key --range` costs over the generated history.
    let commits = s.history.clamp(1, 1000);
    let from = Command::new("git").args(["rev-parse", &format!("HEAD~{commits}")]).current_dir(&repo).output().unwrap();
    let range = format!("{}..{sha}", String::from_utf8_lossy(&from.stdout).trim());
    let mut range_cmd = tbuild(&["key", "--repo", &repo_arg, "--recipe", &recipe_arg, "--offline", "--stats"]);
    range_cmd.args(["--range", &range]);
    let ranged = repeat(s.runs.min(3), || {}, || run(&mut range_cmd));
    rows.push(Row {
        name: Box::leak(format!("key --range ({commits} commits)").into_boxed_str()),
        tbuild: ranged,
        baseline: None,
        target: "seconds for hundreds".into(),
        met: None,
    });

    println!();
    println!(
        "tasker-core-sized run: scale {}, {} runs each (median), {} MiB of artifacts in {} archives of {} MiB",
        s.scale,
        s.runs,
        artifact_bytes >> 20,
        blobs.len(),
        archive_bytes >> 20
    );
    measure::print(&rows);
    if let Some(core) = real_core {
        print_core(core.rows());
    }
}

/// The real-tasker-core rows and its rebuild-rate table.
fn print_core((rows, table): (Vec<Row>, String)) {
    println!();
    println!("real tasker-core (TBUILD_BENCH_CORE), load average {}", load_average());
    measure::print(&rows);
    println!();
    println!("rebuild rate, `key --range --stats` over the last 100 mainline commits:");
    println!("{table}");
}

fn load_average() -> String {
    fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// Key rows: cold (memo file removed before each run) and warm, vs git ls-tree + b3sum.
fn key_rows(s: &Settings, repo: &Path, sha: &str, cache: &Path, base: &Command, recipe: &str) -> Vec<Row> {
    let key = || {
        let mut cmd = Command::new(base.get_program());
        cmd.args(base.get_args()).envs(base.get_envs().filter_map(|(k, v)| Some((k, v?))));
        cmd.args(["key", "--repo", repo.to_str().unwrap(), "--sha", sha, "--recipe", recipe, "--offline"]);
        cmd
    };
    // The input files, for the baseline: from `key -v --json`.
    let out = {
        let mut cmd = key();
        cmd.args(["-v", "--json"]);
        cmd.output().expect("tbuild key")
    };
    assert!(out.status.success(), "tbuild key: {}", String::from_utf8_lossy(&out.stderr));
    let reports: serde_json::Value = serde_json::from_slice(&out.stdout).expect("key --json");
    let mut files: BTreeMap<String, ()> = BTreeMap::new();
    for report in reports.as_array().unwrap() {
        for input in report["files"].as_array().unwrap() {
            if input["mode"].as_u64() != Some(0o120000) {
                files.insert(input["path"].as_str().unwrap().to_string(), ());
            }
        }
    }
    eprintln!("bench: {} distinct input files across targets", files.len());
    let baseline = || {
        let hasher = match &s.b3sum {
            Some(b3sum) => b3sum.to_string_lossy().into_owned(),
            None => format!("{} b3sum", exe().display()),
        };
        let script = format!("git ls-tree -r {sha} >/dev/null && {hasher} -- \"$@\" >/dev/null");
        let mut cmd = Command::new("sh");
        cmd.args(["-c", &script, "sh"]).args(files.keys()).current_dir(repo);
        run(&mut cmd)
    };
    let memo = cache.join("v1/memo/git-blob-blake3.bin");
    let base_name = if s.b3sum.is_some() { "git ls-tree + b3sum" } else { "git ls-tree + blake3 (crate)" };
    let base = repeat(s.runs, || {}, baseline);
    let cold = repeat(s.runs, || drop(fs::remove_file(&memo)), || run(&mut key()));
    let warm = repeat(s.runs, || {}, || run(&mut key()));
    let mut rows = vec![ratio_row("key: cold memo", cold, base_name, base, f64::MAX, "< 150 ms")];
    rows[0].met = Some(measure::ms(cold.wall) < 150.0);
    let mut warm_row = ratio_row("key: warm memo", warm, base_name, base, f64::MAX, "< 30 ms");
    warm_row.met = Some(measure::ms(warm.wall) < 30.0);
    rows.push(warm_row);
    rows
}

/// The real recipe's tools per kind (cargo/rustc, plus what `Kind` and the built-in
/// recipe's `tools` add): the synthetic targets declare them, so a key probes what a key of
/// tasker-core probes. Tools not on PATH are left out (and named), since a key refuses them.
const REAL_TOOLS: [(&str, &[&str]); 4] = [
    ("tasker-server", &["cargo", "rustc", "clang", "mold", "protoc"]),
    ("ruby", &["cargo", "rustc", "ruby", "rake", "bundle", "clang", "mold", "protoc"]),
    ("python", &["cargo", "rustc", "python3", "maturin", "clang", "mold", "protoc"]),
    ("typescript", &["cargo", "rustc", "bun", "clang", "mold", "protoc"]),
];

/// Key rows with realistic toolchain probing: warm (the toolchain memo holds every probe) and
/// with the toolchain memo deleted before each run (every tool probed as a subprocess).
fn tool_rows(s: &Settings, repo: &Path, sha: &str, cache: &Path, base: &Command) -> Vec<Row> {
    let on_path = |tool: &str| {
        std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
    };
    let mut text = fs::read_to_string(s.work.join("bench-recipe.toml")).expect("the bench recipe");
    let mut missing = std::collections::BTreeSet::new();
    for (target, tools) in REAL_TOOLS {
        let (found, absent): (Vec<&str>, Vec<&str>) = tools.iter().copied().partition(|t| on_path(t));
        missing.extend(absent);
        let header = format!("name = \"{target}\"\n");
        let list = found.iter().map(|t| format!("\"{t}\"")).collect::<Vec<_>>().join(", ");
        text = text.replacen(&header, &format!("{header}tools = [{list}]\n"), 1);
    }
    if !missing.is_empty() {
        eprintln!("bench: not on PATH, left out of the real-tools rows: {missing:?}");
    }
    let recipe = s.work.join("bench-recipe-tools.toml");
    fs::write(&recipe, text).expect("write the tools recipe");
    let key = || {
        let mut cmd = Command::new(base.get_program());
        cmd.args(base.get_args()).envs(base.get_envs().filter_map(|(k, v)| Some((k, v?))));
        cmd.args(["key", "--repo", repo.to_str().unwrap(), "--sha", sha, "--offline", "--recipe"]).arg(&recipe);
        cmd
    };
    let tool_memo = cache.join("v1/memo/toolchains.json");
    run(&mut key());
    let warm = repeat(s.runs, || {}, || run(&mut key()));
    let probed = repeat(s.runs, || drop(fs::remove_file(&tool_memo)), || run(&mut key()));
    vec![
        absolute_row("key: warm, real tools", warm, 50.0),
        Row {
            name: "key: tool memo deleted",
            tbuild: probed,
            baseline: None,
            target: "(probes cost)".into(),
            met: None,
        },
    ]
}

fn ratio_row(name: &'static str, t: Sample, bname: &'static str, b: Sample, max: f64, target: &str) -> Row {
    let ratio = measure::ms(t.wall) / measure::ms(b.wall).max(0.001);
    Row { name, tbuild: t, baseline: Some((bname, b)), target: target.into(), met: Some(ratio <= max) }
}

fn absolute_row(name: &'static str, t: Sample, max_ms: f64) -> Row {
    Row {
        name,
        tbuild: t,
        baseline: None,
        target: format!("< {max_ms:.0} ms"),
        met: Some(measure::ms(t.wall) < max_ms),
    }
}

/// `runs` samples of `measure`, each after `prepare` (not timed); their median.
fn repeat(runs: usize, mut prepare: impl FnMut(), mut measure: impl FnMut() -> Sample) -> Sample {
    summarise(
        (0..runs)
            .map(|_| {
                prepare();
                measure()
            })
            .collect(),
    )
}

fn clean(dir: &Path) {
    let _ = fs::remove_dir_all(dir);
    fs::create_dir_all(dir).unwrap();
}

fn exe() -> PathBuf {
    std::env::current_exe().expect("own path")
}

/// The link modes this tbuild supports besides copy (none before `--link-mode` existed).
fn link_modes(tbuild: &Path) -> Vec<String> {
    let help = Command::new(tbuild).args(["core", "--help"]).output().map(|o| o.stdout).unwrap_or_default();
    if String::from_utf8_lossy(&help).contains("--link-mode") { vec!["hardlink".into()] } else { vec![] }
}

fn archives(cache: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for shard in fs::read_dir(cache.join("v1/blobs")).unwrap().flatten() {
        for blob in fs::read_dir(shard.path()).unwrap().flatten() {
            found.push(blob.path());
        }
    }
    found.sort();
    found
}

fn dir_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    for entry in fs::read_dir(dir).unwrap().flatten() {
        let meta = fs::symlink_metadata(entry.path()).unwrap();
        total += if meta.is_dir() { dir_bytes(&entry.path()) } else { meta.len() };
    }
    total
}

/// Command-kind targets that "build" by copying the synthetic artifacts; the cargo graph
/// still decides their inputs, as the built-in recipe's do for tasker-core.
fn recipe_text(gen_dir: &Path) -> String {
    let targets = [
        ("tasker-server", "tasker-core-binaries", "tasker-orchestration"),
        ("ruby", "tasker-core-ruby", "tasker-rb"),
        ("python", "tasker-core-python", "tasker-py"),
        ("typescript", "tasker-core-typescript", "tasker-ts"),
    ];
    let mut text = String::from("name = \"synthetic tasker-core\"\nglobal_inputs = [\"config/**\", \"proto/**\"]\n");
    for (name, dir, package) in targets {
        let src = gen_dir.join(name);
        text.push_str(&format!(
            "\n[[target]]\nname = \"{name}\"\nkind = \"command\"\nartifact_dir = \"{dir}\"\npackages = [\"{package}\"]\n\
             commands = [\"rm -rf .bench-{name} && cp -R '{}' .bench-{name}\"]\n[[target.output]]\npath = \".bench-{name}/*\"\n",
            src.display()
        ));
    }
    text
}

/// `harness pack SRC OUT`: packs each dir under SRC into OUT/<name>.tar.zst with tbuild's
/// packer (deterministic tar, zstd -3 multithreaded, file and archive digests).
fn pack(src: &Path, out: &Path) {
    fs::create_dir_all(out).unwrap();
    let mut targets: Vec<PathBuf> = fs::read_dir(src).unwrap().flatten().map(|e| e.path()).collect();
    targets.sort();
    for target in targets {
        let mut files = BTreeMap::new();
        collect(&target, &target, &mut files);
        let dest = out.join(format!("{}.tar.zst", target.file_name().unwrap().to_string_lossy()));
        let file = tbuild::cache::AtomicFile::create(out, &dest).unwrap();
        // The archive is complete once pack returns. It is not committed (no fsync, the
        // temp file is dropped): the baseline pipeline does not sync either.
        let (_packed, file) = tbuild::cache::pack(&files, file).unwrap();
        drop(file);
    }
}

fn collect(root: &Path, dir: &Path, files: &mut BTreeMap<String, PathBuf>) {
    for entry in fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if entry.file_type().unwrap().is_dir() {
            collect(root, &path, files);
        } else {
            files.insert(path.strip_prefix(root).unwrap().to_string_lossy().into_owned(), path);
        }
    }
}

/// `harness unpack BLOBS DEST`: verifies and extracts every archive under BLOBS (named by
/// their digest, as in the cache) into DEST/<n>/, as a cache hit does.
fn unpack(blobs: &Path, dest: &Path) {
    for (i, archive) in archives(blobs.parent().unwrap().parent().unwrap()).iter().enumerate() {
        let digest = archive.file_name().unwrap().to_string_lossy().trim_end_matches(".tar.zst").to_string();
        let into = dest.join((i + 1).to_string());
        fs::create_dir_all(&into).unwrap();
        tbuild::cache::unpack(archive, Some(&digest), &into, tbuild::cache::UnpackLimits::UNBOUNDED).unwrap();
    }
}

/// `harness b3sum FILE...`: what `b3sum` prints, with the blake3 crate (when b3sum is not
/// installed): one file after another, each read in full.
fn b3sum(files: &[String]) {
    use std::io::Write;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    for file in files.iter().filter(|f| *f != "--") {
        let mut hasher = blake3::Hasher::new();
        hasher.update_reader(fs::File::open(file).unwrap()).unwrap();
        writeln!(out, "{}  {file}", hasher.finalize().to_hex()).unwrap();
    }
}
