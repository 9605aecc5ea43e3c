//! Upstream monitoring for tasker-contrib: how far the tasker-core versions it pins in
//! `.github/upstream-versions.json` are behind each registry's latest stable release
//! ([`check`]), and whether the contrib packages' own dependency constraints admit them
//! ([`constraints`]).
//!
//! The package names queried are exactly those of the file: nothing is renamed or guessed.

pub mod constraints;
pub mod lag;
pub mod registry;
pub mod report;
pub mod version;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

pub use lag::{Lag, Severity, Update, classify};
pub use registry::{LookupError, RegistryClient, Release, latest_stable};
pub use version::{Ecosystem, Registry, Version};

/// Named in the User-Agent of registry and GitHub requests.
pub const PROJECT_URL: &str = "https://github.com/tasker-systems/tasker-contrib";

/// The default `--versions`: where tasker-contrib keeps its pins.
pub const DEFAULT_VERSIONS_FILE: &str = ".github/upstream-versions.json";

/// `upstream-versions.json`: `{ "<ecosystem>": { "<package>": "<version>" } }` for the
/// ecosystems `rust`, `ruby`, `python`, `typescript`; keys starting with `_` (`_comment`,
/// `_updated`) are notes, kept as they are.
#[derive(Debug, Clone)]
pub struct VersionsFile {
    pub path: PathBuf,
    pub document: serde_json::Map<String, Value>,
    pub pins: Vec<Pin>,
}

/// One pinned package.
#[derive(Debug, Clone)]
pub struct Pin {
    pub ecosystem: Ecosystem,
    pub package: String,
    pub version: String,
}

impl VersionsFile {
    pub fn load(path: &Path) -> Result<VersionsFile, UpstreamError> {
        let bad = |reason: String| UpstreamError::VersionsFile { path: path.into(), reason };
        let bytes = std::fs::read(path).map_err(|e| bad(format!("cannot read it: {e}")))?;
        let document: serde_json::Map<String, Value> =
            serde_json::from_slice(&bytes).map_err(|e| bad(format!("not a JSON object: {e}")))?;
        let mut pins = Vec::new();
        for (key, value) in &document {
            if key.starts_with('_') {
                continue;
            }
            let ecosystem = Ecosystem::from_key(key).ok_or_else(|| {
                bad(format!("unknown ecosystem \"{key}\"; use rust, ruby, python or typescript (or a _note key)"))
            })?;
            let packages =
                value.as_object().ok_or_else(|| bad(format!("\"{key}\" must map package names to versions")))?;
            for (package, version) in packages {
                let version = version
                    .as_str()
                    .ok_or_else(|| bad(format!("the version of {key}.{package} must be a string like \"0.5.0\"")))?;
                pins.push(Pin { ecosystem, package: package.clone(), version: version.to_string() });
            }
        }
        if pins.is_empty() {
            return Err(bad("it pins no packages".into()));
        }
        Ok(VersionsFile { path: path.into(), document, pins })
    }

    /// Rewrites the pins that are behind to their latest stable version, keeping every other
    /// key and the key order; `_updated`, when present, becomes today's date. Atomic: temp
    /// file, fsync, rename. Returns how many pins changed.
    pub fn update(&self, report: &CheckReport) -> Result<usize, UpstreamError> {
        let mut document = self.document.clone();
        let mut changed = 0;
        for row in &report.packages {
            let (Some(latest), Some(lag)) = (&row.latest, &row.lag) else { continue };
            if lag.update == Update::None {
                continue;
            }
            if let Some(Value::Object(packages)) = document.get_mut(row.ecosystem.key())
                && let Some(slot) = packages.get_mut(&row.package)
            {
                *slot = Value::String(latest.clone());
                changed += 1;
            }
        }
        if changed == 0 {
            return Ok(0);
        }
        if let Some(updated) = document.get_mut("_updated")
            && updated.is_string()
        {
            *updated = Value::String(today_utc());
        }
        let mut bytes = serde_json::to_vec_pretty(&document).expect("JSON values serialise");
        bytes.push(b'\n');
        let dir = match self.path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        crate::cache::write_atomic(dir, &self.path, &bytes)
            .map_err(|e| UpstreamError::Write { path: self.path.clone(), reason: registry::error_chain(&e) })?;
        Ok(changed)
    }
}

