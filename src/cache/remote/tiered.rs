//! Local over remote: lookups try the local cache, then the remote; a remote hit is
//! verified (record parsed, key and signature checked, archive against its sha256 and
//! blake3) and written into the local cache before it is used, so a restore always unpacks
//! from the local store. New entries are uploaded in the background, a few at a time, while
//! the run goes on; [`TieredStore::finish`] waits for them before the run ends.
//!
//! The remote runs on the process's runtime (owned by the command layer, handed in as a
//! [`Handle`]): lookups block on it from the run's thread, uploads are spawned onto it from
//! the build tasks.

use std::collections::HashSet;
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};
use tokio::runtime::Handle;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use super::policy::{Policy, TRIP_AFTER};
use super::{Object, Payload, REMOTE_FORMAT, Remote, RemoteConfig, RemoteError, RemoteRecord, Signer, Stored};
use crate::cache::Warn;
use crate::cache::{
    ActionRecord, ArtifactStore, CacheError, CacheHit, CorruptEntry, HitSource, LocalCache, RECORD_FORMAT, admission,
};

/// A remote record is a few KiB; anything much larger is not one.
const RECORD_LIMIT: u64 = 16 * 1024 * 1024;
/// Uploads in flight at once.
const UPLOAD_CONCURRENCY: usize = 4;

/// The local cache, with a remote under it when one is configured.
pub struct TieredStore {
    local: LocalCache,
    /// The process's runtime: the remote's I/O, and the builds (src/engine/build.rs).
    runtime: Handle,
    remote: Option<Arc<Shared>>,
}

struct Shared {
    name: String,
    remote: Remote,
    policy: Policy,
    signer: Option<Signer>,
    read_only: bool,
    required: bool,
    local: LocalCache,
    permits: Semaphore,
    stats: Mutex<RemoteSummary>,
    /// Keys the remote did not have: the second lookup (under the key lock) skips it.
    misses: Mutex<HashSet<String>>,
    /// Archives refused on download: uploaded again without asking whether they exist.
    bad_archives: Mutex<HashSet<String>>,
    /// Keys restored from the remote in this run (a later refusal moves them to `refused`).
    restored_keys: Mutex<HashSet<String>>,
    /// `--max-entry-size`: a record listing more is refused before its archive is downloaded.
    max_entry_size: AtomicU64,
    uploads: Mutex<Vec<JoinHandle<()>>>,
    /// Upload failures under `--remote-required`, reported by `finish`.
    errors: Mutex<Vec<RemoteError>>,
}

impl Shared {
    /// The state of one run against `remote`: its settings, and empty tallies. `permits`:
    /// how many uploads may run at once. The store and the tests' fixture both start here.
    fn new(
        remote: Remote,
        signer: Option<Signer>,
        read_only: bool,
        required: bool,
        warn: Warn,
        local: &LocalCache,
        permits: usize,
    ) -> Shared {
        let name = remote.name.clone();
        Shared {
            policy: Policy::new(name.clone(), required, warn),
            stats: Mutex::new(RemoteSummary { remote: name.clone(), read_only, ..Default::default() }),
            name,
            remote,
            signer,
            read_only,
            required,
            local: local.clone(),
            permits: Semaphore::new(permits),
            misses: Mutex::default(),
            bad_archives: Mutex::default(),
            restored_keys: Mutex::default(),
            max_entry_size: AtomicU64::new(crate::cache::admission::DEFAULT_MAX_ENTRY_SIZE),
            uploads: Mutex::default(),
            errors: Mutex::default(),
        }
    }
}

/// What the remote did in a run.
#[derive(Debug, Clone, Default)]
pub struct RemoteSummary {
    pub remote: String,
    pub restored: usize,
    pub refused: usize,
    pub uploaded: usize,
    pub already_there: usize,
    /// Uploads not made because the key's record is signed with another key.
    pub kept: usize,
    pub upload_failed: usize,
    pub read_only: bool,
    pub failures: u32,
    pub disabled: bool,
}

