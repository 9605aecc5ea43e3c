//! What the user sees while tbuild runs: an indicatif line per target with its phase on a
//! terminal, plain log lines on stderr when it is not a terminal or `CI` is set (CI logs keep
//! every line; spinners would be noise there). Results go to stdout (`--json`) or stderr.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use crate::source::FetchProgress;
use crate::timings::Timeline;

/// What a target is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Hash,
    Restore,
    Queued,
    Waiting,
    Build,
    Pack,
}

pub struct Reporter {
    bars: Option<(MultiProgress, Mutex<HashMap<String, ProgressBar>>)>,
    quiet: bool,
    /// Every phase change, for `--timings`.
    timeline: Timeline,
}

impl Reporter {
    /// Progress bars when stderr is a terminal and `CI` is unset, plain lines otherwise.
    pub fn new(quiet: bool) -> Reporter {
        let fancy = !quiet && std::io::stderr().is_terminal() && std::env::var_os("CI").is_none();
        let bars = fancy.then(|| (MultiProgress::new(), Mutex::new(HashMap::new())));
        Reporter { bars, quiet, timeline: Timeline::new() }
    }

    /// The phases of every target so far (see `--timings`).
    pub fn timeline(&self) -> &Timeline {
        &self.timeline
    }

    /// `target` leaves its phase without entering another (e.g. a lookup missed and the
    /// target waits for the build stage), so the timeline does not stretch the phase.
    pub fn phase_ended(&self, target: &str) {
        self.timeline.end(target);
    }

    /// A line of progress about the run as a whole.
    pub fn info(&self, message: &str) {
        if self.quiet {
            return;
        }
        match &self.bars {
            Some((multi, _)) => {
                let _ = multi.println(format!("tbuild: {message}"));
            }
            None => eprintln!("tbuild: {message}"),
        }
    }

    /// A warning is printed even when quiet: it says something was dropped or repaired.
    pub fn warn(&self, message: &str) {
        match &self.bars {
            Some((multi, _)) => {
                let _ = multi.println(format!("tbuild: warning: {message}"));
            }
            None => eprintln!("tbuild: warning: {message}"),
        }
    }

    /// Moves `target` to a new phase. Plain mode prints only the phases that take time.
    pub fn phase(&self, target: &str, phase: Phase) {
        // The variant's name: a phase added to the enum shows up in the timeline as it is.
        self.timeline.start(target, &format!("{phase:?}").to_ascii_lowercase());
        let phase = match phase {
            Phase::Hash => "hash",
            Phase::Restore => "restore",
            Phase::Queued => "queued",
            Phase::Waiting => "waiting for another tbuild building it",
            Phase::Build => "build",
            Phase::Pack => "pack",
        };
        match &self.bars {
            Some((multi, bars)) => {
                let mut bars = bars.lock().expect("reporter lock");
                let bar = bars.entry(target.to_string()).or_insert_with(|| {
                    let bar = multi.add(ProgressBar::new_spinner());
                    bar.set_style(
                        ProgressStyle::with_template("{spinner} {prefix:>16} {wide_msg} {elapsed:>4}")
                            .expect("valid template"),
                    );
                    bar.set_prefix(target.to_string());
                    bar.enable_steady_tick(Duration::from_millis(120));
                    bar
                });
                bar.set_message(phase.to_string());
            }
            None if !self.quiet && !matches!(phase, "hash" | "restore" | "queued") => {
                eprintln!("tbuild: {target}: {phase}")
            }
            None => {}
        }
    }

    /// Ends `target`'s line with its outcome.
    pub fn done(&self, target: &str, outcome: &str) {
        self.timeline.finish(target, outcome);
        match &self.bars {
            Some((_, bars)) => match bars.lock().expect("reporter lock").get(target) {
                Some(bar) => bar.finish_with_message(outcome.to_string()),
                None => self.info(&format!("{target}: {outcome}")),
            },
            None if !self.quiet => eprintln!("tbuild: {target}: {outcome}"),
            None => {}
        }
    }

    /// A progress callback for a git fetch; the mirror calls it once with zeros when a fetch
    /// starts, so nothing is printed when no fetch is needed.
    pub fn fetch_progress(&self, url: &str) -> impl FnMut(FetchProgress) + '_ {
        let url = url.to_string();
        let mut bar: Option<ProgressBar> = None;
        let mut last_quarter = None;
        move |p: FetchProgress| match &self.bars {
            Some((multi, _)) => {
                let bar = bar.get_or_insert_with(|| {
                    let bar = multi.add(ProgressBar::new(0));
                    bar.set_style(
                        ProgressStyle::with_template("fetch {msg} [{bar:30}] {pos}/{len} objects {binary_bytes}")
                            .expect("valid template")
                            .progress_chars("=> "),
                    );
                    bar.set_message(url.clone());
                    bar
                });
                if p.finished {
                    bar.finish_and_clear();
                    return;
                }
                bar.set_length(p.total_objects as u64);
                bar.set_position(p.received_objects as u64);
            }
            None => {
                if p.finished {
                    last_quarter = None;
                    return;
                }
                if last_quarter.is_none() {
                    self.info(&format!("fetching {url}"));
                    last_quarter = Some(usize::MAX);
                }
                // Plain mode: a line per quarter so CI logs show progress without flooding.
                let quarter = (p.received_objects * 4).checked_div(p.total_objects).unwrap_or(0);
                if p.total_objects > 0 && last_quarter != Some(quarter) {
                    last_quarter = Some(quarter);
                    self.info(&format!(
                        "fetch: {}/{} objects, {} KiB",
                        p.received_objects,
                        p.total_objects,
                        p.received_bytes / 1024
                    ));
                }
            }
        }
    }
}

/// `12.3 s`, `850 ms`.
pub fn human_duration(duration: Duration) -> String {
    if duration.as_millis() < 1000 {
        format!("{} ms", duration.as_millis())
    } else {
        format!("{:.1} s", duration.as_secs_f64())
    }
}

/// `1.2 MiB`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 { format!("{bytes} B") } else { format!("{value:.1} {}", UNITS[unit]) }
}
