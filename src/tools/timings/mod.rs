//! `tbuild core --timings FILE.html|FILE.svg`: when each target hashed, restored, built,
//! packed (and whatever phases later stages report), drawn as one row per target, like
//! `cargo build --timings`.
//!
//! The [`Timeline`] is fed by the reporter: a phase starts when the pipeline reports it and
//! lasts until the target's next phase, an explicit end, or its outcome. Phases are names,
//! not an enum, so a new stage gets a row segment (and a legend entry) without touching this
//! module; [`render`] knows the colours of the usual ones.

mod render;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::engine::publish::PublishError;

/// Phase intervals per target, in the order targets first appeared.
#[derive(Debug)]
pub struct Timeline {
    origin: Instant,
    rows: Mutex<Vec<Row>>,
}

/// One target's phases.
#[derive(Debug, Clone)]
pub struct Row {
    pub target: String,
    pub spans: Vec<Span>,
    /// How the target ended (`restored (...)`, `built in ...`, `FAILED`), if it did.
    pub outcome: Option<String>,
    open: Option<(String, Duration)>,
}

/// A phase from `start` to `end`, measured from the start of the run.
#[derive(Debug, Clone, PartialEq)]
pub struct Span {
    pub phase: String,
    pub start: Duration,
    pub end: Duration,
}

impl Default for Timeline {
    fn default() -> Self {
        Timeline::new()
    }
}

impl Timeline {
    pub fn new() -> Timeline {
        Timeline { origin: Instant::now(), rows: Mutex::new(Vec::new()) }
    }

    /// `target` enters `phase` now, leaving the phase it was in.
    pub fn start(&self, target: &str, phase: &str) {
        let now = self.origin.elapsed();
        self.with_row(target, |row| {
            row.close(now);
            row.open = Some((phase.to_string(), now));
        });
    }

    /// `target` leaves its phase and waits for nothing in particular (drawn as a gap).
    pub fn end(&self, target: &str) {
        let now = self.origin.elapsed();
        self.with_row(target, |row| row.close(now));
    }

    /// `target` is done; `outcome` labels its row.
    pub fn finish(&self, target: &str, outcome: &str) {
        let now = self.origin.elapsed();
        self.with_row(target, |row| {
            row.close(now);
            row.outcome = Some(outcome.to_string());
        });
    }

    /// The rows so far, phases still open ending now; and the time since the run started.
    pub fn snapshot(&self) -> (Vec<Row>, Duration) {
        let now = self.origin.elapsed();
        let mut rows = self.rows.lock().expect("timeline lock").clone();
        for row in &mut rows {
            row.close(now);
        }
        (rows, now)
    }

    fn with_row(&self, target: &str, f: impl FnOnce(&mut Row)) {
        let mut rows = self.rows.lock().expect("timeline lock");
        let index = match rows.iter().position(|r| r.target == target) {
            Some(index) => index,
            None => {
                rows.push(Row { target: target.to_string(), spans: Vec::new(), outcome: None, open: None });
                rows.len() - 1
            }
        };
        f(&mut rows[index]);
    }
}

impl Row {
    fn close(&mut self, now: Duration) {
        if let Some((phase, start)) = self.open.take() {
            self.spans.push(Span { phase, start, end: now });
        }
    }
}

/// The picture's format, from the file name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Html,
    Svg,
}

impl Format {
    pub fn of(path: &Path) -> Option<Format> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "html" | "htm" => Some(Format::Html),
            "svg" => Some(Format::Svg),
            _ => None,
        }
    }
}

/// clap's parser for `--timings`: the name must end in `.html`, `.htm` or `.svg`.
pub fn parse_path(text: &str) -> Result<PathBuf, String> {
    let path = PathBuf::from(text);
    match Format::of(&path) {
        Some(_) => Ok(path),
        None => Err(format!("{text:?} must end in .html or .svg (the format of the timings picture)")),
    }
}

/// Draws `timeline` and writes it to `path` atomically (temp file in the same dir, rename).
pub fn write(path: &Path, title: &str, timeline: &Timeline) -> Result<(), PublishError> {
    let (rows, total) = timeline.snapshot();
    let picture = match Format::of(path) {
        Some(Format::Svg) => render::svg(title, &rows, total),
        _ => render::html(title, &rows, total),
    };
    let io = |source| PublishError::Io { path: path.to_path_buf(), source };
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut temp = tempfile::Builder::new().prefix(".tbuild-timings-").tempfile_in(dir).map_err(io)?;
    temp.write_all(picture.as_bytes()).map_err(io)?;
    temp.as_file().sync_all().map_err(io)?;
    temp.persist(path).map_err(|e| io(e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_end_at_the_next_phase_an_end_or_the_outcome() {
        let t = Timeline::new();
        t.start("a", "hash");
        t.start("b", "hash");
        t.end("a");
        t.start("a", "build");
        t.start("a", "pack");
        t.finish("a", "built");
        t.start("b", "restore");
        let (rows, _) = t.snapshot();
        let phases = |r: &Row| r.spans.iter().map(|s| s.phase.clone()).collect::<Vec<_>>();
        assert_eq!(rows.iter().map(|r| r.target.as_str()).collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(phases(&rows[0]), ["hash", "build", "pack"]);
        assert_eq!(rows[0].outcome.as_deref(), Some("built"));
        assert_eq!(phases(&rows[1]), ["hash", "restore"], "an open phase ends at the snapshot");
        for row in &rows {
            assert!(row.spans.windows(2).all(|w| w[0].end <= w[1].start));
            assert!(row.spans.iter().all(|s| s.start <= s.end));
        }
    }

    #[test]
    fn format_from_the_name() {
        assert_eq!(Format::of(Path::new("t.HTML")), Some(Format::Html));
        assert_eq!(Format::of(Path::new("dir/t.svg")), Some(Format::Svg));
        assert!(parse_path("t.png").unwrap_err().contains(".html or .svg"));
        assert!(parse_path("timings").is_err());
    }
}
