//! The tiered store against an in-memory backend: what a remote may answer, and what of it
//! reaches the local cache.

use std::collections::HashMap;

use super::*;
use crate::cache::remote::{BoxFuture, RemoteBackend, RemoteResult};

/// Objects by path; clones share them.
#[derive(Clone, Default)]
struct Memory {
    objects: Arc<Mutex<HashMap<String, Vec<u8>>>>,
    puts: Arc<Mutex<Vec<String>>>,
}

impl RemoteBackend for Memory {
    fn get<'a>(&'a self, object: &'a Object, dest: &'a Path, _limit: u64) -> BoxFuture<'a, RemoteResult<bool>> {
        Box::pin(async move {
            let Some(bytes) = self.objects.lock().unwrap().get(&object.path()).cloned() else { return Ok(false) };
            std::fs::write(dest, bytes).unwrap();
            Ok(true)
        })
    }
    fn exists<'a>(&'a self, object: &'a Object) -> BoxFuture<'a, RemoteResult<bool>> {
        Box::pin(async move { Ok(self.objects.lock().unwrap().contains_key(&object.path())) })
    }
    fn put<'a>(&'a self, object: &'a Object, payload: &'a Payload) -> BoxFuture<'a, RemoteResult<Stored>> {
        Box::pin(async move {
            let bytes = match payload {
                Payload::Bytes(bytes) => bytes.clone(),
                Payload::File { path, .. } => std::fs::read(path).unwrap(),
            };
            self.objects.lock().unwrap().insert(object.path(), bytes);
            self.puts.lock().unwrap().push(object.path());
            Ok(Stored::Uploaded)
        })
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    store: TieredStore,
    memory: Memory,
    /// Dropped last: the store runs on it.
    _runtime: tokio::runtime::Runtime,
}

fn fixture(signing_key: Option<&str>) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let local = LocalCache::open(dir.path()).unwrap();
    let memory = Memory::default();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let warn: crate::cache::Warn = Arc::new(|_: &str| {});
    let remote = Remote { name: "memory".into(), backend: Box::new(memory.clone()) };
    let signer = signing_key.map(|k| Signer::from_bytes(k.as_bytes()));
    let shared = Shared::new(remote, signer, false, false, warn, &local, 2);
    let store = TieredStore { local, runtime: runtime.handle().clone(), remote: Some(Arc::new(shared)) };
    Fixture { _dir: dir, store, memory, _runtime: runtime }
}

fn hex64(c: char) -> String {
    c.to_string().repeat(64)
}

/// Puts an entry for `key` with `archive` bytes into the remote, as an upload would.
fn seed(f: &Fixture, key: &str, archive: &[u8], signer: Option<&Signer>) -> RemoteRecord {
    let sha256 = hex::encode(Sha256::digest(archive));
    let record = ActionRecord::for_test(key, archive);
    let signature = signer.map(|s| s.sign(&record, &sha256));
    let remote = RemoteRecord { format: REMOTE_FORMAT, record, archive_sha256: sha256.clone(), signature };
    let mut objects = f.memory.objects.lock().unwrap();
    objects.insert(format!("cas/{sha256}"), archive.to_vec());
    objects.insert(format!("ac/{key}"), serde_json::to_vec(&remote).unwrap());
    remote
}

/// A lookup; the reasons of the entries refused on the way.
fn get(f: &Fixture, key: &str) -> (Option<CacheHit>, Vec<String>) {
    let mut refused = Vec::new();
    let hit = f.store.get(key, &mut |c| refused.push(c.reason)).unwrap();
    (hit, refused)
}

#[test]
fn a_remote_hit_lands_in_the_local_cache() {
    let f = fixture(None);
    let key = hex64('a');
    seed(&f, &key, b"archive", None);
    let (hit, refused) = get(&f, &key);
    assert!(refused.is_empty(), "{refused:?}");
    assert_eq!(hit.unwrap().source, HitSource::Remote);
    let (hit, _) = get(&f, &key);
    assert_eq!(hit.unwrap().source, HitSource::Local, "the second lookup is local");
    let summary = f.store.finish().unwrap().unwrap();
    assert_eq!((summary.restored, summary.refused), (1, 0));
}