impl fmt::Display for RemoteSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "remote {}: {} restored, {} refused, ", self.remote, self.restored, self.refused)?;
        if self.read_only {
            write!(f, "read-only (no uploads)")?;
        } else {
            write!(
                f,
                "{} uploaded, {} already there, {} not uploaded",
                self.uploaded, self.already_there, self.upload_failed
            )?;
            if self.kept > 0 {
                write!(f, ", {} kept (signed with another key)", self.kept)?;
            }
        }
        if self.disabled {
            write!(f, "; skipped after {} failures in a row", TRIP_AFTER)?;
        } else if self.failures > 0 {
            write!(f, "; {} failed operations", self.failures)?;
        }
        Ok(())
    }
}

impl TieredStore {
    /// The store `args` ask for, running on `runtime`; `warn` receives the remote's warnings.
    /// A remote that cannot be configured is an error naming the fix (the caller reports it
    /// as a usage error); one that fails later is not.
    pub fn open(
        local: &LocalCache,
        args: &RemoteConfig,
        offline: bool,
        warn: Warn,
        runtime: Handle,
    ) -> Result<TieredStore, String> {
        let Some(remote) = super::open(args, offline)? else {
            return Ok(TieredStore { local: local.clone(), runtime, remote: None });
        };
        let (read_only, required) = (args.remote_read_only, args.remote_required);
        let shared = Shared::new(remote, Signer::from_env(), read_only, required, warn, local, UPLOAD_CONCURRENCY);
        Ok(TieredStore { local: local.clone(), runtime, remote: Some(Arc::new(shared)) })
    }

    /// Sets `--max-entry-size` for downloads (the default is
    /// [`crate::cache::admission::DEFAULT_MAX_ENTRY_SIZE`]).
    pub fn set_max_entry_size(&self, max: u64) {
        if let Some(shared) = &self.remote {
            shared.max_entry_size.store(max, Ordering::Relaxed);
        }
    }

    pub fn local(&self) -> &LocalCache {
        &self.local
    }

    /// The runtime the store runs on, for the builds that store into it.
    pub fn runtime(&self) -> &Handle {
        &self.runtime
    }

    /// A handle that build tasks use to upload what they stored.
    pub fn uploader(&self) -> Uploader {
        Uploader { remote: self.remote.as_ref().map(|shared| (self.runtime.clone(), shared.clone())) }
    }

    /// Waits for the uploads in flight; the run's remote summary, if there is a remote.
    /// With `--remote-required`, a failed upload is an error.
    pub fn finish(&self) -> Result<Option<RemoteSummary>, CacheError> {
        let Some(shared) = &self.remote else { return Ok(None) };
        let tasks = std::mem::take(&mut *shared.uploads.lock().expect("uploads lock"));
        self.runtime.block_on(async {
            for task in tasks {
                // A panicking upload task is a bug, but never worth failing the run for.
                let _ = task.await;
            }
        });
        if let Some(err) = shared.errors.lock().expect("errors lock").first() {
            return Err(shared.required_error(err.clone()));
        }
        let mut summary = shared.stats.lock().expect("stats lock").clone();
        summary.failures = shared.policy.failures();
        summary.disabled = shared.policy.disabled();
        Ok(Some(summary))
    }
}

impl ArtifactStore for TieredStore {
    fn get(&self, key: &str, on_corrupt: &mut dyn FnMut(CorruptEntry)) -> Result<Option<CacheHit>, CacheError> {
        if let Some(hit) = self.local.get(key, on_corrupt)? {
            return Ok(Some(hit));
        }
        let Some(shared) = &self.remote else { return Ok(None) };
        if Handle::try_current().is_ok() {
            // Blocking on the runtime from inside it would panic; no
            // caller does this today, and a miss is always a safe answer.
            tracing::debug!("remote lookup of {key} skipped: called from an async context");
            return Ok(None);
        }
        self.runtime.block_on(shared.fetch(key, on_corrupt))
    }

