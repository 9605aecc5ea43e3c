//! Deterministic synthetic inputs of tasker-core's size: a git repository (a Cargo workspace
//! of about 4,400 files and 33 MB, about 2,900 of them build inputs of which two thirds are
//! small JSON files, 5 symlinks) and the artifacts its targets produce (a 127 MB debug
//! binary and a 160 MB native library of mixed entropy, a wheel, a `dist/` of small files).
//! Everything derives from one seed, so two runs measure the same bytes.

use std::fs;
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;
use std::process::Command;

/// SplitMix64: tiny, fast, and the same on every machine.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

const WORDS: &[&str] = &[
    "task",
    "step",
    "workflow",
    "orchestration",
    "worker",
    "queue",
    "message",
    "handler",
    "result",
    "state",
    "transition",
    "namespace",
    "template",
    "config",
    "registry",
    "client",
    "server",
    "event",
    "publish",
    "subscribe",
    "retry",
    "backoff",
    "error",
    "context",
    "payload",
    "schema",
    "version",
    "dependency",
    "graph",
    "execution",
    "batch",
    "claim",
    "visibility",
    "timeout",
    "health",
    "metrics",
    "span",
    "trace",
    "pool",
    "sqlx",
];

/// Text that compresses like source code: words from a small vocabulary in code-like lines.
fn text(rng: &mut Rng, size: usize, style: Style) -> Vec<u8> {
    let mut out = Vec::with_capacity(size + 128);
    let mut depth = 0usize;
    while out.len() < size {
        let word = |rng: &mut Rng| WORDS[rng.below(WORDS.len() as u64) as usize];
        match style {
            Style::Rust => {
                let line = match rng.below(6) {
                    0 => {
                        depth += 1;
                        format!("pub fn {}_{}(&self, {}: u64) -> Result<(), Error> {{", word(rng), word(rng), word(rng))
                    }
                    1 if depth > 0 => {
                        depth -= 1;
                        "}".to_string()
                    }
                    2 => format!("// {} {} {} the {}", word(rng), word(rng), word(rng), word(rng)),
                    _ => format!(
                        "let {}_{} = self.{}.{}({})?;",
                        word(rng),
                        rng.below(100),
                        word(rng),
                        word(rng),
                        rng.below(1000)
                    ),
                };
                out.extend_from_slice("    ".repeat(depth.min(4)).as_bytes());
                out.extend_from_slice(line.as_bytes());
                out.push(b'\n');
            }
            Style::Json => {
                let line = format!("  \"{}_{}\": \"{}-{}\",\n", word(rng), rng.below(50), word(rng), rng.below(10_000));
                out.extend_from_slice(line.as_bytes());
            }
            Style::Prose => {
                let line = format!("{} {} {} {} {}.\n", word(rng), word(rng), word(rng), word(rng), rng.below(99));
                out.extend_from_slice(line.as_bytes());
            }
        }
    }
    if let Style::Json = style {
        out.truncate(size.max(4) - 2);
        out.splice(0..0, b"{\n".iter().copied());
        out.extend_from_slice(b"\"\n}\n");
    }
    out
}

#[derive(Clone, Copy)]
enum Style {
    Rust,
    Json,
    Prose,
}

fn write(root: &Path, rel: &str, bytes: &[u8]) -> io::Result<()> {
    let path = root.join(rel);
    fs::create_dir_all(path.parent().expect("relative paths have a parent"))?;
    fs::write(path, bytes)
}

/// The workspace's crates and their path dependencies, shaped like tasker-core's.
pub const CRATES: &[(&str, &[&str], u32)] = &[
    // (name, path dependencies, share of the Rust sources in per-mille)
    ("tasker-shared", &[], 300),
    ("tasker-pgmq", &["tasker-shared"], 40),
    ("tasker-client", &["tasker-shared"], 80),
    ("tasker-orchestration", &["tasker-shared", "tasker-pgmq", "tasker-client"], 200),
    ("tasker-worker", &["tasker-shared", "tasker-pgmq", "tasker-client"], 150),
    ("tasker-ctl", &["tasker-client"], 60),
    ("tasker-rb", &["tasker-worker"], 60),
    ("tasker-py", &["tasker-worker"], 50),
    ("tasker-ts", &["tasker-worker"], 60),
];