/// `YYYY-MM-DD` of now, UTC (civil-from-days, no date crate needed for one date).
pub fn today_utc() -> String {
    let days = (crate::cache::now_secs() / 86_400) as i64;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

/// One row of the check.
#[derive(Debug, Clone, Serialize)]
pub struct PackageReport {
    pub ecosystem: Ecosystem,
    pub package: String,
    pub registry: Registry,
    pub url: String,
    pub pinned: String,
    /// Latest stable version; absent when the lookup failed or nothing stable is published.
    pub latest: Option<String>,
    pub lag: Option<Lag>,
    /// The row's severity: the lag's, raised by the flags; absent when the lookup failed.
    pub severity: Option<Severity>,
    /// `pinned-yanked`, `pinned-deprecated: <message>`, `pinned-unpublished`, `no-stable-release`.
    pub flags: Vec<String>,
    /// Why the lookup failed (`not-found`, `timeout`, ...), with the message.
    pub error: Option<RowError>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RowError {
    pub kind: String,
    pub message: String,
}

/// The whole check.
#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    pub packages: Vec<PackageReport>,
    /// The worst severity over the packages looked up.
    pub worst: Option<Severity>,
    /// Packages whose lookup failed.
    pub failed: usize,
    /// Some pin is behind its latest stable release.
    pub updates_available: bool,
}

impl CheckReport {
    pub fn new(packages: Vec<PackageReport>) -> CheckReport {
        let worst = packages.iter().filter_map(|p| p.severity).max();
        let failed = packages.iter().filter(|p| p.error.is_some()).count();
        let updates_available = packages.iter().any(|p| p.lag.is_some_and(|l| l.update != Update::None));
        CheckReport { packages, worst, failed, updates_available }
    }
}

/// Builds a row from a pin and its registry's answer.
pub fn assess(pin: &Pin, url: String, releases: Result<Vec<Release>, LookupError>) -> PackageReport {
    let mut row = PackageReport {
        ecosystem: pin.ecosystem,
        package: pin.package.clone(),
        registry: pin.ecosystem.registry(),
        url,
        pinned: pin.version.clone(),
        latest: None,
        lag: None,
        severity: None,
        flags: Vec::new(),
        error: None,
    };
    let releases = match releases {
        Ok(releases) => releases,
        Err(err) => {
            row.error = Some(RowError { kind: err.kind().into(), message: err.to_string() });
            return row;
        }
    };
    let pinned = match pin.ecosystem.parse(&pin.version) {
        Ok(v) => v,
        Err(reason) => {
            let message = format!("the pinned version is invalid: {reason}");
            row.error = Some(RowError { kind: "bad-pin".into(), message });
            return row;
        }
    };
    let mut floor = Severity::Info;
    match releases.iter().find(|r| r.version == pinned) {
        None => {
            row.flags.push("pinned-unpublished".into());
            floor = Severity::Error;
        }
        Some(r) if r.yanked => {
            row.flags.push("pinned-yanked".into());
            floor = Severity::Error;
        }
        Some(r) => {
            if let Some(message) = &r.deprecated {
                row.flags.push(format!("pinned-deprecated: {message}"));
                floor = Severity::Warning;
            }
        }
    }
    match latest_stable(&releases) {
        Some(latest) => {
            let lag = if latest.version > pinned {
                classify(pinned.triple(), latest.version.triple())
            } else {
                classify([0; 3], [0; 3])
            };
            row.latest = Some(latest.version.text.clone());
            row.lag = Some(lag);
            row.severity = Some(lag.severity.max(floor));
        }
        None => {
            row.flags.push("no-stable-release".into());
            row.severity = Some(floor);
        }
    }
    row
}

/// Options of a check run.
pub struct CheckOptions {
    pub urls: BTreeMap<Registry, String>,
    pub timeout: Duration,
    pub retries: u32,
    pub concurrency: usize,
}

/// Looks every pin up, concurrently, and assesses each; rows keep the file's order. Runs on
/// the caller's runtime (the command layer's).
pub async fn check(file: &VersionsFile, options: &CheckOptions) -> CheckReport {
    let client = Arc::new(RegistryClient::new(options.urls.clone(), options.timeout, options.retries));
    let rows: Vec<PackageReport> = async {
        let permits = Arc::new(tokio::sync::Semaphore::new(options.concurrency.max(1)));
        let mut set = tokio::task::JoinSet::new();
        for (index, pin) in file.pins.iter().cloned().enumerate() {
            let (client, permits) = (client.clone(), permits.clone());
            set.spawn(async move {
                let _permit = permits.acquire_owned().await.expect("semaphore open");
                let registry = pin.ecosystem.registry();
                let url = registry::package_url(registry, client.base_url(registry), &pin.package);
                let releases = client.releases(registry, &pin.package).await;
                (index, assess(&pin, url, releases))
            });
        }
        let mut rows: Vec<Option<PackageReport>> = vec![None; file.pins.len()];
        while let Some(joined) = set.join_next().await {
            let (index, row) = joined.expect("lookups do not panic");
            rows[index] = Some(row);
        }
        rows.into_iter().map(|r| r.expect("every pin reports")).collect()
    }
    .await;
    CheckReport::new(rows)
}

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("{path}: {reason}")]
    VersionsFile { path: PathBuf, reason: String },
    #[error("cannot write {path}: {reason}")]
    Write { path: PathBuf, reason: String },
    #[error("{path}: {reason}")]
    Manifest { path: PathBuf, reason: String },
    #[error("{count} package(s) at or above --fail-on {threshold}: worst is {worst}")]
    FailOn { count: usize, threshold: &'static str, worst: &'static str },
    #[error("{failed} of {total} lookups failed (see the report); no package is skipped silently")]
    LookupsFailed { failed: usize, total: usize },
    #[error("{count} constraint(s) refuse the pinned version (see the report)")]
    ConstraintsRefuse { count: usize },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pin(ecosystem: Ecosystem, version: &str) -> Pin {
        Pin { ecosystem, package: "p".into(), version: version.into() }
    }

    fn releases(ecosystem: Ecosystem, list: &[(&str, bool)]) -> Vec<Release> {
        list.iter()
            .map(|(v, yanked)| Release { version: ecosystem.parse(v).unwrap(), yanked: *yanked, deprecated: None })
            .collect()
    }

    #[test]
    fn a_yanked_or_unpublished_pin_is_at_least_an_error() {
        let list = releases(Ecosystem::Rust, &[("0.1.3", true), ("0.1.4", false)]);
        let row = assess(&pin(Ecosystem::Rust, "0.1.3"), String::new(), Ok(list.clone()));
        assert_eq!(row.severity, Some(Severity::Error));
        assert_eq!(row.flags, ["pinned-yanked"]);
        let row = assess(&pin(Ecosystem::Rust, "0.1.2"), String::new(), Ok(list));
        assert_eq!(
            (row.severity, row.flags.as_slice()),
            (Some(Severity::Error), &["pinned-unpublished".to_string()][..])
        );
    }

    #[test]
    fn a_deprecated_pin_is_at_least_a_warning() {
        let mut list = releases(Ecosystem::Typescript, &[("3.4.0", false), ("3.4.1", false)]);
        list[0].deprecated = Some("Please upgrade to version 7 or higher".into());
        let row = assess(&pin(Ecosystem::Typescript, "3.4.0"), String::new(), Ok(list));
        assert_eq!(row.lag.unwrap().severity, Severity::Info, "one patch behind");
        assert_eq!(row.severity, Some(Severity::Warning));
        assert_eq!(row.flags, ["pinned-deprecated: Please upgrade to version 7 or higher"]);
    }

    #[test]
    fn a_failed_lookup_is_a_row_with_its_error() {
        let err = LookupError::NotFound { url: "http://x/p".into() };
        let row = assess(&pin(Ecosystem::Python, "0.1.0"), "http://x/p".into(), Err(err));
        assert_eq!(row.error.as_ref().unwrap().kind, "not-found");
        assert_eq!(row.severity, None);
        let report = CheckReport::new(vec![row]);
        assert_eq!((report.failed, report.worst), (1, None));
    }

    #[test]
    fn today_is_a_date() {
        let today = today_utc();
        assert_eq!(today.len(), 10);
        assert!(today.starts_with("20"), "{today}");
    }
}
