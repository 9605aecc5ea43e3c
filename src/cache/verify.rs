//! `tbuild cache verify`: re-hash every archive against its name, check every record
//! against its archive, every unpacked tree against its record (`verify_trees`), and
//! test-unpack every entry that passes, as a restore would. Report-only by default (the bad files stay for inspection; readers
//! already refuse them); `--fix` removes them. Either way, finding corruption is exit 7.

use std::collections::BTreeMap;
use std::fs;
use std::io::ErrorKind;
use std::path::PathBuf;

use super::archive::digest_file;
use super::{CacheError, LocalCache, entries, verify_trees};

#[derive(Debug, Default, serde::Serialize)]
pub struct VerifyReport {
    pub records: usize,
    pub archives: usize,
    /// Unpacked trees checked (`v1/trees/`, made by `--link-mode hardlink|reflink`).
    pub trees: usize,
    pub bytes_hashed: u64,
    pub problems: Vec<Problem>,
}

/// A record or archive that failed a check.
#[derive(Debug, serde::Serialize)]
pub struct Problem {
    pub path: PathBuf,
    /// `record`, `archive` or `tree`.
    pub kind: &'static str,
    /// The target of a record, when it could be read.
    pub target: Option<String>,
    pub reason: String,
    /// Whether `--fix` removed it (false when another tbuild held the key, or without --fix).
    pub removed: bool,
}

/// Checks the whole store; with `fix`, removes what is bad. Entries over `max_entry_size`
/// are reported as a restore would refuse them.
pub fn verify(cache: &LocalCache, fix: bool, max_entry_size: u64) -> Result<VerifyReport, CacheError> {
    let mut report = VerifyReport::default();
    // Archives: each must hash to its own name.
    let mut archive_ok: BTreeMap<String, bool> = BTreeMap::new();
    for blob in entries::blobs(cache)? {
        let ok = match digest_file(&blob.path) {
            Ok(actual) if actual.to_hex().as_str() == blob.digest => true,
            Ok(actual) => {
                report.problems.push(Problem {
                    path: blob.path.clone(),
                    kind: "archive",
                    target: None,
                    reason: format!("its content hashes to {}", actual.to_hex()),
                    removed: false,
                });
                false
            }
            Err(err) if err.kind() == ErrorKind::NotFound => continue, // gc'd meanwhile
            Err(err) if err.kind() == ErrorKind::InvalidData => {
                let reason = format!("unusable: {err}");
                report.problems.push(Problem {
                    path: blob.path.clone(),
                    kind: "archive",
                    target: None,
                    reason,
                    removed: false,
                });
                false
            }
            Err(source) => return Err(CacheError::Io { path: blob.path, source }),
        };
        report.archives += 1;
        report.bytes_hashed += blob.size;
        archive_ok.insert(blob.digest, ok);
    }
    // Records: readable, named by their key, pointing at a present, sound archive of their size.
    let mut files_of: BTreeMap<String, Vec<super::ArchiveFile>> = BTreeMap::new();
    for entry in entries::records(cache)? {
        report.records += 1;
        if let Ok(r) = &entry.record {
            files_of.entry(r.artifact_digest.clone()).or_insert_with(|| r.files.clone());
        }
        let reason = match &entry.record {
            Err(reason) => Some(reason.clone()),
            Ok(r) if r.key != entry.key => Some(format!("it holds key {}, not the key it is named by", r.key)),
            Ok(r) => {
                let blob = cache.blob_path(&r.artifact_digest);
                match (archive_ok.get(&r.artifact_digest), fs::symlink_metadata(&blob)) {
                    (Some(false), _) => Some("its archive is corrupt".to_string()),
                    (_, Ok(meta)) if meta.len() != r.artifact_size => {
                        Some(format!("its archive has {} bytes, the record says {}", meta.len(), r.artifact_size))
                    }
                    (Some(true), _) => None,
                    // Stored after the archive scan: check it now.
                    (None, Ok(_)) => match digest_file(&blob) {
                        Ok(actual) if actual.to_hex().as_str() == r.artifact_digest => None,
                        Ok(actual) => Some(format!("its archive hashes to {}", actual.to_hex())),
                        Err(_) => None,
                    },
                    // Both gone: evicted by a concurrent gc, not corrupt.
                    (None, Err(_)) if !entry.path.exists() => {
                        report.records -= 1;
                        continue;
                    }
                    (None, Err(_)) => Some(format!("its archive {} is missing", blob.display())),
                }
            }
        };
        // Sound digests: would a restore take it? (see verify_restore.rs)
        let reason = match (reason, &entry.record) {
            (None, Ok(record)) => match super::verify_restore::refused(cache, record, max_entry_size)? {
                Some((reason, hostile)) => {
                    let blob = cache.blob_path(&record.artifact_digest);
                    if hostile && !report.problems.iter().any(|p| p.path == blob) {
                        let reason = "a restore refuses it under any record (see its record)".into();
                        report.problems.push(Problem {
                            path: blob,
                            kind: "archive",
                            target: None,
                            reason,
                            removed: false,
                        });
                    }
                    Some(reason)
                }
                None => None,
            },
            (reason, _) => reason,
        };
        let Some(reason) = reason else { continue };
        let target = entry.record.as_ref().ok().map(|r| r.target.clone());
        report.problems.push(Problem { path: entry.path, kind: "record", target, reason, removed: false });
    }
    // Trees (--link-mode hardlink|reflink): every file hashed against a record's digest.
    report.trees = verify_trees::check(cache, &files_of, &mut report.problems)?;
    if fix {
        remove_problems(cache, &mut report.problems)?;
    }
    Ok(report)
}

/// Removes bad records under their key lock (skipping keys another tbuild holds), then bad
/// archives under the blobs lock.
fn remove_problems(cache: &LocalCache, problems: &mut [Problem]) -> Result<(), CacheError> {
    for problem in problems.iter_mut().filter(|p| p.kind == "record") {
        let key = problem.path.file_stem().and_then(|s| s.to_str()).unwrap_or_default().to_string();
        let Some(_lock) = cache.try_lock_key(&key)? else { continue };
        problem.removed = remove(&problem.path)?;
    }
    let _blobs = cache.lock_blobs(true)?;
    for problem in problems.iter_mut().filter(|p| p.kind == "archive") {
        problem.removed = remove(&problem.path)?;
    }
    // A tree is derived data: moved aside and deleted (a reader linking from it meanwhile
    // takes the copy path); the next linked hit makes it again from the archive.
    for problem in problems.iter_mut().filter(|p| p.kind == "tree") {
        super::link::remove_tree(cache, &problem.path);
        problem.removed = fs::symlink_metadata(&problem.path).is_err();
    }
    Ok(())
}

fn remove(path: &std::path::Path) -> Result<bool, CacheError> {
    entries::remove_cache_file(path).map_err(CacheError::io(path))?;
    Ok(true)
}
