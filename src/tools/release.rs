//! Option B of the design doc: tasker-core's prebuilt artifacts from a GitHub release instead
//! of a build. The release's assets are chosen by glob, downloaded into a staging dir,
//! verified against the release's checksum file when it has one (`SHA256SUMS`,
//! `SHA256SUMS.txt`, `checksums.txt`, `sha256sums.txt`, or one `<asset>.sha256` per asset),
//! and only then laid out in `--out` exactly like `tbuild core` publishes:
//!
//! | asset | lands in |
//! |---|---|
//! | `*.whl` | `tasker-core-python/wheels/` |
//! | `*.node`, `libtasker*.so`, `libtasker*.dylib` | `tasker-core-typescript/` |
//! | other `*.so`, `*.bundle` | `tasker-core-ruby/lib/tasker_core/` |
//! | `tasker-*`, `rust-worker*` without an extension (executables) | `tasker-core-binaries/` |
//! | anything else | `other/` |
//!
//! A mismatch, or an asset the checksum file does not list, refuses the whole download:
//! nothing is written and the previous `--out` stays as it was.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::cache::ArchiveFile;
use crate::engine::publish::{Durations, Manifest, PublishError, Staging, Status, TargetReport};

/// Checksum files tbuild reads (compared case-insensitively).
const CHECKSUM_FILES: [&str; 4] = ["sha256sums", "sha256sums.txt", "checksums.txt", "checksums.sha256"];

#[derive(Debug, Clone, Deserialize)]
pub struct ReleaseInfo {
    pub tag_name: String,
    #[serde(default)]
    pub target_commitish: String,
    #[serde(default)]
    pub assets: Vec<Asset>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Asset {
    pub name: String,
    /// The API URL; with `Accept: application/octet-stream` it serves the bytes (private
    /// repositories included).
    pub url: String,
    #[serde(default)]
    pub size: u64,
}

fn is_checksum_file(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    CHECKSUM_FILES.contains(&lower.as_str()) || lower.ends_with(".sha256")
}

/// The artifact dir and subfolder an asset lands in, and whether it is an executable.
pub fn layout(name: &str) -> (&'static str, &'static str, bool) {
    let lower = name.to_ascii_lowercase();
    let has_extension = Path::new(&lower).extension().is_some();
    if lower.ends_with(".whl") {
        ("tasker-core-python", "wheels", false)
    } else if lower.ends_with(".node")
        || (lower.starts_with("libtasker") && (lower.ends_with(".so") || lower.ends_with(".dylib")))
    {
        ("tasker-core-typescript", "", false)
    } else if lower.ends_with(".so") || lower.ends_with(".bundle") {
        ("tasker-core-ruby", "lib/tasker_core", false)
    } else if (lower.starts_with("tasker-") || lower.starts_with("rust-worker")) && !has_extension {
        ("tasker-core-binaries", "", true)
    } else {
        ("other", "", false)
    }
}

/// Reads `sha256sum` output: `<hex>  <name>` or `<hex> *<name>` per line.
pub fn parse_checksums(text: &str) -> BTreeMap<String, String> {
    let mut sums = BTreeMap::new();
    for line in text.lines() {
        let mut parts = line.split_whitespace();
        if let (Some(hex), Some(name)) = (parts.next(), parts.next())
            && hex.len() == 64
            && hex.chars().all(|c| c.is_ascii_hexdigit())
        {
            let name = name.trim_start_matches('*');
            let name = name.rsplit('/').next().unwrap_or(name);
            sums.insert(name.to_string(), hex.to_ascii_lowercase());
        }
    }
    sums
}

/// A small GitHub REST client: releases, refs, asset downloads.
pub struct GitHub {
    http: reqwest::Client,
    api: String,
    repo: String,
    token: Option<String>,
}

impl GitHub {
    /// `repo` is `owner/name`; the token comes from GITHUB_TOKEN.
    pub fn new(api: &str, repo: &str) -> Result<GitHub, ReleaseError> {
        let valid = repo.split('/').count() == 2 && repo.split('/').all(|p| !p.is_empty() && !p.contains(' '));
        if !valid {
            return Err(ReleaseError::BadRepo { repo: repo.into() });
        }
        let timeouts = crate::http::Timeouts {
            connect: Duration::from_secs(20),
            read: Some(Duration::from_secs(60)),
            total: None,
        };
        let agent = crate::tools::upstream::registry::user_agent();
        let http = crate::http::client(&agent, timeouts).expect("an HTTP client with rustls");
        let token = std::env::var("GITHUB_TOKEN").ok().filter(|t| !t.is_empty());
        Ok(GitHub { http, api: api.trim_end_matches('/').to_string(), repo: repo.to_string(), token })
    }

