//! The four registries: where a package's version list lives, how to read it, and an HTTP
//! client that asks them all at once with timeouts and retries (with jitter and
//! `Retry-After`, from [`crate::http`]).
//!
//! - crates.io: the sparse index cargo reads (`<base>/<prefix>/<name>`), one JSON object per
//!   published version with `vers` and `yanked`.
//! - PyPI: the JSON API (`<base>/pypi/<name>/json`); a release is yanked when all its files
//!   are (PEP 592), and a release with no files cannot be installed, so it is left out.
//! - RubyGems: `<base>/api/v1/versions/<name>.json`, one entry per version and platform,
//!   with `prerelease`; yanked gems are not listed at all.
//! - npm: the registry document (`<base>/<name>`, a scope's `/` sent as `%2f`); a version
//!   with a `deprecated` message is treated like a yanked one.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use super::version::{Ecosystem, Registry, Version};

/// One published version as its registry lists it.
#[derive(Debug, Clone)]
pub struct Release {
    pub version: Version,
    pub yanked: bool,
    /// npm's deprecation message.
    pub deprecated: Option<String>,
}

impl Release {
    /// What `latest stable` may be: final, not yanked, not deprecated.
    pub fn is_stable(&self) -> bool {
        !self.version.is_prerelease() && !self.yanked && self.deprecated.is_none()
    }
}

/// The highest stable release by the ecosystem's ordering.
pub fn latest_stable(releases: &[Release]) -> Option<&Release> {
    releases.iter().filter(|r| r.is_stable()).max_by(|a, b| a.version.cmp(&b.version))
}

/// The URL of a package's version list.
pub fn package_url(registry: Registry, base: &str, name: &str) -> String {
    let base = base.trim_end_matches('/');
    match registry {
        Registry::Crates => format!("{base}/{}", sparse_index_path(name)),
        Registry::Pypi => format!("{base}/pypi/{name}/json"),
        Registry::Rubygems => format!("{base}/api/v1/versions/{name}.json"),
        Registry::Npm => format!("{base}/{}", name.replace('/', "%2f")),
    }
}

/// Cargo's sparse index layout: `1/a`, `2/ab`, `3/a/abc`, `ab/cd/abcd...`, lowercased.
pub fn sparse_index_path(name: &str) -> String {
    let lower = name.to_ascii_lowercase();
    match lower.len() {
        1 => format!("1/{lower}"),
        2 => format!("2/{lower}"),
        3 => format!("3/{}/{lower}", &lower[..1]),
        _ => format!("{}/{}/{lower}", &lower[..2], &lower[2..4]),
    }
}

/// Reads a registry's response body into releases. Versions that do not parse with the
/// ecosystem's grammar (old PyPI releases that predate PEP 440) are left out: they cannot be
/// the latest by that grammar.
pub fn parse_releases(registry: Registry, body: &[u8]) -> Result<Vec<Release>, String> {
    let bad = |e: serde_json::Error| format!("not a {} response: {e}", registry.name());
    let mut releases = Vec::new();
    let mut push = |ecosystem: Ecosystem, text: &str, yanked: bool, deprecated: Option<String>| {
        if let Ok(version) = ecosystem.parse(text) {
            releases.push(Release { version, yanked, deprecated });
        } else {
            tracing::debug!("{}: ignoring unparsable version '{text}'", registry.name());
        }
    };
    match registry {
        Registry::Crates => {
            #[derive(Deserialize)]
            struct Line {
                vers: String,
                #[serde(default)]
                yanked: bool,
            }
            let text = std::str::from_utf8(body).map_err(|e| format!("not a sparse index file: {e}"))?;
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                let line: Line = serde_json::from_str(line).map_err(bad)?;
                push(Ecosystem::Rust, &line.vers, line.yanked, None);
            }
        }
        Registry::Pypi => {
            #[derive(Deserialize)]
            struct Project {
                releases: BTreeMap<String, Vec<File>>,
            }
            #[derive(Deserialize)]
            struct File {
                #[serde(default)]
                yanked: bool,
            }
            let project: Project = serde_json::from_slice(body).map_err(bad)?;
            for (version, files) in &project.releases {
                if !files.is_empty() {
                    push(Ecosystem::Python, version, files.iter().all(|f| f.yanked), None);
                }
            }
        }
        Registry::Rubygems => {
            #[derive(Deserialize)]
            struct Gem {
                number: String,
            }
            let gems: Vec<Gem> = serde_json::from_slice(body).map_err(bad)?;
            let mut seen = std::collections::BTreeSet::new();
            for gem in gems {
                // One entry per platform: the same version may be listed several times.
                if seen.insert(gem.number.clone()) {
                    push(Ecosystem::Ruby, &gem.number, false, None);
                }
            }
        }
        Registry::Npm => {
            #[derive(Deserialize)]
            struct Document {
                #[serde(default)]
                versions: BTreeMap<String, Manifest>,
            }
            #[derive(Deserialize)]
            struct Manifest {
                #[serde(default)]
                deprecated: Option<serde_json::Value>,
            }
            let doc: Document = serde_json::from_slice(body).map_err(bad)?;
            for (version, manifest) in doc.versions {
                // `deprecated` is a message; an empty string means "un-deprecated".
                let deprecated = match manifest.deprecated {
                    Some(serde_json::Value::String(s)) if !s.is_empty() => Some(s),
                    _ => None,
                };
                push(Ecosystem::Typescript, &version, false, deprecated);
            }
        }
    }
    Ok(releases)
}