#[test]
fn what_a_remote_may_not_answer_is_refused_once_and_is_a_miss() {
    let f = fixture(None);
    type Tamper = Box<dyn Fn(RemoteRecord) -> Vec<u8>>;
    let json = |r: RemoteRecord| serde_json::to_vec(&r).unwrap();
    let cases: Vec<(char, Tamper, &str)> = vec![
        ('1', Box::new(|_| b"<html>proxy error</html>".to_vec()), "unreadable remote record"),
        (
            '2',
            Box::new(move |mut r| {
                r.record.key = hex64('f');
                json(r)
            }),
            "record of another key",
        ),
        (
            '3',
            Box::new(move |mut r| {
                r.record.artifact_digest = "../../../../etc/passwd".into();
                json(r)
            }),
            "not 64 hex digits",
        ),
        (
            '4',
            Box::new(move |mut r| {
                r.archive_sha256 = hex64('0');
                json(r)
            }),
            "archive its record names is missing",
        ),
        (
            '5',
            Box::new(move |mut r| {
                r.record.artifact_digest = hex64('0');
                json(r)
            }),
            "archive digest is",
        ),
    ];
    for (c, tamper, expected) in cases {
        let key = hex64(c);
        let remote = seed(&f, &key, format!("archive {c}").as_bytes(), None);
        f.memory.objects.lock().unwrap().insert(format!("ac/{key}"), tamper(remote));
        let (hit, refused) = get(&f, &key);
        assert!(hit.is_none(), "case {c}");
        assert_eq!(refused.len(), 1, "case {c}: {refused:?}");
        assert!(refused[0].contains(expected), "case {c}: {}", refused[0]);
        let (hit, refused) = get(&f, &key);
        assert!(hit.is_none() && refused.is_empty(), "case {c}: reported once per run");
    }
    assert!(!f.store.local().tmp_dir().join("../../etc").exists());
}

#[test]
fn a_record_from_a_newer_tbuild_is_a_plain_miss() {
    let f = fixture(None);
    let key = hex64('b');
    let mut remote = seed(&f, &key, b"archive", None);
    remote.format = REMOTE_FORMAT + 1;
    f.memory.objects.lock().unwrap().insert(format!("ac/{key}"), serde_json::to_vec(&remote).unwrap());
    let (hit, refused) = get(&f, &key);
    assert!(hit.is_none() && refused.is_empty());
}

#[test]
fn signing_keys_decide_what_is_accepted() {
    let f = fixture(Some("k"));
    let (right, wrong) = (Signer::from_bytes(b"k"), Signer::from_bytes(b"other"));
    seed(&f, &hex64('c'), b"one", Some(&right));
    seed(&f, &hex64('d'), b"two", Some(&wrong));
    seed(&f, &hex64('e'), b"three", None);
    assert_eq!(get(&f, &hex64('c')).0.unwrap().source, HitSource::Remote);
    assert!(get(&f, &hex64('d')).1[0].contains("does not match"));
    assert!(get(&f, &hex64('e')).1[0].contains("not signed"));
}

#[test]
fn a_refused_archive_is_uploaded_again_and_records_are_signed() {
    let f = fixture(Some("k"));
    let key = hex64('a');
    let remote = seed(&f, &key, b"good bytes", Some(&Signer::from_bytes(b"k")));
    let cas = format!("cas/{}", remote.archive_sha256);
    f.memory.objects.lock().unwrap().insert(cas.clone(), b"evil bytes".to_vec());
    assert!(get(&f, &key).1[0].contains("archive digest is"));

    // The rebuild stores the same bytes locally and uploads them.
    let archive = f.store.local().tmp_dir().join("built");
    std::fs::write(&archive, b"good bytes").unwrap();
    f.store.put(&remote.record, &archive).unwrap();
    let summary = f.store.finish().unwrap().unwrap();
    assert_eq!(summary.uploaded, 1);
    assert_eq!(f.memory.objects.lock().unwrap()[&cas], b"good bytes", "repaired although it existed");
    let uploaded: RemoteRecord =
        serde_json::from_slice(&f.memory.objects.lock().unwrap()[&format!("ac/{key}")]).unwrap();
    Signer::from_bytes(b"k").check(&uploaded).unwrap();
}