    fn get(&self, url: &str, accept: &str) -> reqwest::RequestBuilder {
        let mut request = self.http.get(url).header("Accept", accept).header("X-GitHub-Api-Version", "2022-11-28");
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        request
    }

    /// `GET` of an API document, retried while it fails transiently ([`retried`]).
    async fn json<T: serde::de::DeserializeOwned>(&self, path: &str, what: &str) -> Result<T, ReleaseError> {
        retried(|| self.json_once(path, what)).await
    }

    async fn json_once<T: serde::de::DeserializeOwned>(&self, path: &str, what: &str) -> Result<T, ReleaseError> {
        let url = format!("{}/repos/{}/{path}", self.api, self.repo);
        let response = self.get(&url, "application/vnd.github+json").send().await.map_err(network(&url))?;
        let status = response.status();
        if status == reqwest::StatusCode::NOT_FOUND {
            return Err(ReleaseError::NotFound { what: what.to_string(), repo: self.repo.clone(), url });
        }
        if !status.is_success() {
            let retry_after = crate::http::retry_after(response.headers());
            let body = response.text().await.unwrap_or_default();
            let body = body.chars().take(300).collect();
            return Err(ReleaseError::Api { url, status: status.as_u16(), body, retry_after });
        }
        let bytes = response.bytes().await.map_err(network(&url))?;
        serde_json::from_slice(&bytes).map_err(|e| ReleaseError::Api {
            url,
            status: 200,
            body: e.to_string(),
            retry_after: None,
        })
    }

    pub async fn release(&self, tag: &str) -> Result<ReleaseInfo, ReleaseError> {
        self.json(&format!("releases/tags/{tag}"), &format!("release {tag}")).await
    }

    /// The commit a release was built from: `target_commitish` when it is a full SHA, else
    /// the commit its tag points to (annotated tags peeled).
    pub async fn release_commit(&self, release: &ReleaseInfo) -> Result<String, ReleaseError> {
        let commitish = release.target_commitish.to_ascii_lowercase();
        if commitish.len() == 40 && commitish.chars().all(|c| c.is_ascii_hexdigit()) {
            return Ok(commitish);
        }
        #[derive(Deserialize)]
        struct Ref {
            object: Object,
        }
        #[derive(Deserialize)]
        struct Object {
            sha: String,
            #[serde(rename = "type")]
            kind: String,
        }
        let tag = &release.tag_name;
        let mut object = self.json::<Ref>(&format!("git/ref/tags/{tag}"), &format!("tag {tag}")).await?.object;
        for _ in 0..5 {
            if object.kind != "tag" {
                break;
            }
            object = self.json::<Ref>(&format!("git/tags/{}", object.sha), &format!("tag {tag}")).await?.object;
        }
        Ok(object.sha.to_ascii_lowercase())
    }

    /// Streams an asset into `dest`, returning its sha256 (to verify) and blake3 (for the
    /// manifest, like every digest tbuild records) and its size; retried from the start
    /// while it fails transiently ([`retried`]).
    async fn download(&self, asset: &Asset, dest: &Path) -> Result<(String, String, u64), ReleaseError> {
        retried(|| self.download_once(asset, dest)).await
    }

    async fn download_once(&self, asset: &Asset, dest: &Path) -> Result<(String, String, u64), ReleaseError> {
        let url = &asset.url;
        let mut response = self.get(url, "application/octet-stream").send().await.map_err(network(url))?;
        if !response.status().is_success() {
            let (status, retry_after) = (response.status().as_u16(), crate::http::retry_after(response.headers()));
            let body = format!("downloading {}", asset.name);
            return Err(ReleaseError::Api { url: url.clone(), status, body, retry_after });
        }
        let io = |source| ReleaseError::Io { path: dest.to_path_buf(), source };
        std::fs::create_dir_all(dest.parent().expect("asset paths have a parent")).map_err(io)?;
        let mut file = std::fs::File::create(dest).map_err(io)?;
        let (mut sha256, mut blake3, mut size) = (Sha256::new(), blake3::Hasher::new(), 0u64);
        while let Some(chunk) = response.chunk().await.map_err(network(url))? {
            sha256.update(&chunk);
            blake3.update(&chunk);
            size += chunk.len() as u64;
            file.write_all(&chunk).map_err(io)?;
        }
        file.sync_all().map_err(io)?;
        Ok((hex::encode(sha256.finalize()), blake3.finalize().to_hex().to_string(), size))
    }
}

fn network(url: &str) -> impl Fn(reqwest::Error) -> ReleaseError + '_ {
    move |e| ReleaseError::Network { url: url.to_string(), reason: crate::http::error_chain(&e.without_url()) }
}

/// Attempts at a GitHub request, and how they back off (jitter, `Retry-After`).
const ATTEMPTS: u32 = 3;
const BACKOFF: crate::http::Backoff =
    crate::http::Backoff { base: Duration::from_millis(250), max: Duration::from_secs(10) };

