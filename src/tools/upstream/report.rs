//! The check's report in four forms: a table for people, JSON for scripts, Markdown for the
//! tracking issue, and GitHub Actions outputs plus a step summary.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

use super::{CheckReport, PackageReport, Update};

/// `pinned -> latest` or what went wrong, for one row.
fn latest_cell(row: &PackageReport) -> String {
    match (&row.latest, &row.error) {
        (Some(latest), _) => latest.clone(),
        (None, Some(_)) => "-".into(),
        (None, None) => "none stable".into(),
    }
}

fn lag_cell(row: &PackageReport) -> String {
    match row.lag {
        Some(lag) if lag.update != Update::None => {
            let (n, kind) = (lag.behind, lag.update.name());
            let plural = if n == 1 {
                ""
            } else if kind == "patch" {
                "es"
            } else {
                "s"
            };
            format!("{n} {kind}{plural}")
        }
        Some(_) => "up to date".into(),
        None => "-".into(),
    }
}

fn severity_cell(row: &PackageReport) -> &'static str {
    match (row.severity, &row.error) {
        (Some(s), _) => s.name(),
        (None, _) => "FAILED",
    }
}

fn notes_cell(row: &PackageReport) -> String {
    let mut notes = row.flags.clone();
    if let Some(err) = &row.error {
        notes.push(err.message.clone());
    }
    notes.join("; ")
}