    fn put(&self, record: &ActionRecord, archive: &Path) -> Result<(), CacheError> {
        self.local.put(record, archive)?;
        self.uploader().upload(record);
        Ok(())
    }

    fn invalidate(&self, key: &str, hostile_archive: Option<&str>) {
        self.local.invalidate(key, hostile_archive);
        if let Some(shared) = &self.remote {
            shared.refused_after_download(key);
        }
    }
}

/// Uploads entries to the remote in the background (a no-op without a remote, or with
/// `--remote-read-only`).
#[derive(Clone)]
pub struct Uploader {
    remote: Option<(Handle, Arc<Shared>)>,
}

impl Uploader {
    /// Queues the upload of `record` and its archive, already in the local cache.
    pub fn upload(&self, record: &ActionRecord) {
        let Some((handle, shared)) = &self.remote else { return };
        if shared.read_only {
            return;
        }
        let task = handle.spawn({
            let (shared, record) = (shared.clone(), record.clone());
            async move { shared.upload(record).await }
        });
        shared.uploads.lock().expect("uploads lock").push(task);
    }
}

impl Shared {
    /// A remote entry that passed the download checks was refused at unpack: not counted
    /// as restored, and not fetched again by the lookup under the key lock (the rebuild's
    /// upload replaces it).
    fn refused_after_download(&self, key: &str) {
        self.misses.lock().expect("misses lock").insert(key.to_string());
        if self.restored_keys.lock().expect("restored keys lock").remove(key) {
            let mut stats = self.stats.lock().expect("stats lock");
            stats.restored -= 1;
            stats.refused += 1;
        }
    }

    fn required_error(&self, err: RemoteError) -> CacheError {
        CacheError::Remote { remote: self.name.clone(), message: err.to_string() }
    }

    fn temp_file(&self) -> Result<tempfile::TempPath, CacheError> {
        let dir = self.local.tmp_dir();
        let file = tempfile::Builder::new().prefix(".remote-").tempfile_in(&dir).map_err(CacheError::io(&dir))?;
        Ok(file.into_temp_path())
    }

