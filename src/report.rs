//! What the user sees while tbuild runs: an indicatif line per target with its phase and the
//! time spent in that phase on a terminal, plain log lines on stderr when it is not a terminal
//! or `CI` is set (CI logs keep every line; spinners would be noise there). Results go to
//! stdout (`--json`) or stderr.
//!
//! Contract of the terminal display: a target's line shows its current phase until the target
//! is done; then its final line (status word, its own durations, output and archive sizes) is
//! printed above the live lines at once, so finished targets scroll up in the order they
//! finished while the others keep building. The run's summary ([`Reporter::summary`]) comes
//! after every target's final line. Status words, warnings and errors are coloured when stderr
//! is a terminal that takes colour (not under `NO_COLOR`, not `TERM=dumb`), in both modes.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Duration;

use console::Style;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use crate::source::FetchProgress;
use crate::tools::timings::Timeline;
pub use crate::units::human_bytes;

/// What a target is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Hash,
    Restore,
    Queued,
    /// Another tbuild process holds the target's key lock (it is building the same key).
    Waiting,
    /// The build's cargo waits for another cargo's lock on the shared target dir.
    CargoLock,
    Build,
    Pack,
}

impl Phase {
    /// The phase's name in `--timings` pictures.
    fn timeline_name(self) -> &'static str {
        match self {
            Phase::Hash => "hash",
            Phase::Restore => "restore",
            Phase::Queued => "queued",
            Phase::Waiting => "waiting",
            Phase::CargoLock => "cargo-lock",
            Phase::Build => "build",
            Phase::Pack => "pack",
        }
    }

    /// What the progress line says.
    fn label(self) -> &'static str {
        match self {
            Phase::Waiting => "waiting for another tbuild building it",
            Phase::CargoLock => "waiting for cargo's build lock",
            other => other.timeline_name(),
        }
    }
}

/// How a target ended; the word that starts its final line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Built,
    Restored,
    /// `--out` already holds the target's outputs, unchanged: nothing to restore.
    InPlace,
    Failed,
    /// `tbuild restore`: not in any cache, nothing built.
    Missing,
}

impl Outcome {
    fn word(self) -> &'static str {
        match self {
            Outcome::Built => "built",
            Outcome::Restored => "restored",
            Outcome::InPlace => "already",
            Outcome::Failed => "FAILED",
            Outcome::Missing => "not in the cache",
        }
    }
}

/// Whether stderr gets colour: a terminal (console's check: also `TERM` not `dumb`) and
/// `NO_COLOR` unset. `NO_COLOR` wins even over `CLICOLOR_FORCE`, which console would honour.
/// The one test for everything tbuild writes to stderr: messages, -v diagnostics, errors.
pub fn colour_on_stderr() -> bool {
    std::env::var_os("NO_COLOR").is_none() && console::colors_enabled_stderr()
}

/// Colours for stderr, or none: decided once, by [`colour_on_stderr`].
#[derive(Debug, Clone, Copy)]
pub struct Palette {
    on: bool,
}

impl Palette {
    pub fn for_stderr() -> Palette {
        Palette { on: colour_on_stderr() }
    }

    fn paint(self, style: Style, text: &str) -> String {
        style.force_styling(self.on).apply_to(text).to_string()
    }

    /// `warning:`, in yellow.
    pub fn warning(self) -> String {
        self.paint(Style::new().yellow().bold(), "warning:")
    }

    /// `error:`, in red.
    pub fn error(self) -> String {
        self.paint(Style::new().red().bold(), "error:")
    }

    fn outcome(self, outcome: Outcome) -> String {
        let style = match outcome {
            Outcome::Built => Style::new().green().bold(),
            Outcome::Restored | Outcome::InPlace => Style::new().cyan().bold(),
            Outcome::Failed => Style::new().red().bold(),
            Outcome::Missing => Style::new().yellow().bold(),
        };
        self.paint(style, outcome.word())
    }
}

/// The live lines of the terminal display, one per target not yet done.
struct Bars {
    multi: MultiProgress,
    rows: Mutex<HashMap<String, ProgressBar>>,
}

pub struct Reporter {
    bars: Option<Bars>,
    quiet: bool,
    palette: Palette,
    /// Every phase change, for `--timings`.
    timeline: Timeline,
}

