//! The remote tier: a cache shared by machines, layered under the local one.
//!
//! Every backend stores two kinds of objects (the remote layout, drawn in `cache-layout.md`):
//! the remote record of a key (`ac/<key>`: the action record, the archive's sha256 and an
//! optional signature) and the archive by its sha256 (`cas/<sha256>`). sha256 rather than
//! blake3 names the archive because HTTP caches such as bazel-remote check `cas/` uploads
//! against their sha256. Nothing a remote returns is trusted: the record is parsed, its key
//! and signature checked, the archive verified against both digests before it enters the
//! local cache ([`tiered`]).
//!
//! A backend only moves bytes ([`RemoteBackend`]); retries, the circuit breaker and the
//! one warning live in [`policy`]; the local-over-remote lookup and background uploads live
//! in [`tiered`]. A backend is chosen by URL: `http(s)://host/prefix`, `s3://bucket/prefix`
//! or `gha`.

mod gha;
mod http;
mod policy;
mod s3;
mod signing;
mod tiered;
mod transfer;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::time::Duration;

pub use signing::{REMOTE_FORMAT, RemoteRecord, Signer};
pub use tiered::{RemoteSummary, TieredStore, Uploader};

/// The remote a run asks for (`--remote` and its flags, or the config file), as plain values.
#[derive(Debug, Clone, Default)]
pub struct RemoteConfig {
    /// `http(s)://...`, `s3://bucket/prefix` or `gha`; `None` or empty: no remote.
    pub remote: Option<String>,
    /// An S3-compatible endpoint (path-style); `None`: AWS S3 in `AWS_REGION`.
    pub s3_endpoint: Option<String>,
    /// A remote that fails is an error instead of a warning.
    pub remote_required: bool,
    /// Restore from the remote but never upload.
    pub remote_read_only: bool,
    /// Seconds a remote may stay silent before a request is abandoned.
    pub remote_timeout: u64,
}

/// A boxed future, so that [`RemoteBackend`] stays object-safe without a macro crate.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One object of the remote layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Object {
    /// The remote record of a key (JSON, [`RemoteRecord`]).
    Record(String),
    /// An archive, by the sha256 hex of its bytes.
    Archive(String),
}

impl Object {
    /// Its path under the remote's prefix: `ac/<key>` or `cas/<sha256>`.
    pub fn path(&self) -> String {
        match self {
            Object::Record(key) => format!("ac/{key}"),
            Object::Archive(sha256) => format!("cas/{sha256}"),
        }
    }
}

/// What to upload.
#[derive(Debug, Clone)]
pub enum Payload {
    Bytes(Vec<u8>),
    File { path: PathBuf, size: u64 },
}

impl Payload {
    pub fn size(&self) -> u64 {
        match self {
            Payload::Bytes(bytes) => bytes.len() as u64,
            Payload::File { size, .. } => *size,
        }
    }
}

/// How an upload ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    Uploaded,
    /// Someone else stored it first (the Actions cache answers 409 to a second writer).
    AlreadyThere,
    /// The key's record there is signed with a key this run does not hold: left as it was
    /// (never returned by a backend; see `Shared::may_replace` in `tiered.rs`).
    Kept,
}

/// A remote cache backend: moves objects, nothing else. Each call is one attempt; the
/// caller retries what [`RemoteError::retryable`] says may succeed later.
pub trait RemoteBackend: Send + Sync {
    /// Downloads `object` into the file `dest` (created or truncated), refusing more than
    /// `limit` bytes. `false` if the remote does not have it.
    fn get<'a>(&'a self, object: &'a Object, dest: &'a Path, limit: u64) -> BoxFuture<'a, RemoteResult<bool>>;
    /// Whether the remote has `object` (to skip uploading an archive it already holds).
    /// Backends that cannot tell cheaply answer `false` and let `put` find out.
    fn exists<'a>(&'a self, object: &'a Object) -> BoxFuture<'a, RemoteResult<bool>>;
    fn put<'a>(&'a self, object: &'a Object, payload: &'a Payload) -> BoxFuture<'a, RemoteResult<Stored>>;
}

pub type RemoteResult<T> = Result<T, RemoteError>;

/// One failed attempt at a remote operation. `what` names the operation (`GET ac/ab12…`).
#[derive(Debug, Clone, thiserror::Error)]
pub enum RemoteError {
    #[error("{what}: no answer within {} s", after.as_secs())]
    Timeout { what: String, after: Duration },
    #[error("{what}: {message}")]
    Connect { what: String, message: String },
    #[error("{what}: HTTP {status}{}", if body.is_empty() { String::new() } else { format!(" ({body})") })]
    Status { what: String, status: u16, body: String, retry_after: Option<Duration> },
    #[error("{what}: unexpected answer: {reason}")]
    Garbage { what: String, reason: String },
    #[error("{what}: {message}")]
    Local { what: String, message: String },
}

impl RemoteError {
    /// Worth another attempt: the connection failed, or the server said "later" (429, 5xx).
    /// A timeout is not retried: a server that hangs once usually hangs again, and each
    /// attempt would cost the whole timeout.
    pub fn retryable(&self) -> bool {
        match self {
            RemoteError::Connect { .. } => true,
            RemoteError::Status { status, .. } => crate::http::retryable_status(*status),
            RemoteError::Timeout { .. } | RemoteError::Garbage { .. } | RemoteError::Local { .. } => false,
        }
    }

    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            RemoteError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// A configured remote: its backend and a name for messages (credentials removed).
pub struct Remote {
    pub name: String,
    pub backend: Box<dyn RemoteBackend>,
}

/// The remote that `args` ask for, or `None` (no `--remote`, or `--offline`). A URL that
/// cannot work (unknown scheme, missing credentials) is a usage error naming the fix.
pub fn open(args: &RemoteConfig, offline: bool) -> Result<Option<Remote>, String> {
    let Some(url) = args.remote.as_deref().filter(|u| !u.is_empty()) else {
        if args.remote_required {
            return Err("--remote-required needs a remote: pass --remote URL or set TBUILD_REMOTE".into());
        }
        return Ok(None);
    };
    if offline {
        if args.remote_required {
            return Err("--offline and --remote-required contradict each other: --offline uses no remote".into());
        }
        return Ok(None);
    }
    let timeout = Duration::from_secs(args.remote_timeout.max(1));
    let net = transfer::Net::new(timeout).map_err(|e| format!("cannot set up the HTTP client: {e}"))?;
    let remote = if url == "gha" {
        let backend = gha::GhaBackend::from_env(net)?;
        Remote { name: "gha".into(), backend: Box::new(backend) }
    } else if let Some(rest) = url.strip_prefix("s3://") {
        let backend = s3::S3Backend::new(net, rest, args.s3_endpoint.as_deref(), |name| std::env::var(name).ok())?;
        Remote { name: format!("s3://{rest}"), backend: Box::new(backend) }
    } else if url.starts_with("http://") || url.starts_with("https://") {
        let backend = http::HttpBackend::new(net, url, std::env::var("TBUILD_REMOTE_TOKEN").ok())?;
        Remote { name: backend.display_url(), backend: Box::new(backend) }
    } else {
        return Err(format!(
            "--remote {url:?} is not a remote this tbuild knows: use http(s)://host/prefix, s3://bucket/prefix or gha"
        ));
    };
    Ok(Some(remote))
}