/// `op` retried while it fails transiently: the network, or a status that says "later".
async fn retried<T, Fut: std::future::Future<Output = Result<T, ReleaseError>>>(
    op: impl FnMut() -> Fut,
) -> Result<T, ReleaseError> {
    let transient = |err: &ReleaseError| match err {
        ReleaseError::Network { .. } => true,
        ReleaseError::Api { status, .. } => crate::http::retryable_status(*status),
        _ => false,
    };
    let wait = |err: &ReleaseError| match err {
        ReleaseError::Api { retry_after, .. } => *retry_after,
        _ => None,
    };
    crate::http::retry(ATTEMPTS, BACKOFF, op, transient, wait).await
}

/// What a download produced.
pub struct Downloaded {
    pub manifest: Manifest,
    pub verified: bool,
}

/// Downloads the assets of `release` matching `patterns` into `out` (see the module doc).
pub async fn download_release(
    github: &GitHub,
    release: &ReleaseInfo,
    commit: &str,
    patterns: &[String],
    out: &Path,
) -> Result<Downloaded, ReleaseError> {
    let staging = Staging::new(out)?;
    let globs = {
        let mut builder = globset::GlobSetBuilder::new();
        for p in patterns {
            builder.add(
                globset::Glob::new(p)
                    .map_err(|e| ReleaseError::BadPattern { pattern: p.clone(), reason: e.to_string() })?,
            );
        }
        builder.build().map_err(|e| ReleaseError::BadPattern { pattern: patterns.join(" "), reason: e.to_string() })?
    };
    let wanted: Vec<&Asset> = release
        .assets
        .iter()
        .filter(|a| !is_checksum_file(&a.name) && (patterns.is_empty() || globs.is_match(&a.name)))
        .collect();
    if wanted.is_empty() {
        let available = release.assets.iter().map(|a| a.name.clone()).collect::<Vec<_>>().join(", ");
        return Err(ReleaseError::NoAssets { tag: release.tag_name.clone(), patterns: patterns.join(" "), available });
    }
    // The checksums: one list file, or per-asset `.sha256` files.
    let mut sums = BTreeMap::new();
    let scratch = tempfile::tempdir().map_err(|source| ReleaseError::Io { path: std::env::temp_dir(), source })?;
    for asset in release.assets.iter().filter(|a| is_checksum_file(&a.name)) {
        let per_asset = asset.name.to_ascii_lowercase().ends_with(".sha256")
            && !CHECKSUM_FILES.contains(&asset.name.to_ascii_lowercase().as_str());
        if per_asset && !wanted.iter().any(|w| format!("{}.sha256", w.name) == asset.name) {
            continue;
        }
        let path = scratch.path().join(&asset.name);
        github.download(asset, &path).await?;
        let text = std::fs::read_to_string(&path).map_err(|source| ReleaseError::Io { path: path.clone(), source })?;
        if per_asset {
            let target = asset.name.trim_end_matches(".sha256").to_string();
            if let Some(hex) = text.split_whitespace().next() {
                sums.insert(target, hex.to_ascii_lowercase());
            }
        } else {
            sums.extend(parse_checksums(&text));
        }
    }
    let verified = !sums.is_empty();
    let mut targets: BTreeMap<String, Vec<ArchiveFile>> = BTreeMap::new();
    let mut dirs: BTreeMap<&str, PathBuf> = BTreeMap::new();
    for asset in wanted {
        let (artifact_dir, sub, executable) = layout(&asset.name);
        let root = match dirs.get(artifact_dir) {
            Some(root) => root.clone(),
            None => {
                let root = staging.target_dir(artifact_dir)?;
                dirs.insert(artifact_dir, root.clone());
                root
            }
        };
        let rel =
            [artifact_dir, sub, &asset.name].iter().filter(|p| !p.is_empty()).copied().collect::<Vec<_>>().join("/");
        let dest = root.join(&rel);
        let (actual, digest, size) = github.download(asset, &dest).await?;
        if verified {
            match sums.get(&asset.name) {
                None => return Err(ReleaseError::Unlisted { asset: asset.name.clone() }),
                Some(expected) if *expected != actual => {
                    return Err(ReleaseError::Checksum {
                        asset: asset.name.clone(),
                        expected: expected.clone(),
                        actual,
                    });
                }
                Some(_) => {}
            }
        }
        let mode = if executable { 0o755 } else { 0o644 };
        set_mode(&dest, mode).map_err(|source| ReleaseError::Io { path: dest.clone(), source })?;
        let file = ArchiveFile { path: rel, mode, size, digest: Some(digest), link: None };
        targets.entry(artifact_dir.to_string()).or_default().push(file);
    }
    let manifest = Manifest {
        tbuild: env!("CARGO_PKG_VERSION").into(),
        sha: commit.to_string(),
        repo: format!("https://github.com/{}", github.repo),
        recipe: format!("release {} of {}", release.tag_name, github.repo),
        targets: targets
            .into_iter()
            .map(|(dir, files)| {
                let report = TargetReport {
                    key: format!("release:{}", release.tag_name),
                    status: Status::Hit,
                    source: "release".into(),
                    artifact_dir: dir.clone(),
                    inputs: 0,
                    artifact_digest: None,
                    durations_ms: Durations::default(),
                    files,
                    error: None,
                };
                (dir, report)
            })
            .collect(),
    };
    staging.publish(&manifest)?;
    Ok(Downloaded { manifest, verified })
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
fn set_mode(_: &Path, _: u32) -> std::io::Result<()> {
    Ok(())
}

/// `owner/name` of a github.com repository URL (`https://github.com/o/n(.git)`, `git@github.com:o/n.git`).
pub fn github_repo_of(url: &str) -> Option<String> {
    let rest = url
        .strip_prefix("https://github.com/")
        .or_else(|| url.strip_prefix("http://github.com/"))
        .or_else(|| url.strip_prefix("git@github.com:"))
        .or_else(|| url.strip_prefix("ssh://git@github.com/"))?;
    let rest = rest.trim_end_matches('/').trim_end_matches(".git");
    let mut parts = rest.split('/');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(o), Some(n), None) if !o.is_empty() && !n.is_empty() => Some(format!("{o}/{n}")),
        _ => None,
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    #[error("--repo {repo}: expected OWNER/NAME")]
    BadRepo { repo: String },
    #[error("--pattern {pattern}: {reason}")]
    BadPattern { pattern: String, reason: String },
    #[error("{what} not found in {repo} ({url}); check the tag, and GITHUB_TOKEN for a private repository")]
    NotFound { what: String, repo: String, url: String },
    #[error("GitHub API {url} answered {status}: {body}")]
    Api { url: String, status: u16, body: String, retry_after: Option<Duration> },
    #[error("cannot reach {url}: {reason}")]
    Network { url: String, reason: String },
    #[error("no asset of release {tag} matches '{patterns}' (assets: {available})")]
    NoAssets { tag: String, patterns: String, available: String },
    #[error(
        "checksum mismatch for {asset}: the release says sha256 {expected}, the download is {actual}; nothing written"
    )]
    Checksum { asset: String, expected: String, actual: String },
    #[error("{asset} is not listed in the release's checksum file; refusing an unverifiable asset, nothing written")]
    Unlisted { asset: String },
    #[error(transparent)]
    Publish(#[from] PublishError),
    #[error("i/o error on {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assets_land_in_the_artifact_layout() {
        assert_eq!(layout("tasker-server"), ("tasker-core-binaries", "", true));
        assert_eq!(layout("tasker-ctl"), ("tasker-core-binaries", "", true));
        assert_eq!(layout("tasker_rb.so"), ("tasker-core-ruby", "lib/tasker_core", false));
        assert_eq!(layout("tasker_rb.bundle"), ("tasker-core-ruby", "lib/tasker_core", false));
        assert_eq!(
            layout("tasker_py-0.1.8-cp310-abi3-manylinux_2_34_x86_64.whl"),
            ("tasker-core-python", "wheels", false)
        );
        assert_eq!(layout("tasker_ts.linux-x64-gnu.node"), ("tasker-core-typescript", "", false));
        assert_eq!(layout("libtasker_worker.so"), ("tasker-core-typescript", "", false));
        assert_eq!(layout("tasker-ctl-x86_64.tar.gz"), ("other", "", false));
    }

    #[test]
    fn checksum_files_in_sha256sum_format() {
        let a = "a".repeat(64);
        let text = format!("{a}  tasker-ctl\n{}  *dist/tasker_rb.so\nnot a line\n", "B".repeat(64));
        let sums = parse_checksums(&text);
        assert_eq!(sums["tasker-ctl"], a);
        assert_eq!(sums["tasker_rb.so"], "b".repeat(64));
        assert_eq!(sums.len(), 2);
        assert!(is_checksum_file("SHA256SUMS") && is_checksum_file("tasker-ctl.sha256"));
        assert!(!is_checksum_file("tasker-ctl"));
    }

    #[test]
    fn github_urls_name_their_repository() {
        assert_eq!(
            github_repo_of("https://github.com/tasker-systems/tasker-core.git").unwrap(),
            "tasker-systems/tasker-core"
        );
        assert_eq!(github_repo_of("git@github.com:o/n.git").unwrap(), "o/n");
        assert_eq!(github_repo_of("/tmp/repo"), None);
        assert_eq!(github_repo_of("https://gitlab.com/o/n"), None);
    }
}