/// Width of the target-name column, so phases and outcomes line up.
const NAME_WIDTH: usize = 16;

impl Reporter {
    /// Progress bars when stderr is a terminal and `CI` is unset, plain lines otherwise.
    pub fn new(quiet: bool) -> Reporter {
        let fancy = !quiet && std::io::stderr().is_terminal() && std::env::var_os("CI").is_none();
        let bars = fancy.then(|| Bars { multi: MultiProgress::new(), rows: Mutex::new(HashMap::new()) });
        Reporter { bars, quiet, palette: Palette::for_stderr(), timeline: Timeline::new() }
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

    /// Prints a line above the live lines (or plainly).
    fn line(&self, line: String) {
        match &self.bars {
            Some(bars) => {
                let _ = bars.multi.println(line);
            }
            None => eprintln!("{line}"),
        }
    }

    /// A line of progress about the run as a whole.
    pub fn info(&self, message: &str) {
        if !self.quiet {
            self.line(format!("tbuild: {message}"));
        }
    }

    /// The run's last line: what it did in total. Printed after every target's final line.
    pub fn summary(&self, message: &str) {
        if let Some(bars) = &self.bars {
            // Targets that never reached an outcome (none should) end where they are.
            for (_, bar) in bars.rows.lock().expect("reporter lock").drain() {
                bar.abandon();
            }
        }
        self.info(message);
    }

    /// A warning is printed even when quiet: it says something was dropped or repaired.
    pub fn warn(&self, message: &str) {
        self.line(format!("tbuild: {} {message}", self.palette.warning()));
    }

    /// Moves `target` to a new phase; its line's clock restarts. Plain mode prints only the
    /// phases that take time.
    pub fn phase(&self, target: &str, phase: Phase) {
        self.timeline.start(target, phase.timeline_name());
        match &self.bars {
            Some(bars) => {
                let mut rows = bars.rows.lock().expect("reporter lock");
                let bar = rows.entry(target.to_string()).or_insert_with(|| {
                    let bar = bars.multi.add(ProgressBar::new_spinner());
                    let template = format!("{{spinner}} {{prefix:>{NAME_WIDTH}}}  {{msg}} {{elapsed}}");
                    bar.set_style(ProgressStyle::with_template(&template).expect("valid template"));
                    bar.set_prefix(target.to_string());
                    bar.enable_steady_tick(Duration::from_millis(120));
                    bar
                });
                bar.reset_elapsed();
                bar.set_message(phase.label());
            }
            None if !self.quiet && !matches!(phase, Phase::Hash | Phase::Restore | Phase::Queued) => {
                eprintln!("tbuild: {target}: {}", phase.label())
            }
            None => {}
        }
    }

    /// Ends `target` with its outcome: its final line, `<word> <detail>`, replaces its live
    /// line at once (terminal) or is printed (plain).
    pub fn done(&self, target: &str, outcome: Outcome, detail: &str) {
        let plain = if detail.is_empty() { outcome.word().to_string() } else { format!("{} {detail}", outcome.word()) };
        self.timeline.finish(target, &plain);
        let word = self.palette.outcome(outcome);
        let coloured = if detail.is_empty() { word } else { format!("{word} {detail}") };
        match &self.bars {
            Some(bars) => {
                if let Some(bar) = bars.rows.lock().expect("reporter lock").remove(target) {
                    bar.finish_and_clear();
                    bars.multi.remove(&bar);
                }
                let _ = bars.multi.println(format!("  {target:>NAME_WIDTH$}  {coloured}"));
            }
            None if !self.quiet => eprintln!("tbuild: {target}: {coloured}"),
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
            Some(bars) => {
                let bar = bar.get_or_insert_with(|| {
                    let bar = bars.multi.add(ProgressBar::new(0));
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

/// `40 s`, `12 min`, `3 h`, `5 days`: how long ago, roughly.
pub fn human_age(age: Duration) -> String {
    let secs = age.as_secs();
    match secs {
        0..120 => format!("{secs} s"),
        120..7200 => format!("{} min", secs / 60),
        7200..172_800 => format!("{} h", secs / 3600),
        _ => format!("{} days", secs / 86_400),
    }
}
