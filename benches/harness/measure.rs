//! Timing and peak memory of child processes, medians, and the results table.

use std::process::Command;
use std::time::{Duration, Instant};

/// One run of a child process: wall time and its peak resident set (its own and its
/// descendants', as `wait4` reports it).
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub wall: Duration,
    pub max_rss_kb: u64,
}

/// GNU time, when installed (Debian package `time`): see [`run`].
const GNU_TIME: &str = "/usr/bin/time";

/// Runs `cmd` to completion; panics with its stderr if it fails (a benchmark of a failing
/// command measures nothing).
///
/// Peak RSS: Linux counts into a process's `ru_maxrss` the memory of the process it was
/// forked from, as it was at `exec` (the harness itself, tens of MiB). So when GNU time is
/// installed, the command runs under it (a small process, forking a real child) and its `%M`
/// is the figure; otherwise `wait4`'s, which is then an upper bound.
pub fn run(cmd: &mut Command) -> Sample {
    if std::path::Path::new(GNU_TIME).exists() {
        let report = tempfile::NamedTempFile::new().expect("a temp file");
        let mut timed = Command::new(GNU_TIME);
        timed.args(["-f", "%M", "-o"]).arg(report.path()).arg(cmd.get_program()).args(cmd.get_args());
        for (name, value) in cmd.get_envs() {
            match value {
                Some(value) => timed.env(name, value),
                None => timed.env_remove(name),
            };
        }
        if let Some(dir) = cmd.get_current_dir() {
            timed.current_dir(dir);
        }
        let sample = run_direct(&mut timed);
        let text = std::fs::read_to_string(report.path()).unwrap_or_default();
        let kb = text.lines().rev().find_map(|l| l.trim().parse::<u64>().ok()).unwrap_or(sample.max_rss_kb);
        return Sample { wall: sample.wall, max_rss_kb: kb };
    }
    run_direct(cmd)
}

fn run_direct(cmd: &mut Command) -> Sample {
    cmd.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::piped());
    let started = Instant::now();
    // Reaped by wait4 below, which also gives the child's rusage (std's wait does not).
    #[allow(clippy::zombie_processes)]
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    let stderr = child.stderr.take();
    // Drain stderr on a thread so a chatty child cannot block on a full pipe.
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        if let Some(mut s) = stderr {
            let _ = std::io::Read::read_to_string(&mut s, &mut text);
        }
        text
    });
    let mut status = 0;
    // SAFETY: rusage is plain old data; wait4 fills it for the child we spawned.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = child.id() as libc::pid_t;
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let wall = started.elapsed();
    let text = reader.join().unwrap_or_default();
    assert_eq!(waited, pid, "wait4 failed");
    let ok = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
    assert!(ok, "{cmd:?} failed (status {status}):\n{text}");
    Sample { wall, max_rss_kb: usage.ru_maxrss as u64 }
}

/// Median wall time and the largest peak RSS of `samples`.
pub fn summarise(mut samples: Vec<Sample>) -> Sample {
    samples.sort_by_key(|s| s.wall);
    let max_rss_kb = samples.iter().map(|s| s.max_rss_kb).max().unwrap_or(0);
    Sample { wall: samples[samples.len() / 2].wall, max_rss_kb }
}

/// One line of the table: tbuild against its baseline in the same run.
pub struct Row {
    pub name: &'static str,
    pub tbuild: Sample,
    pub baseline: Option<(&'static str, Sample)>,
    /// The target, as text, and whether it is met.
    pub target: String,
    pub met: Option<bool>,
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

pub fn print(rows: &[Row]) {
    println!(
        "| {:<28} | {:>10} | {:>9} | {:<26} | {:>11} | {:>9} | {:>6} | {:<28} |",
        "measurement", "tbuild ms", "rss MiB", "baseline", "baseline ms", "rss MiB", "ratio", "target"
    );
    println!(
        "|{}|",
        [
            "-".repeat(30),
            "-".repeat(12),
            "-".repeat(11),
            "-".repeat(28),
            "-".repeat(13),
            "-".repeat(11),
            "-".repeat(8),
            "-".repeat(30)
        ]
        .join("|")
    );
    for row in rows {
        let (bname, bms, brss, ratio) = match row.baseline {
            Some((name, b)) => (
                name.to_string(),
                format!("{:.0}", ms(b.wall)),
                format!("{:.1}", b.max_rss_kb as f64 / 1024.0),
                format!("{:.2}", ms(row.tbuild.wall) / ms(b.wall).max(0.001)),
            ),
            None => ("-".into(), "-".into(), "-".into(), "-".into()),
        };
        let verdict = match row.met {
            Some(true) => "met",
            Some(false) => "MISSED",
            None => "",
        };
        println!(
            "| {:<28} | {:>10.0} | {:>9.1} | {:<26} | {:>11} | {:>9} | {:>6} | {:<28} |",
            row.name,
            ms(row.tbuild.wall),
            row.tbuild.max_rss_kb as f64 / 1024.0,
            bname,
            bms,
            brss,
            ratio,
            format!("{} {verdict}", row.target).trim()
        );
    }
}
