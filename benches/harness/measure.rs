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

/// Runs `cmd` to completion; panics with its stderr if it fails (a benchmark of a failing
/// command measures nothing).
pub fn run(cmd: &mut Command) -> Sample {
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
        "| {:<28} | {:>10} | {:>9} | {:<26} | {:>11} | {:>6} | {:<28} |",
        "measurement", "tbuild ms", "rss MiB", "baseline", "baseline ms", "ratio", "target"
    );
    println!(
        "|{}|",
        ["-".repeat(30), "-".repeat(12), "-".repeat(11), "-".repeat(28), "-".repeat(13), "-".repeat(8), "-".repeat(30)]
            .join("|")
    );
    for row in rows {
        let (bname, bms, ratio) = match row.baseline {
            Some((name, b)) => (
                name.to_string(),
                format!("{:.0}", ms(b.wall)),
                format!("{:.2}", ms(row.tbuild.wall) / ms(b.wall).max(0.001)),
            ),
            None => ("-".into(), "-".into(), "-".into()),
        };
        let verdict = match row.met {
            Some(true) => "met",
            Some(false) => "MISSED",
            None => "",
        };
        println!(
            "| {:<28} | {:>10.0} | {:>9.1} | {:<26} | {:>11} | {:>6} | {:<28} |",
            row.name,
            ms(row.tbuild.wall),
            row.tbuild.max_rss_kb as f64 / 1024.0,
            bname,
            bms,
            ratio,
            format!("{} {verdict}", row.target).trim()
        );
    }
}
