//! GitHub Actions glue: step outputs (`$GITHUB_OUTPUT`), the step summary
//! (`$GITHUB_STEP_SUMMARY`) and log groups (`::group::`). Everything here is inert outside
//! Actions: the environment is read once into [`GithubEnv`] by the command that needs it, and
//! each writer does nothing when its variable is unset.
//!
//! Output names are what GitHub accepts as step output ids: a letter or `_` first, then
//! letters, digits, `-` and `_` ([`output_id`]). Values with a line break are written in the
//! multiline form (`name<<DELIMITER`), with a delimiter that does not occur in the value.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::engine::publish::{Manifest, Status, TargetReport};
use crate::report::human_bytes;

/// What GitHub Actions tells a step through its environment.
#[derive(Debug, Clone, Default)]
pub struct GithubEnv {
    /// `$GITHUB_OUTPUT`: the file a step appends its outputs to.
    pub output: Option<PathBuf>,
    /// `$GITHUB_STEP_SUMMARY`: the file a step appends its markdown summary to.
    pub summary: Option<PathBuf>,
    /// `GITHUB_ACTIONS=true`: workflow commands such as `::group::` are understood.
    pub actions: bool,
}

impl GithubEnv {
    pub fn from_env() -> GithubEnv {
        let path = |name| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
        GithubEnv {
            output: path("GITHUB_OUTPUT"),
            summary: path("GITHUB_STEP_SUMMARY"),
            actions: std::env::var("GITHUB_ACTIONS").is_ok_and(|v| v == "true"),
        }
    }

    /// Appends `outputs` to `$GITHUB_OUTPUT`; `false` when it is unset.
    pub fn write_outputs(&self, outputs: &Outputs) -> Result<bool, GithubError> {
        self.append_outputs(&outputs.render())
    }

    /// Appends already rendered `name=value` lines to `$GITHUB_OUTPUT`; `false` when it is unset.
    pub fn append_outputs(&self, lines: &str) -> Result<bool, GithubError> {
        let Some(path) = &self.output else { return Ok(false) };
        append(path, lines)?;
        Ok(true)
    }

    /// Appends `markdown` to `$GITHUB_STEP_SUMMARY`, if set.
    pub fn write_summary(&self, markdown: &str) -> Result<(), GithubError> {
        match &self.summary {
            Some(path) => append(path, markdown),
            None => Ok(()),
        }
    }

    /// Prints a finished build's log folded in a `::group::` under Actions. On stderr, where
    /// the rest of tbuild's progress goes (the runner reads workflow commands from both
    /// streams), so that stdout stays clean for `--json`.
    pub fn log_group(&self, target: &str, log: &Path) {
        if !self.actions {
            return;
        }
        let text = std::fs::read(log).map(|b| String::from_utf8_lossy(&b).into_owned());
        let mut stderr = std::io::stderr().lock();
        let _ = writeln!(stderr, "::group::{} build log", escape_command(target));
        match text {
            Ok(text) => {
                // A line of the log that is itself a workflow command would be obeyed; the
                // runner ignores commands after `::stop-commands::TOKEN` until TOKEN comes back.
                let token = delimiter("tbuild-log", &text);
                let _ = writeln!(stderr, "::stop-commands::{token}");
                let _ = stderr.write_all(text.as_bytes());
                if !text.ends_with('\n') {
                    let _ = writeln!(stderr);
                }
                let _ = writeln!(stderr, "::{token}::");
            }
            Err(err) => {
                let _ = writeln!(stderr, "(no log at {}: {err})", log.display());
            }
        }
        let _ = writeln!(stderr, "::endgroup::");
    }
}

/// Step outputs in the order they were set.
#[derive(Debug, Default)]
pub struct Outputs {
    entries: Vec<(String, String)>,
}

impl Outputs {
    pub fn set(&mut self, name: &str, value: impl Into<String>) {
        self.entries.push((output_id(name), value.into()));
    }

    /// The `$GITHUB_OUTPUT` text: `name=value` lines, the multiline form where needed.
    pub fn render(&self) -> String {
        let mut text = String::new();
        for (name, value) in &self.entries {
            if value.contains(['\n', '\r']) {
                let delimiter = delimiter("ghadelimiter", value);
                let _ = writeln!(text, "{name}<<{delimiter}\n{value}\n{delimiter}");
            } else {
                let _ = writeln!(text, "{name}={value}");
            }
        }
        text
    }
}

/// The outputs of a run: `cache-hit` (true when every target was restored from a cache),
/// `sha`, `missed` (comma-separated), and per target `<target>-hit`, `<target>-key`.
pub fn run_outputs(manifest: &Manifest) -> Outputs {
    let mut outputs = Outputs::default();
    for (name, target) in &manifest.targets {
        outputs.set(&format!("{name}-hit"), (target.status == Status::Hit).to_string());
        outputs.set(&format!("{name}-key"), target.key.clone());
    }
    // Last, so that they win over a target's output of the same name (a target `cache`).
    let all_hit = !manifest.targets.is_empty() && manifest.targets.values().all(|t| t.status == Status::Hit);
    outputs.set("cache-hit", all_hit.to_string());
    outputs.set("sha", manifest.sha.clone());
    let missed: Vec<&str> =
        manifest.targets.iter().filter(|(_, t)| t.status != Status::Hit).map(|(name, _)| name.as_str()).collect();
    outputs.set("missed", missed.join(","));
    outputs
}