    async fn fetch(&self, key: &str, on_corrupt: &mut dyn FnMut(CorruptEntry)) -> Result<Option<CacheHit>, CacheError> {
        if self.misses.lock().expect("misses lock").contains(key) {
            return Ok(None);
        }
        let record_object = Object::Record(key.to_string());
        let mut refuse = |object: &Object, reason: String| {
            self.stats.lock().expect("stats lock").refused += 1;
            // Reported once: the lookup under the key lock does not fetch it again.
            self.misses.lock().expect("misses lock").insert(key.to_string());
            let path = PathBuf::from(format!("{}/{}", self.name, object.path()));
            on_corrupt(CorruptEntry { key: key.to_string(), path, reason });
            Ok(None)
        };

        let record_file = self.temp_file()?;
        let found = self.policy.run(|| self.remote.backend.get(&record_object, &record_file, RECORD_LIMIT)).await;
        match found.map_err(|e| self.required_error(e))? {
            None => return Ok(None),
            Some(false) => {
                self.misses.lock().expect("misses lock").insert(key.to_string());
                return Ok(None);
            }
            Some(true) => {}
        }
        let bytes = std::fs::read(&record_file).map_err(CacheError::io(record_file.to_path_buf()))?;
        let remote: RemoteRecord = match serde_json::from_slice(&bytes) {
            Ok(remote) => remote,
            Err(err) => return refuse(&record_object, format!("unreadable remote record: {err}")),
        };
        if remote.format > REMOTE_FORMAT || remote.record.format > RECORD_FORMAT {
            // Written by a newer tbuild sharing the remote: not ours to read, not an error.
            tracing::info!("remote record of {key} has a newer format; treated as a miss");
            return Ok(None);
        }
        let record = &remote.record;
        if record.key != key {
            return refuse(&record_object, format!("it is the record of another key ({})", record.key));
        }
        // Both digests become file names: only plain hex may get that far.
        if !is_hex64(&record.artifact_digest) || !is_hex64(&remote.archive_sha256) {
            return refuse(&record_object, "its digests are not 64 hex digits".into());
        }
        // The same validation as every local reader's, before the archive is downloaded.
        if let Err(reason) = record.validate() {
            return refuse(&record_object, format!("invalid action record: {reason}"));
        }
        if let Some(signer) = &self.signer
            && let Err(reason) = signer.check(&remote)
        {
            return refuse(&record_object, reason);
        }
        if let Some(reason) = admission::oversized(record, self.max_entry_size.load(Ordering::Relaxed)) {
            return refuse(&record_object, reason);
        }

        let archive_object = Object::Archive(remote.archive_sha256.clone());
        let archive_file = self.temp_file()?;
        let found =
            self.policy.run(|| self.remote.backend.get(&archive_object, &archive_file, record.artifact_size)).await;
        match found.map_err(|e| self.required_error(e))? {
            None => return Ok(None),
            Some(false) => return refuse(&archive_object, "the archive its record names is missing".into()),
            Some(true) => {}
        }
        let (sha256, blake3, size) = digests(&archive_file).map_err(CacheError::io(archive_file.to_path_buf()))?;
        if sha256 != remote.archive_sha256 || blake3 != record.artifact_digest || size != record.artifact_size {
            self.bad_archives.lock().expect("bad archives lock").insert(remote.archive_sha256.clone());
            let reason = format!(
                "archive digest is sha256 {sha256} / blake3 {blake3} ({size} bytes), its record says {} / {} ({} bytes)",
                remote.archive_sha256, record.artifact_digest, record.artifact_size
            );
            return refuse(&archive_object, reason);
        }
        // Into the local cache the usual way (archive first, record last), then read back
        // through the local tier, which verifies it once more.
        let archive_path =
            archive_file.keep().map_err(|e| CacheError::Io { path: e.path.to_path_buf(), source: e.error })?;
        if let Err(err) = self.local.put(record, &archive_path) {
            let _ = std::fs::remove_file(&archive_path);
            return Err(err);
        }
        let hit = self.local.get(key, on_corrupt)?;
        if hit.is_some() {
            self.stats.lock().expect("stats lock").restored += 1;
            self.restored_keys.lock().expect("restored keys lock").insert(key.to_string());
        }
        Ok(hit.map(|hit| CacheHit { source: HitSource::Remote, ..hit }))
    }

    async fn upload(self: Arc<Self>, record: ActionRecord) {
        let _permit = self.permits.acquire().await.expect("semaphore open");
        let outcome = self.try_upload(&record).await;
        let mut stats = self.stats.lock().expect("stats lock");
        match outcome {
            Ok(Some(Stored::Uploaded)) => stats.uploaded += 1,
            Ok(Some(Stored::AlreadyThere)) => stats.already_there += 1,
            Ok(Some(Stored::Kept)) => stats.kept += 1,
            Ok(None) => stats.upload_failed += 1,
            Err(err) => {
                stats.upload_failed += 1;
                self.errors.lock().expect("errors lock").push(err);
            }
        }
    }