/// Why a package's lookup failed; each is a row of the report, never a skipped package.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LookupError {
    #[error("not found in the registry ({url}); check the package name")]
    NotFound { url: String },
    #[error("timed out after {secs}s ({url})")]
    Timeout { url: String, secs: u64 },
    #[error("HTTP {status} from {url}")]
    Status { url: String, status: u16, retry_after: Option<Duration> },
    #[error("{url}: {reason}")]
    Network { url: String, reason: String },
    #[error("{url}: {reason}")]
    BadResponse { url: String, reason: String },
}

impl LookupError {
    /// Worth asking again: the server or the network may recover.
    fn transient(&self) -> bool {
        match self {
            LookupError::Timeout { .. } | LookupError::Network { .. } => true,
            LookupError::Status { status, .. } => crate::http::retryable_status(*status),
            LookupError::NotFound { .. } | LookupError::BadResponse { .. } => false,
        }
    }

    /// A short name for reports and JSON: not-found, timeout, http, network, bad-response.
    pub fn kind(&self) -> &'static str {
        match self {
            LookupError::NotFound { .. } => "not-found",
            LookupError::Timeout { .. } => "timeout",
            LookupError::Status { .. } => "http",
            LookupError::Network { .. } => "network",
            LookupError::BadResponse { .. } => "bad-response",
        }
    }
}

/// `tbuild/<version> (+<repository>)`: registries ask clients to say who they are.
pub fn user_agent() -> String {
    format!("tbuild/{} (+{})", env!("CARGO_PKG_VERSION"), crate::tools::upstream::PROJECT_URL)
}

/// Asks registries for version lists: one HTTP client, per-request timeout, retries of
/// transient failures with exponential backoff, jitter and `Retry-After`.
pub struct RegistryClient {
    http: reqwest::Client,
    urls: BTreeMap<Registry, String>,
    timeout: Duration,
    retries: u32,
    backoff: crate::http::Backoff,
}

impl RegistryClient {
    pub fn new(urls: BTreeMap<Registry, String>, timeout: Duration, retries: u32) -> RegistryClient {
        let timeouts = crate::http::Timeouts { connect: timeout, read: None, total: Some(timeout) };
        let http = crate::http::client(&user_agent(), timeouts).expect("an HTTP client with rustls");
        let backoff = crate::http::Backoff { base: Duration::from_millis(250), max: Duration::from_secs(10) };
        RegistryClient { http, urls, timeout, retries, backoff }
    }

    pub fn base_url(&self, registry: Registry) -> &str {
        self.urls.get(&registry).map(String::as_str).unwrap_or(registry.default_url())
    }

    /// The releases of `name`, retrying transient failures.
    pub async fn releases(&self, registry: Registry, name: &str) -> Result<Vec<Release>, LookupError> {
        let url = package_url(registry, self.base_url(registry), name);
        let wait = |err: &LookupError| match err {
            LookupError::Status { retry_after, .. } => *retry_after,
            _ => None,
        };
        let attempts = self.retries.saturating_add(1);
        crate::http::retry(attempts, self.backoff, || self.fetch_once(registry, &url), LookupError::transient, wait)
            .await
    }