/// The step summary of a run: a heading, a count, and a table of target, key (short),
/// hit/miss, source, size (of the files) and time (to restore, or to build).
pub fn run_summary(command: &str, manifest: &Manifest) -> String {
    let hits = manifest.targets.values().filter(|t| t.status == Status::Hit).count();
    let mut md = String::new();
    let short_sha = &manifest.sha[..12.min(manifest.sha.len())];
    let _ = writeln!(md, "### tbuild {command} `{short_sha}`\n");
    let _ = writeln!(md, "{hits} of {} targets restored from the cache.\n", manifest.targets.len());
    let _ = writeln!(md, "| target | key | hit/miss | source | size | time |");
    let _ = writeln!(md, "|---|---|---|---|---|---|");
    for (name, t) in &manifest.targets {
        let _ = writeln!(
            md,
            "| {} | `{}` | {} | {} | {} | {} |",
            markdown_cell(name),
            &t.key[..12.min(t.key.len())],
            status_cell(t.status),
            markdown_cell(&t.source),
            size_cell(t),
            time_cell(t),
        );
    }
    md.push('\n');
    md
}

/// The outputs of `tbuild key --format github`: `<target>-key` for each target, and `key`, a
/// key for the whole set that changes when any target's does (for `actions/cache`'s `key:`).
pub fn key_outputs(keys: &BTreeMap<String, String>) -> Outputs {
    let mut outputs = Outputs::default();
    outputs.set("key", set_key(keys));
    for (name, key) in keys {
        outputs.set(&format!("{name}-key"), key.clone());
    }
    outputs
}

/// blake3 over the sorted `target key` lines, with a domain prefix.
pub fn set_key(keys: &BTreeMap<String, String>) -> String {
    let mut hasher = blake3::Hasher::new();
    hasher.update(b"tbuild key set v1\n");
    for (name, key) in keys {
        hasher.update(format!("{name} {key}\n").as_bytes());
    }
    hasher.finalize().to_hex().to_string()
}

/// A valid step output id for `name`: characters other than letters, digits, `-` and `_`
/// become `_`, and a leading digit or `-` gets a `_` in front.
pub fn output_id(name: &str) -> String {
    let mut id: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect();
    if !id.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
        id.insert(0, '_');
    }
    id
}

fn status_cell(status: Status) -> &'static str {
    match status {
        Status::Hit => "✅ hit",
        Status::Miss => "❌ miss",
        Status::Built => "🔨 built",
        Status::Failed => "💥 failed",
    }
}

fn size_cell(t: &TargetReport) -> String {
    if t.files.is_empty() { "–".into() } else { human_bytes(t.files.iter().map(|f| f.size).sum()) }
}

fn time_cell(t: &TargetReport) -> String {
    let ms = match t.status {
        Status::Hit => t.durations_ms.restore,
        Status::Built | Status::Failed => t.durations_ms.build + t.durations_ms.pack + t.durations_ms.restore,
        Status::Miss => return "–".into(),
    };
    crate::report::human_duration(std::time::Duration::from_millis(ms))
}

/// Target names come from recipes: keep a `|` or a newline from breaking the table.
fn markdown_cell(text: &str) -> String {
    text.replace('|', "\\|").replace(['\n', '\r'], " ")
}

/// Workflow command parameters escape `%`, CR and LF.
fn escape_command(text: &str) -> String {
    text.replace('%', "%25").replace('\r', "%0D").replace('\n', "%0A")
}

/// `PREFIX_<hex>` that does not occur in `text`.
fn delimiter(prefix: &str, text: &str) -> String {
    let mut seed = blake3::hash(text.as_bytes());
    loop {
        let candidate = format!("{prefix}_{}", &seed.to_hex()[..20]);
        if !text.contains(&candidate) {
            return candidate;
        }
        seed = blake3::hash(seed.as_bytes());
    }
}

fn append(path: &Path, text: &str) -> Result<(), GithubError> {
    let io = |source| GithubError { path: path.into(), source };
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(path).map_err(io)?;
    // One write: the file is shared with the other steps' commands of this job.
    file.write_all(text.as_bytes()).map_err(io)
}

#[derive(Debug, thiserror::Error)]
#[error("cannot write the GitHub Actions file {path} (GITHUB_OUTPUT or GITHUB_STEP_SUMMARY)")]
pub struct GithubError {
    path: PathBuf,
    #[source]
    source: std::io::Error,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_ids_are_valid() {
        for (name, id) in [
            ("tasker-server", "tasker-server"),
            ("ruby", "ruby"),
            ("3d", "_3d"),
            ("-x", "_-x"),
            ("a.b/c d", "a_b_c_d"),
            ("_ok", "_ok"),
        ] {
            assert_eq!(output_id(name), id);
        }
    }

    #[test]
    fn multiline_values_use_a_delimiter_absent_from_the_value() {
        let mut outputs = Outputs::default();
        outputs.set("one", "x=y");
        outputs.set("two", "a\nb");
        let text = outputs.render();
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some("one=x=y"));
        let header = lines.next().unwrap();
        let delimiter = header.strip_prefix("two<<").unwrap();
        assert!(delimiter.starts_with("ghadelimiter_"));
        assert_eq!(lines.collect::<Vec<_>>(), ["a", "b", delimiter]);
    }

    #[test]
    fn set_key_changes_with_any_target_key() {
        let a: BTreeMap<String, String> = [("x".into(), "1".into()), ("y".into(), "2".into())].into();
        let mut b = a.clone();
        b.insert("y".into(), "3".into());
        assert_ne!(set_key(&a), set_key(&b));
        assert_eq!(set_key(&a), set_key(&a.clone()));
    }
}