    /// `Ok(None)`: not uploaded (the policy has warned); `Err` only with `--remote-required`.
    async fn try_upload(&self, record: &ActionRecord) -> Result<Option<Stored>, RemoteError> {
        if self.policy.disabled() {
            return Ok(None);
        }
        let blob = self.local.blob_path(&record.artifact_digest);
        let what = format!("upload of {}", record.target);
        let hashed = tokio::task::spawn_blocking({
            let blob = blob.clone();
            move || digests(&blob)
        })
        .await
        .expect("hashing does not panic");
        let (sha256, _, size) = match hashed {
            Ok(digests) => digests,
            Err(err) => {
                // The local entry went away (another run dropped it): nothing to upload.
                let err = RemoteError::Local { what, message: format!("{}: {err}", blob.display()) };
                return if self.required { Err(err) } else { Ok(None) };
            }
        };
        let archive = Object::Archive(sha256.clone());
        let known_bad = self.bad_archives.lock().expect("bad archives lock").contains(&sha256);
        let present =
            if known_bad { Some(false) } else { self.policy.run(|| self.remote.backend.exists(&archive)).await? };
        match present {
            None => return Ok(None),
            Some(true) => {}
            Some(false) => {
                let payload = Payload::File { path: blob, size };
                if self.policy.run(|| self.remote.backend.put(&archive, &payload)).await?.is_none() {
                    return Ok(None);
                }
            }
        }
        let object = Object::Record(record.key.clone());
        match self.may_replace(&object).await? {
            None => return Ok(None),
            Some(Err(reason)) => {
                self.policy.warn(&format!("the record of {} is {reason}; not replaced", record.target));
                return Ok(Some(Stored::Kept));
            }
            Some(Ok(())) => {}
        }
        let signature = self.signer.as_ref().map(|s| s.sign(record, &sha256));
        let remote = RemoteRecord { format: REMOTE_FORMAT, record: record.clone(), archive_sha256: sha256, signature };
        let payload = Payload::Bytes(serde_json::to_vec_pretty(&remote).expect("records serialise"));
        self.policy.run(|| self.remote.backend.put(&object, &payload)).await
    }

    /// Whether this run may overwrite the record at `object` (checked right before the put;
    /// `None` when the remote failed). A record signed with a key this run does not hold
    /// is another writer's trusted entry: replacing it would evict it for every reader with
    /// that key (a pull request with the wrong key evicting `main`'s entries, or two keys
    /// evicting each other forever). A missing, unreadable or unsigned record, or one this
    /// run's key verifies, is replaced: no signed reader trusts it, or it is ours. Between
    /// the check and the put another writer may still slip in: plain HTTP and S3 have no
    /// compare-and-swap; the docs' set-up (only trusted runs write) does not rely on it.
    async fn may_replace(&self, object: &Object) -> Result<Option<Result<(), String>>, RemoteError> {
        let Ok(file) = self.temp_file() else { return Ok(Some(Ok(()))) };
        let found = self.policy.run(|| self.remote.backend.get(object, &file, RECORD_LIMIT)).await?;
        match found {
            None => return Ok(None),
            Some(false) => return Ok(Some(Ok(()))),
            Some(true) => {}
        }
        let Ok(bytes) = std::fs::read(&file) else { return Ok(Some(Ok(()))) };
        let Ok(existing) = serde_json::from_slice::<RemoteRecord>(&bytes) else { return Ok(Some(Ok(()))) };
        if existing.signature.is_none() {
            return Ok(Some(Ok(())));
        }
        Ok(Some(match &self.signer {
            Some(signer) if signer.check(&existing).is_ok() => Ok(()),
            Some(_) => Err("signed with another TBUILD_SIGNING_KEY than this run's".into()),
            None => Err("signed, and this run has no TBUILD_SIGNING_KEY".into()),
        }))
    }
}

/// sha256 and blake3 hex of a file, and its size, in one read.
fn digests(path: &Path) -> std::io::Result<(String, String, u64)> {
    let mut file = std::fs::File::open(path)?;
    let (mut sha256, mut blake3) = (Sha256::new(), blake3::Hasher::new());
    let mut buf = vec![0u8; 256 * 1024];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        sha256.update(&buf[..n]);
        blake3.update(&buf[..n]);
        size += n as u64;
    }
    let sha256 = hex::encode(sha256.finalize());
    Ok((sha256, blake3.finalize().to_hex().to_string(), size))
}

fn is_hex64(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

#[cfg(test)]
#[path = "tiered_tests.rs"]
mod tests;
