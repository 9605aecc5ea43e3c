//! The GitHub Actions cache, service v2: Twirp JSON RPCs at
//! `$ACTIONS_RESULTS_URL/twirp/github.actions.results.api.v1.CacheService/<Method>` with the
//! bearer `ACTIONS_RUNTIME_TOKEN`, and the bytes themselves at signed Azure blob URLs.
//!
//! Saving is `CreateCacheEntry {key, version}` -> `signed_upload_url`, a Put Blob
//! (`x-ms-blob-type: BlockBlob`) of the whole object to it, then `FinalizeCacheEntryUpload
//! {key, version, size_bytes}`. Restoring is `GetCacheEntryDownloadURL {key, restore_keys,
//! version}` -> `signed_download_url` (and `matched_key`), then a plain GET. Entries are
//! immutable: the service answers 409 to a second writer of a key, which means someone else
//! saved it. Field names are the proto names, as actions/toolkit sends them
//! (`useProtoFieldName`); int64 values travel as JSON strings.
//!
//! Each object is one entry, keyed `tbuild-ac-<key>` or `tbuild-cas-<sha256>`; `version`
//! (which the toolkit derives from paths and compressor) is fixed per remote format, so that
//! entries of `actions/cache` never match ours. The service allows about 200 uploads a
//! minute per repository: creates are paced below that here, and a 429 is retried by the
//! policy with backoff.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use reqwest::header::CONTENT_LENGTH;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::transfer::{Net, body, download, expect_success, send, status_error};
use super::{BoxFuture, Object, Payload, REMOTE_FORMAT, RemoteError, RemoteResult, Stored};

const SERVICE: &str = "github.actions.results.api.v1.CacheService";
/// Azure's Put Blob takes up to 5000 MiB in one request from this version on.
const AZURE_VERSION: &str = "2019-12-12";
const PUT_BLOB_LIMIT: u64 = 5000 * 1024 * 1024;
const UPLOADS_PER_MINUTE: usize = 180;

pub struct GhaBackend {
    net: Net,
    /// `$ACTIONS_RESULTS_URL` without a trailing `/`.
    service: String,
    token: String,
    version: String,
    /// Start times of the creates of the last minute.
    recent_creates: Mutex<VecDeque<Instant>>,
}

impl GhaBackend {
    pub fn from_env(net: Net) -> Result<GhaBackend, String> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let (Some(service), Some(token)) = (var("ACTIONS_RESULTS_URL"), var("ACTIONS_RUNTIME_TOKEN")) else {
            return Err(
                "--remote gha needs ACTIONS_RESULTS_URL and ACTIONS_RUNTIME_TOKEN, which GitHub gives only to \
JavaScript actions: export them from a JavaScript action in an earlier step (tbuild's GitHub \
action does) or use another --remote"
                    .into(),
            );
        };
        let version = hex::encode(Sha256::digest(format!("tbuild remote format {REMOTE_FORMAT}")));
        Ok(GhaBackend {
            net,
            service: service.trim_end_matches('/').to_string(),
            token,
            version,
            recent_creates: Mutex::new(VecDeque::new()),
        })
    }

    fn entry_key(object: &Object) -> String {
        match object {
            Object::Record(key) => format!("tbuild-ac-{key}"),
            Object::Archive(sha256) => format!("tbuild-cas-{sha256}"),
        }
    }

    /// One Twirp call. `Ok(None)` for 409 (the entry exists).
    async fn rpc(&self, method: &str, request: Value) -> RemoteResult<Option<Value>> {
        let what = method.to_string();
        let url = format!("{}/twirp/{SERVICE}/{method}", self.service);
        let request = self.net.client.post(url).bearer_auth(&self.token).timeout(self.net.timeout).json(&request);
        let response = send(&what, request, self.net.timeout).await?;
        if response.status() == StatusCode::CONFLICT {
            return Ok(None);
        }
        if !response.status().is_success() {
            return Err(status_error(&what, response).await);
        }
        let text =
            response.text().await.map_err(|e| RemoteError::Connect { what: what.clone(), message: e.to_string() })?;
        let value: Value = serde_json::from_str(&text)
            .map_err(|e| RemoteError::Garbage { what: what.clone(), reason: format!("not JSON: {e}") })?;
        if !value.is_object() {
            return Err(RemoteError::Garbage { what, reason: "not a JSON object".into() });
        }
        Ok(Some(value))
    }

    /// Waits until one more create stays under the per-minute budget.
    async fn pace(&self) {
        loop {
            let wait = {
                let mut recent = self.recent_creates.lock().expect("pace lock");
                let now = Instant::now();
                while recent.front().is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(60)) {
                    recent.pop_front();
                }
                if recent.len() < UPLOADS_PER_MINUTE {
                    recent.push_back(now);
                    return;
                }
                Duration::from_secs(60) - now.duration_since(*recent.front().expect("full"))
            };
            tokio::time::sleep(wait).await;
        }
    }
}

