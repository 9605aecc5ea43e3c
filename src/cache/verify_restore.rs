//! The part of `tbuild cache verify` that does what a restore does: an entry whose digests
//! are right can still be one a restore refuses (an unsafe archive, a layout that cannot be
//! unpacked, files that differ from the record). Each such entry is unpacked into a temp dir
//! under `v1/tmp/`, with the limits its record implies, exactly as a copy-mode hit would be,
//! and the outcome classified as `Stage::unrestorable` in `src/engine/restore.rs` does.

use super::admission::{free_bytes, layout_collision, oversized, unpacked_size};
use super::{ActionRecord, CacheError, LocalCache, UnpackLimits, unpack};

/// Why a restore of `record` would be refused, and whether its archive is unsafe under any
/// record (then it goes too); `None` when it would be restored. An archive that is missing
/// or corrupt is reported by the digest checks, not here.
pub(super) fn refused(
    cache: &LocalCache,
    record: &ActionRecord,
    max_entry_size: u64,
) -> Result<Option<(String, bool)>, CacheError> {
    if let Some(reason) = oversized(record, max_entry_size) {
        return Ok(Some((format!("a restore refuses it: {reason}"), false)));
    }
    let blob = cache.blob_path(&record.artifact_digest);
    let tmp = cache.tmp_dir();
    let needed = unpacked_size(record);
    if free_bytes(&tmp).is_ok_and(|free| free < needed) {
        // Not a fault of the entry; a restore would say so with both sizes.
        tracing::warn!("not test-unpacking {}: {needed} bytes do not fit in {}", blob.display(), tmp.display());
        return Ok(None);
    }
    let scratch = tempfile::Builder::new().prefix(".verify-").tempdir_in(&tmp).map_err(CacheError::io(&tmp))?;
    let outcome = unpack(&blob, None, scratch.path(), UnpackLimits::for_files(&record.files));
    Ok(match outcome {
        Ok(files) if files == record.files => None,
        Ok(_) => Some(("a restore refuses it: its files differ from its action record".into(), false)),
        Err(err @ CacheError::UnsafeEntry { .. }) => Some((format!("a restore refuses it: {err}"), true)),
        Err(CacheError::Io { path, source }) if layout_collision(&source) && path.starts_with(scratch.path()) => {
            let at = path.strip_prefix(scratch.path()).unwrap_or(&path).display().to_string();
            Some((format!("a restore refuses it: its layout cannot be unpacked at {at:?} ({source})"), true))
        }
        Err(err @ CacheError::CorruptArchive { .. }) => Some((format!("a restore refuses it: {err}"), false)),
        // Gone meanwhile (a concurrent gc): nothing to say.
        Err(CacheError::Io { path, source }) if path == blob && source.kind() == std::io::ErrorKind::NotFound => None,
        Err(err) => return Err(err),
    })
}