/// Writes the repository at `dir` (a fresh dir) and commits it; then `history` commits that
/// each change one file, as a real history does. Returns the last commit's SHA.
pub fn repo(dir: &Path, seed: u64, history: usize) -> io::Result<String> {
    let mut rng = Rng::new(seed);
    fs::create_dir_all(dir)?;
    let members: Vec<String> = CRATES.iter().map(|(n, _, _)| format!("\"crates/{n}\"")).collect();
    write(
        dir,
        "Cargo.toml",
        format!("[workspace]\nresolver = \"2\"\nmembers = [{}]\n", members.join(", ")).as_bytes(),
    )?;
    write(dir, "Cargo.lock", &text(&mut rng, 120_000, Style::Prose))?;
    write(dir, ".gitignore", b"/target\n")?;
    write(dir, "README.md", &text(&mut rng, 20_000, Style::Prose))?;
    for (name, deps, _) in CRATES {
        let deps: String = deps.iter().map(|d| format!("{d} = {{ path = \"../{d}\" }}\n")).collect();
        let kind = if *name == "tasker-ctl" { "[[bin]]\nname = \"tasker-ctl\"\npath = \"src/main.rs\"\n" } else { "" };
        let manifest = format!(
            "[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n{kind}[dependencies]\n{deps}"
        );
        write(dir, &format!("crates/{name}/Cargo.toml"), manifest.as_bytes())?;
        write(dir, &format!("crates/{name}/src/lib.rs"), b"pub mod generated;\n")?;
        write(dir, &format!("crates/{name}/README.md"), &text(&mut rng, 6_000, Style::Prose))?;
    }
    write(dir, "crates/tasker-ctl/src/main.rs", b"fn main() {}\n")?;
    // Build inputs: ~970 Rust sources and ~1,930 small JSON files (task templates, configs).
    for i in 0..966 {
        let (name, ..) = pick_crate(&mut rng);
        let size = 2_000 + rng.below(12_000) as usize;
        write(dir, &format!("crates/{name}/src/generated/m{i:04}.rs"), &text(&mut rng, size, Style::Rust))?;
    }
    for i in 0..1_930 {
        let size = 300 + rng.below(1_800) as usize;
        let rel = if i % 4 == 0 {
            format!("config/tasker/{:02}/template-{i:04}.json", i % 23)
        } else {
            let (name, ..) = pick_crate(&mut rng);
            format!("crates/{name}/config/{:02}/c{i:04}.json", i % 17)
        };
        write(dir, &rel, &text(&mut rng, size, Style::Json))?;
    }
    write(dir, "proto/tasker.proto", &text(&mut rng, 8_000, Style::Prose))?;
    for i in 0..6 {
        write(dir, &format!("proto/v1/m{i}.proto"), &text(&mut rng, 3_000, Style::Prose))?;
    }
    // Not build inputs: tests, docs, benches, CI, a few binary assets (~22 MB together).
    for i in 0..1_440 {
        let (name, ..) = pick_crate(&mut rng);
        let (rel, style, size) = match i % 4 {
            0 => (format!("crates/{name}/tests/t{i:04}.rs"), Style::Rust, 4_000 + rng.below(16_000)),
            1 => (format!("docs/{:02}/d{i:04}.md", i % 31), Style::Prose, 3_000 + rng.below(20_000)),
            2 => (format!("crates/{name}/benches/b{i:04}.rs"), Style::Rust, 2_000 + rng.below(10_000)),
            _ => (format!("tests/fixtures/{:02}/f{i:04}.yaml", i % 19), Style::Prose, 1_000 + rng.below(8_000)),
        };
        write(dir, &rel, &text(&mut rng, size as usize, style))?;
    }
    for i in 0..12 {
        let mut blob = vec![0u8; 700_000 + rng.below(600_000) as usize];
        rng.fill(&mut blob);
        write(dir, &format!("docs/images/diagram-{i:02}.png"), &blob)?;
    }
    let script = dir.join("scripts/ci.sh");
    write(dir, "scripts/ci.sh", b"#!/bin/sh\nexec cargo test\n")?;
    fs::set_permissions(script, fs::Permissions::from_mode(0o755))?;
    // The 5 symlinks: proto/ into the crates that compile it, shared docs.
    for (link, target) in [
        ("crates/tasker-shared/proto", "../../proto"),
        ("crates/tasker-worker/proto", "../../proto"),
        ("crates/tasker-rb/README-core.md", "../../README.md"),
        ("crates/tasker-py/README-core.md", "../../README.md"),
        ("docs/current", "01"),
    ] {
        symlink(target, dir.join(link))?;
    }

    git(dir, &["init", "-q"])?;
    commit(dir, 0, "synthetic tasker-core")?;
    let inputs: Vec<String> = list_files(dir, "crates")?;
    for n in 0..history {
        let rel = &inputs[rng.below(inputs.len() as u64) as usize];
        let mut bytes = fs::read(dir.join(rel))?;
        bytes.extend_from_slice(format!("\n// change {n}\n").as_bytes());
        fs::write(dir.join(rel), bytes)?;
        commit(dir, n + 1, &format!("change {n}: {rel}"))?;
    }
    let sha = git(dir, &["rev-parse", "HEAD"])?;
    Ok(sha.trim().to_string())
}

