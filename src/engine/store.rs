//! The store stage: a built target's files packed into one archive and recorded under its
//! key, in the local cache at once and on the remote tier in the background.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use super::plan::PlannedTarget;
use crate::cache::remote::Uploader;
use crate::cache::{ActionRecord, ArtifactStore, AtomicFile, KeyDerivation, LocalCache, RECORD_FORMAT, now_secs, pack};
use crate::error::Error;

/// Packs a built target's files and stores the archive and its action record.
pub fn store(
    p: &PlannedTarget,
    files: BTreeMap<String, PathBuf>,
    took: Duration,
    cache: &LocalCache,
    uploads: &Uploader,
    sha: &str,
) -> Result<ActionRecord, Error> {
    let staged = cache.tmp_dir().join(format!("pack-{}.tar.zst", p.key));
    let (packed, file) = pack(&files, AtomicFile::create(&cache.tmp_dir(), &staged)?)?;
    file.commit()?;
    let record = ActionRecord {
        format: RECORD_FORMAT,
        target: p.target.name.clone(),
        key: p.key.clone(),
        artifact_digest: packed.digest,
        artifact_size: packed.size,
        files: packed.files,
        build_duration_ms: took.as_millis() as u64,
        provenance: sha.to_string(),
        toolchain: p.toolchain.clone(),
        created_at: now_secs(),
        derivation: Some(KeyDerivation::new(&p.target, &p.key_env, &p.inputs)),
    };
    cache.put(&record, &staged)?;
    uploads.upload(&record);
    Ok(record)
}