    async fn fetch_once(&self, registry: Registry, url: &str) -> Result<Vec<Release>, LookupError> {
        let failed = |e: reqwest::Error| {
            if e.is_timeout() {
                LookupError::Timeout { url: url.to_string(), secs: self.timeout.as_secs().max(1) }
            } else {
                // The URL is already in the message: keep only the causes.
                LookupError::Network { url: url.to_string(), reason: error_chain(&e.without_url()) }
            }
        };
        let mut request = self.http.get(url);
        if registry == Registry::Npm {
            // The abbreviated document: versions and `deprecated`, without every readme.
            request = request.header("Accept", "application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8");
        }
        let response = request.send().await.map_err(failed)?;
        let status = response.status();
        // cargo reads 403, 410 and 451 from a sparse index as "no such crate" too (a CDN
        // in front of a bucket answers 403 for a missing file).
        let missing = match registry {
            Registry::Crates => matches!(status.as_u16(), 403 | 404 | 410 | 451),
            _ => status == reqwest::StatusCode::NOT_FOUND,
        };
        if missing {
            return Err(LookupError::NotFound { url: url.to_string() });
        }
        if !status.is_success() {
            let retry_after = crate::http::retry_after(response.headers());
            return Err(LookupError::Status { url: url.to_string(), status: status.as_u16(), retry_after });
        }
        let body = response.bytes().await.map_err(failed)?;
        parse_releases(registry, &body).map_err(|reason| LookupError::BadResponse { url: url.to_string(), reason })
    }
}

pub use crate::http::error_chain;

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(path: &str) -> Vec<u8> {
        std::fs::read(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/registries").join(path))
            .unwrap()
    }

    fn latest(registry: Registry, path: &str) -> String {
        let releases = parse_releases(registry, &fixture(path)).unwrap();
        latest_stable(&releases).unwrap().version.text.clone()
    }

    #[test]
    fn latest_stable_skips_pre_releases_and_yanked_versions() {
        // rand's index as it stood at 0.10.0-rc.9: the rcs are newer than 0.9.2.
        assert_eq!(latest(Registry::Crates, "crates/rand"), "0.9.2");
        // tasker-cli up to 1.0.11, whose 1.0.10 and 1.0.11 are yanked.
        assert_eq!(latest(Registry::Crates, "crates/tasker-cli"), "1.0.9");
        assert_eq!(latest(Registry::Crates, "crates/tasker-worker"), "0.1.8");
        // maturin on 2024-12-03: 1.7.8b1 is out, 1.7.8 is not.
        assert_eq!(latest(Registry::Pypi, "pypi/maturin-2024-12-03.json"), "1.7.7");
        // maturin on 2025-12-30: 1.11.0 is out and yanked.
        assert_eq!(latest(Registry::Pypi, "pypi/maturin-2025-12-30.json"), "1.10.2");
        assert_eq!(latest(Registry::Pypi, "pypi/tasker-py.json"), "0.1.8");
        // 0.2.0.rc1 and 0.1.10.beta.2 are pre-releases; 0.1.8 is listed once per platform.
        assert_eq!(latest(Registry::Rubygems, "rubygems/tasker-rb.json"), "0.1.8");
        // 11.0.0-0 is a pre-release.
        assert_eq!(latest(Registry::Npm, "npm/uuid.json"), "10.0.0");
    }

    #[test]
    fn yanked_and_deprecated_versions_are_marked() {
        let find = |registry, path: &str, version: &str| {
            let releases = parse_releases(registry, &fixture(path)).unwrap();
            releases.into_iter().find(|r| r.version.text == version).unwrap()
        };
        assert!(find(Registry::Crates, "crates/tasker-cli", "1.0.11").yanked);
        assert!(!find(Registry::Crates, "crates/tasker-cli", "1.0.9").yanked);
        assert!(find(Registry::Pypi, "pypi/maturin-2024-12-03.json", "1.7.2").yanked);
        let uuid = find(Registry::Npm, "npm/uuid.json", "3.4.0");
        assert!(uuid.deprecated.unwrap().contains("upgrade"));
        assert!(!find(Registry::Rubygems, "rubygems/tasker-rb.json", "0.1.4").yanked);
    }

    #[test]
    fn a_malformed_response_is_an_error_not_an_empty_list() {
        assert!(parse_releases(Registry::Pypi, b"<html>rate limited</html>").is_err());
        assert!(parse_releases(Registry::Crates, b"{\"vers\": 1}").is_err());
    }

    #[test]
    fn urls_follow_each_registry() {
        assert_eq!(sparse_index_path("a"), "1/a");
        assert_eq!(sparse_index_path("cc"), "2/cc");
        assert_eq!(sparse_index_path("syn"), "3/s/syn");
        assert_eq!(sparse_index_path("Tasker-Worker"), "ta/sk/tasker-worker");
        assert_eq!(package_url(Registry::Pypi, "http://x/", "tasker-py"), "http://x/pypi/tasker-py/json");
        assert_eq!(package_url(Registry::Rubygems, "http://x", "tasker-rb"), "http://x/api/v1/versions/tasker-rb.json");
        assert_eq!(
            package_url(Registry::Npm, "http://x", "@tasker-systems/tasker"),
            "http://x/@tasker-systems%2ftasker"
        );
    }
}