fn str_field<'v>(value: &'v Value, name: &str) -> Option<&'v str> {
    value.get(name).and_then(Value::as_str).filter(|s| !s.is_empty())
}

impl super::RemoteBackend for GhaBackend {
    fn get<'a>(&'a self, object: &'a Object, dest: &'a Path, limit: u64) -> BoxFuture<'a, RemoteResult<bool>> {
        Box::pin(async move {
            let key = Self::entry_key(object);
            let request = json!({ "key": key, "restore_keys": [], "version": self.version });
            let Some(answer) = self.rpc("GetCacheEntryDownloadURL", request).await? else { return Ok(false) };
            if answer.get("ok").and_then(Value::as_bool) != Some(true) {
                return Ok(false);
            }
            // Only our exact key: a prefix match would be another object.
            if str_field(&answer, "matched_key").is_some_and(|matched| matched != key) {
                return Ok(false);
            }
            let what = format!("download {}", object.path());
            let Some(url) = str_field(&answer, "signed_download_url") else {
                return Err(RemoteError::Garbage { what, reason: "ok without signed_download_url".into() });
            };
            let response = send(&what, self.net.client.get(url), self.net.timeout).await?;
            download(&what, response, dest, limit, self.net.timeout).await
        })
    }

    fn exists<'a>(&'a self, _object: &'a Object) -> BoxFuture<'a, RemoteResult<bool>> {
        // A create answers 409 when the entry exists: one RPC instead of two.
        Box::pin(async { Ok(false) })
    }

    fn put<'a>(&'a self, object: &'a Object, payload: &'a Payload) -> BoxFuture<'a, RemoteResult<Stored>> {
        Box::pin(async move {
            let key = Self::entry_key(object);
            let what = format!("upload {}", object.path());
            if payload.size() > PUT_BLOB_LIMIT {
                let reason = format!("{} bytes is more than one Azure Put Blob takes", payload.size());
                return Err(RemoteError::Local { what, message: reason });
            }
            self.pace().await;
            let request = json!({ "key": key, "version": self.version });
            let Some(created) = self.rpc("CreateCacheEntry", request).await? else {
                return Ok(Stored::AlreadyThere);
            };
            let Some(url) = str_field(&created, "signed_upload_url").filter(|_| created["ok"] == true) else {
                // `ok: false`: the service would not reserve the key, in practice because
                // another job is saving it.
                return Ok(Stored::AlreadyThere);
            };
            let (body, len) = body(&what, payload).await?;
            let request = self
                .net
                .uploads
                .put(url)
                .header("x-ms-blob-type", "BlockBlob")
                .header("x-ms-version", AZURE_VERSION)
                .header(CONTENT_LENGTH, len)
                .body(body);
            let timeout = self.net.upload_timeout(len);
            expect_success(&what, send(&what, request.timeout(timeout), timeout).await?).await?;
            let request = json!({ "key": key, "version": self.version, "size_bytes": len.to_string() });
            match self.rpc("FinalizeCacheEntryUpload", request).await? {
                None => Ok(Stored::AlreadyThere),
                Some(done) if done.get("ok").and_then(Value::as_bool) == Some(true) => Ok(Stored::Uploaded),
                Some(done) => Err(RemoteError::Garbage {
                    what: "FinalizeCacheEntryUpload".into(),
                    reason: str_field(&done, "message").unwrap_or("ok is false").to_string(),
                }),
            }
        })
    }
}