fn pick_crate(rng: &mut Rng) -> (&'static str, &'static [&'static str], u32) {
    let mut roll = rng.below(1000) as u32;
    for c in CRATES {
        if roll < c.2 {
            return *c;
        }
        roll -= c.2;
    }
    CRATES[0]
}

/// Regular files under `dir/sub`, relative to `dir`, sorted.
fn list_files(dir: &Path, sub: &str) -> io::Result<Vec<String>> {
    let mut files = Vec::new();
    let mut pending = vec![dir.join(sub)];
    while let Some(d) = pending.pop() {
        for entry in fs::read_dir(&d)? {
            let entry = entry?;
            let kind = entry.file_type()?;
            if kind.is_dir() {
                pending.push(entry.path());
            } else if kind.is_file() {
                files.push(entry.path().strip_prefix(dir).expect("under dir").to_string_lossy().into_owned());
            }
        }
    }
    files.sort();
    Ok(files)
}

fn commit(dir: &Path, n: usize, message: &str) -> io::Result<()> {
    git(dir, &["add", "-A"])?;
    let when = format!("{} +0000", 1_704_067_200 + n * 3600);
    let out = Command::new("git")
        .args([
            "-c",
            "commit.gpgSign=false",
            "-c",
            "core.hooksPath=/dev/null",
            "commit",
            "-q",
            "--no-verify",
            "-m",
            message,
        ])
        .current_dir(dir)
        .env("GIT_AUTHOR_DATE", &when)
        .env("GIT_COMMITTER_DATE", &when)
        .output()?;
    check(out, "git commit")
}

fn git(dir: &Path, args: &[&str]) -> io::Result<String> {
    let out = Command::new("git").args(args).current_dir(dir).output()?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    check(out, &format!("git {args:?}"))?;
    Ok(stdout)
}

fn check(out: std::process::Output, what: &str) -> io::Result<()> {
    if out.status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!("{what} failed: {}", String::from_utf8_lossy(&out.stderr))))
    }
}

/// Writes each target's artifacts under `dir/<target>/` as they land in its artifact dir.
/// `scale` multiplies the big files' sizes (1.0 is tasker-core's).
pub fn artifacts(dir: &Path, seed: u64, scale: f64) -> io::Result<()> {
    let mut rng = Rng::new(seed ^ 0xA57);
    let mb = |n: f64| (n * scale * 1024.0 * 1024.0) as u64;
    mixed_entropy(&dir.join("tasker-server/tasker-server"), mb(127.0), &mut rng)?;
    fs::set_permissions(dir.join("tasker-server/tasker-server"), fs::Permissions::from_mode(0o755))?;
    mixed_entropy(&dir.join("ruby/lib/tasker_rb.so"), mb(160.0), &mut rng)?;
    let mut wheel = vec![0u8; mb(18.0) as usize];
    rng.fill(&mut wheel); // a wheel is a zip: already compressed
    write(dir, "python/wheels/tasker_py-0.1.0-cp311-cp311-manylinux_2_34_x86_64.whl", &wheel)?;
    for i in 0..320 {
        let size = 1_000 + rng.below(24_000) as usize;
        write(dir, &format!("typescript/dist/{:02}/chunk-{i:04}.js", i % 12), &text(&mut rng, size, Style::Prose))?;
    }
    write(dir, "typescript/package.json", b"{ \"name\": \"@tasker-systems/tasker\", \"version\": \"0.1.0\" }\n")?;
    Ok(())
}

/// A debug-binary-like file: runs of code-ish bytes, zero padding, string tables and
/// high-entropy sections, so zstd -3 gets a debug binary's ratio (about 3:1).
fn mixed_entropy(path: &Path, size: u64, rng: &mut Rng) -> io::Result<()> {
    fs::create_dir_all(path.parent().expect("has a parent"))?;
    let mut out = BufWriter::with_capacity(1 << 20, fs::File::create(path)?);
    let mut block = vec![0u8; 64 * 1024];
    let mut written = 0u64;
    while written < size {
        let n = (size - written).min(block.len() as u64) as usize;
        let block = &mut block[..n];
        match rng.below(10) {
            0..=1 => block.fill(0),
            2..=4 => rng.fill(block),
            5..=7 => {
                let strings = text(rng, n, Style::Rust);
                block.copy_from_slice(&strings[..n]);
            }
            _ => {
                // Code-like: a small alphabet of opcodes with random operands.
                for chunk in block.chunks_mut(8) {
                    let v = rng.next();
                    let ops = [0x48u8, 0x89, 0x8b, 0xe8, 0x0f, 0x1f, 0xc3, 0x55];
                    for (i, b) in chunk.iter_mut().enumerate() {
                        *b = if i % 2 == 0 { ops[((v >> (i * 3)) & 7) as usize] } else { (v >> (i * 8)) as u8 & 0x3f };
                    }
                }
            }
        }
        out.write_all(block)?;
        written += n as u64;
    }
    out.flush()
}