/// `rows` as aligned plain-text columns: each cell padded to its column's widest, two spaces
/// between, no trailing blanks (the `table` formats of `upstream check` and `constraints`).
pub fn columns<const N: usize>(rows: &[[String; N]]) -> String {
    let widths: Vec<usize> = (0..N).map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for row in rows {
        let cells: Vec<String> = row.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// Appends a markdown table: `header`, the `|---|` line, then one line per row.
fn markdown_table<const N: usize>(md: &mut String, header: [&str; N], rows: impl Iterator<Item = [String; N]>) {
    let _ = writeln!(md, "| {} |\n|{}", header.join(" | "), "---|".repeat(N));
    for row in rows {
        let _ = writeln!(md, "| {} |", row.join(" | "));
    }
}

/// A plain table, one row per pin.
pub fn table(report: &CheckReport) -> String {
    let header = ["ECOSYSTEM", "PACKAGE", "PINNED", "LATEST", "LAG", "SEVERITY", "NOTES"].map(String::from);
    let mut rows = vec![header];
    for r in &report.packages {
        rows.push([
            r.ecosystem.key().to_string(),
            r.package.clone(),
            r.pinned.clone(),
            latest_cell(r),
            lag_cell(r),
            severity_cell(r).to_string(),
            notes_cell(r),
        ]);
    }
    let mut out = columns(&rows);
    let worst = report.worst.map(|s| s.name()).unwrap_or("none");
    let _ = writeln!(out, "\nworst: {worst}; {} lookup(s) failed", report.failed);
    out
}

pub fn json(report: &CheckReport) -> String {
    serde_json::to_string_pretty(report).expect("reports serialise")
}

/// The tracking issue's body: per package current -> latest, severity, priority, action.
pub fn markdown(report: &CheckReport) -> String {
    let mut md = String::from("## Upstream tasker-core versions\n\n");
    let behind: Vec<&PackageReport> = report
        .packages
        .iter()
        .filter(|p| p.lag.is_some_and(|l| l.update != Update::None) || !p.flags.is_empty())
        .collect();
    if behind.is_empty() && report.failed == 0 {
        md.push_str("Every pinned package is at its latest stable release.\n\n");
    } else if !behind.is_empty() {
        let header = ["Package", "Ecosystem", "Current → Latest", "Severity", "Priority", "Action"];
        let rows = behind.iter().map(|p| {
            let severity = p.severity.map(|s| s.name()).unwrap_or("-");
            let action = p.severity.map(|s| s.action()).unwrap_or("-");
            let priority = p.lag.map(|l| l.update.name()).unwrap_or("-");
            let current = format!("{} → {}", p.pinned, latest_cell(p));
            [
                format!("`{}`", p.package),
                p.ecosystem.key().into(),
                current,
                format!("**{severity}**"),
                priority.into(),
                action.into(),
            ]
        });
        markdown_table(&mut md, header, rows);
        md.push('\n');
        let flagged: Vec<&&PackageReport> = behind.iter().filter(|p| !p.flags.is_empty()).collect();
        if !flagged.is_empty() {
            md.push_str("### Flags\n\n");
            for p in flagged {
                let _ = writeln!(md, "- `{}` {}: {}", p.package, p.pinned, p.flags.join("; "));
            }
            md.push('\n');
        }
    }
    if report.failed > 0 {
        md.push_str("### Lookups that failed\n\n");
        for p in report.packages.iter().filter(|p| p.error.is_some()) {
            let err = p.error.as_ref().expect("filtered");
            let _ = writeln!(md, "- `{}` ({}): {} — {}", p.package, p.registry.name(), err.kind, err.message);
        }
        md.push('\n');
    }
    md.push_str("<details><summary>All pinned packages</summary>\n\n");
    let header = ["Package", "Registry", "Pinned", "Latest stable", "Lag", "Severity"];
    let rows = report.packages.iter().map(|p| {
        let package = format!("`{}`", p.package);
        [package, p.registry.name().into(), p.pinned.clone(), latest_cell(p), lag_cell(p), severity_cell(p).into()]
    });
    markdown_table(&mut md, header, rows);
    md.push_str("\n</details>\n\n");
    md.push_str(
        "Severity: 0-1 patch info, 2+ patches notice, 1 minor warning, 2+ minors error, 1+ major critical; \
before 1.0 a minor bump (0.x) or a 0.0.x patch is breaking and counts as a major.\n\n",
    );
    md.push_str("*Written by `tbuild upstream check`; update the pins with `tbuild upstream check --update`.*\n");
    md
}

/// GitHub Actions: outputs appended to `$GITHUB_OUTPUT` (`updates-available`, `worst-severity`,
/// `failed`, `body`), the Markdown appended to `$GITHUB_STEP_SUMMARY`, and a workflow command
/// per lagging package on stdout (a warning annotation, an error one from `error` up).
/// Without those variables (not in Actions) the outputs are printed on stdout instead.
pub fn github(report: &CheckReport, output: Option<&Path>, summary: Option<&Path>) -> std::io::Result<String> {
    let body = markdown(report);
    let mut outputs = String::new();
    let _ = writeln!(outputs, "updates-available={}", report.updates_available);
    let _ = writeln!(outputs, "worst-severity={}", report.worst.map(|s| s.name()).unwrap_or("none"));
    let _ = writeln!(outputs, "failed={}", report.failed);
    // A multi-line value needs a delimiter that cannot occur in it.
    let delimiter = format!("TBUILD_EOF_{}", blake3::hash(body.as_bytes()).to_hex());
    let _ = writeln!(outputs, "body<<{delimiter}\n{body}\n{delimiter}");
    let mut stdout = String::new();
    for p in &report.packages {
        let command = match (p.severity, &p.error) {
            (_, Some(err)) => format!("::error title=upstream lookup failed::{}: {}", p.package, err.message),
            (Some(s), None) if s >= super::Severity::Error => {
                format!("::error title=upstream {}::{} {} -> {}", s.name(), p.package, p.pinned, latest_cell(p))
            }
            (Some(s), None) if s >= super::Severity::Warning => {
                format!("::warning title=upstream {}::{} {} -> {}", s.name(), p.package, p.pinned, latest_cell(p))
            }
            _ => continue,
        };
        stdout.push_str(&command.replace('\n', "%0A"));
        stdout.push('\n');
    }
    match output {
        Some(path) => append(path, &outputs)?,
        None => stdout.push_str(&outputs),
    }
    if let Some(path) = summary {
        append(path, &body)?;
    }
    Ok(stdout)
}

fn append(path: &Path, text: &str) -> std::io::Result<()> {
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
    file.write_all(text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tools::upstream::{Ecosystem, LookupError, Pin, Release, assess};

    fn row(ecosystem: Ecosystem, pinned: &str, published: &[&str]) -> PackageReport {
        let releases = published
            .iter()
            .map(|v| Release { version: ecosystem.parse(v).unwrap(), yanked: false, deprecated: None })
            .collect();
        let pin = Pin { ecosystem, package: format!("pkg-{pinned}"), version: pinned.into() };
        assess(&pin, String::new(), Ok(releases))
    }

    #[test]
    fn the_table_says_how_far_behind_in_words() {
        let report = CheckReport::new(vec![
            row(Ecosystem::Rust, "0.1.3", &["0.1.3", "0.1.8"]),
            row(Ecosystem::Rust, "1.4.0", &["1.4.0", "1.5.0"]),
            row(Ecosystem::Python, "0.1.8", &["0.1.8"]),
        ]);
        let table = table(&report);
        assert!(table.contains("5 patches") && table.contains("1 minor") && table.contains("up to date"), "{table}");
        assert!(table.ends_with("worst: warning; 0 lookup(s) failed\n"), "{table}");
    }

    #[test]
    fn the_issue_body_lists_what_is_behind_and_what_failed() {
        let failed = assess(
            &Pin { ecosystem: Ecosystem::Ruby, package: "tasker-rb".into(), version: "0.1.4".into() },
            "http://x".into(),
            Err(LookupError::Timeout { url: "http://x".into(), secs: 20 }),
        );
        let report = CheckReport::new(vec![row(Ecosystem::Typescript, "0.5.0", &["0.5.0", "0.6.1"]), failed]);
        let md = markdown(&report);
        assert!(
            md.contains("| `pkg-0.5.0` | typescript | 0.5.0 → 0.6.1 | **critical** | major | Migration required |"),
            "{md}"
        );
        assert!(md.contains("- `tasker-rb` (rubygems): timeout — timed out after 20s (http://x)"), "{md}");
        let quiet = markdown(&CheckReport::new(vec![row(Ecosystem::Python, "0.1.8", &["0.1.8"])]));
        assert!(quiet.contains("Every pinned package is at its latest stable release."), "{quiet}");
    }
}