/// A build of `key` stored locally and uploaded, as `core` does after a miss.
fn build_and_upload(f: &Fixture, key: &str, bytes: &[u8]) -> crate::cache::remote::RemoteSummary {
    let record = ActionRecord::for_test(key, bytes);
    let archive = f.store.local().tmp_dir().join("built");
    std::fs::write(&archive, bytes).unwrap();
    f.store.put(&record, &archive).unwrap();
    f.store.finish().unwrap().unwrap()
}

#[test]
fn an_upload_never_replaces_a_record_signed_with_a_key_it_does_not_hold() {
    let trusted = Signer::from_bytes(b"trusted");
    for uploader_key in [Some("wrong"), None] {
        let f = fixture(uploader_key);
        let key = hex64('a');
        let good = seed(&f, &key, b"trusted bytes", Some(&trusted));
        let summary = build_and_upload(&f, &key, b"other bytes");
        assert_eq!((summary.uploaded, summary.kept), (0, 1), "{uploader_key:?}");
        let stored: RemoteRecord =
            serde_json::from_slice(&f.memory.objects.lock().unwrap()[&format!("ac/{key}")]).unwrap();
        trusted.check(&stored).unwrap();
        assert_eq!(stored.record.artifact_digest, good.record.artifact_digest, "{uploader_key:?}");
        assert!(summary.to_string().contains("1 kept (signed with another key)"), "{summary}");
    }
    // Its own entries, unsigned ones and missing ones are written.
    let f = fixture(Some("trusted"));
    seed(&f, &hex64('b'), b"old", Some(&trusted));
    seed(&f, &hex64('c'), b"old unsigned", None);
    for c in ['b', 'c', 'd'] {
        let summary = build_and_upload(&f, &hex64(c), format!("new {c}").as_bytes());
        assert_eq!(summary.kept, 0, "{c}");
        let stored: RemoteRecord =
            serde_json::from_slice(&f.memory.objects.lock().unwrap()[&format!("ac/{}", hex64(c))]).unwrap();
        trusted.check(&stored).unwrap();
        assert_eq!(stored.record.artifact_digest, blake3::hash(format!("new {c}").as_bytes()).to_hex().to_string());
    }
}

#[test]
fn an_entry_refused_after_download_counts_as_refused_and_is_not_fetched_again() {
    let f = fixture(None);
    let key = hex64('a');
    let remote = seed(&f, &key, b"archive", None);
    assert_eq!(get(&f, &key).0.unwrap().source, HitSource::Remote);
    // The unpack refused it: the caller drops it.
    f.store.invalidate(&key, Some(&remote.record.artifact_digest));
    let (hit, refused) = get(&f, &key);
    assert!(hit.is_none() && refused.is_empty(), "not downloaded again in this run");
    let summary = f.store.finish().unwrap().unwrap();
    assert_eq!((summary.restored, summary.refused), (0, 1), "{summary}");
}

#[test]
fn a_record_over_the_entry_size_cap_is_refused_before_its_archive_is_downloaded() {
    let f = fixture(None);
    f.store.set_max_entry_size(4);
    let key = hex64('a');
    seed(&f, &key, b"five!", None);
    let (hit, refused) = get(&f, &key);
    assert!(hit.is_none());
    assert!(refused[0].contains("over --max-entry-size"), "{refused:?}");
    assert!(!f.store.local().blob_path(blake3::hash(b"five!").to_hex().as_str()).exists());
}
