//! Bundles: one file that carries a commit's cache entries (action records and archives)
//! and, optionally, the git objects of the commit, from one machine to another
//! (`tbuild cache export` / `tbuild cache import`). The format is documented in
//! `cache-layout.md` ("Bundles") and versioned by [`BUNDLE_FORMAT`].
//!
//! A bundle is a plain tar. Its last member holds the blake3 of every byte before it, so a
//! reader checks the whole file before it looks at anything; the manifest also lists each
//! member's size and blake3, and each record must name the archive that came with it.
//! Nothing is published until all of that holds.

mod read;
mod write;

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use read::{StagedBundle, stage};
pub use write::BundleWriter;

/// Format of bundles written by this tbuild; readers refuse a larger one.
pub const BUNDLE_FORMAT: u32 = 1;
/// The manifest member.
pub const MANIFEST: &str = "tbuild-bundle.json";
/// The last member: `<blake3 hex of every byte before its header>\n`.
pub const DIGEST_MEMBER: &str = "tbuild-bundle.blake3";
/// The git pack member (`--with-source`).
pub const SOURCE_PACK: &str = "source.pack";

/// `tbuild-bundle.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BundleManifest {
    pub format: u32,
    /// Version of the tbuild that wrote it.
    pub tbuild: String,
    pub created_at: u64,
    /// The repository the commit came from (normalised URL or absolute path).
    pub repo: String,
    /// The full SHA of the commit.
    pub sha: String,
    pub entries: Vec<BundleEntry>,
    /// The git objects of the commit, with `--with-source`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<BundleSource>,
    /// Every other member of the bundle by name: its size and blake3.
    pub members: BTreeMap<String, MemberDigest>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BundleEntry {
    pub target: String,
    pub key: String,
    /// Member holding the action record: `records/<key>.json`.
    pub record: String,
    /// Member holding the archive: `blobs/<artifact_digest>.tar.zst`.
    pub archive: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BundleSource {
    /// Member holding a git packfile with the commit, its tree and every blob in it.
    pub pack: String,
    pub commit: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberDigest {
    pub size: u64,
    pub blake3: String,
}

pub fn record_member(key: &str) -> String {
    format!("records/{key}.json")
}

pub fn archive_member(digest: &str) -> String {
    format!("blobs/{digest}.tar.zst")
}

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("bundle {file} is damaged or not a tbuild bundle ({reason}); nothing was imported")]
    Corrupt { file: PathBuf, reason: String },
    #[error(
        "bundle {file} has format {found}, newer than this tbuild understands ({supported}); nothing was imported: upgrade tbuild"
    )]
    NewerFormat { file: PathBuf, found: u32, supported: u32 },
    #[error(
        "not in the cache for {sha}: {}; build them first (`tbuild core --sha {sha}`) or export the others with --targets",
        targets.join(", ")
    )]
    Missing { sha: String, targets: Vec<String> },
    #[error("bundle i/o error on {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("git error while {action}")]
    Git {
        action: String,
        #[source]
        source: git2::Error,
    },
}

impl BundleError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> BundleError {
        let path = path.into();
        move |source| BundleError::Io { path, source }
    }
}
