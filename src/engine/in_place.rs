//! Skipping a repeat: when `--out` already holds exactly what this run would publish, leave
//! it alone instead of restoring every archive again.
//!
//! After each publish, tbuild records the `lstat` of every entry of the out dir (device,
//! inode, size, mode, mtime and ctime to the nanosecond) in `v1/outs/<id>.json`, with the
//! digest of the manifest it wrote. A later run of the same commit with the same keys skips
//! the restore when the out dir's entries still have exactly those stats: any write, chmod,
//! rename or replacement changes a file's ctime or inode, and ctime cannot be set back by a
//! user. Like git's index, one race is left: a write in the same clock tick as the stat
//! (kernel timestamps are coarse); entries whose ctime is not older than the stat's own
//! clock reading are marked racy and re-hashed against the manifest on the next check.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::cache::{CacheError, LocalCache, write_atomic};
use crate::engine::publish::{Durations, MANIFEST, Manifest, Status};

const FORMAT: u32 = 1;

#[derive(Debug, Serialize, Deserialize)]
struct OutRecord {
    format: u32,
    /// The out dir, absolute (the record's name is a digest of it).
    out: PathBuf,
    /// blake3 of the `manifest.json` that was published.
    manifest: String,
    entries: BTreeMap<String, EntryStat>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct EntryStat {
    dev: u64,
    ino: u64,
    size: u64,
    mode: u32,
    mtime_ns: i128,
    ctime_ns: i128,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    racy: bool,
}

impl EntryStat {
    fn of(meta: &fs::Metadata) -> EntryStat {
        EntryStat {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mode: meta.mode(),
            mtime_ns: meta.mtime() as i128 * 1_000_000_000 + meta.mtime_nsec() as i128,
            ctime_ns: meta.ctime() as i128 * 1_000_000_000 + meta.ctime_nsec() as i128,
            racy: false,
        }
    }
}

fn record_path(cache: &LocalCache, out: &Path) -> PathBuf {
    let id = blake3::hash(out.as_os_str().as_encoded_bytes()).to_hex();
    cache.outs_dir().join(format!("{}.json", &id[..32]))
}

/// Records the out dir as just published. Best effort: without a record the next run
/// simply restores again.
pub fn record(cache: &LocalCache, out: &Path) {
    let attempt = || -> std::io::Result<()> {
        let out = out.canonicalize()?;
        let manifest = blake3::hash(&fs::read(out.join(MANIFEST))?).to_hex().to_string();
        let mut entries = BTreeMap::new();
        walk(&out, &out, &mut entries)?;
        // The clock as the filesystem sees it now: entries changed in this tick are racy.
        let stamp = tempfile::NamedTempFile::new_in(cache.tmp_dir())?;
        let now = EntryStat::of(&stamp.as_file().metadata()?).ctime_ns;
        for stat in entries.values_mut() {
            stat.racy = stat.ctime_ns >= now;
        }
        let record = OutRecord { format: FORMAT, out: out.clone(), manifest, entries };
        cache.put_json(&record_path(cache, &out), &record).map_err(std::io::Error::other)
    };
    if let Err(err) = attempt() {
        tracing::debug!("no in-place record for {}: {err}", out.display());
    }
}

/// The manifest in `out` if it was published for `sha` with exactly `keys` (target ->
/// key) by `recipe`, nothing failed, and every entry is as it was published.
pub fn unchanged(
    cache: &LocalCache,
    out: &Path,
    sha: &str,
    recipe: &str,
    keys: &BTreeMap<&str, &str>,
) -> Option<Manifest> {
    let out = out.canonicalize().ok()?;
    let bytes = fs::read(out.join(MANIFEST)).ok()?;
    let manifest: Manifest = serde_json::from_slice(&bytes).ok()?;
    let same_plan = manifest.sha == sha
        && manifest.recipe == recipe
        && manifest.targets.len() == keys.len()
        && manifest
            .targets
            .iter()
            .all(|(name, t)| t.status != Status::Failed && keys.get(name.as_str()) == Some(&t.key.as_str()));
    if !same_plan {
        return None;
    }
    let record: OutRecord = cache.get_json(&record_path(cache, &out))?;
    if record.format != FORMAT || record.out != out || record.manifest != blake3::hash(&bytes).to_hex().as_str() {
        return None;
    }
    let mut entries = BTreeMap::new();
    walk(&out, &out, &mut entries).ok()?;
    if entries.len() != record.entries.len() {
        return None;
    }
    let published: BTreeMap<&str, &crate::cache::ArchiveFile> =
        manifest.targets.values().flat_map(|t| t.files.iter()).map(|f| (f.path.as_str(), f)).collect();
    for (path, now) in &entries {
        let then = record.entries.get(path)?;
        let same = EntryStat { racy: false, ..then.clone() } == *now;
        if !same {
            return None;
        }
        if then.racy {
            let full = out.join(path);
            let file = published.get(path.as_str())?;
            let intact = match (&file.digest, &file.link) {
                (Some(digest), _) => crate::cache::digest_file(&full).ok()?.to_hex().as_str() == digest,
                (None, Some(target)) => fs::read_link(&full).ok()?.as_os_str() == target.as_str(),
                (None, None) => false,
            };
            if !intact {
                return None;
            }
        }
    }
    Some(manifest)
}

/// Marks every target of an unchanged out dir's `manifest` as a hit found in place, writes
/// it over the old one (atomically) and records the out dir again.
pub fn refresh(cache: &LocalCache, out: &Path, mut manifest: Manifest, key_ms: u64) -> Result<Manifest, CacheError> {
    for target in manifest.targets.values_mut() {
        target.status = Status::Hit;
        target.source = "in-place".into();
        target.durations_ms = Durations { key: key_ms, ..Durations::default() };
    }
    let bytes = serde_json::to_vec_pretty(&manifest).expect("manifests serialise");
    write_atomic(out, &out.join(MANIFEST), &bytes)?;
    record(cache, out);
    Ok(manifest)
}

/// Every entry under `dir` but directories (and the manifest, recorded by digest), by path
/// relative to `root`.
fn walk(root: &Path, dir: &Path, entries: &mut BTreeMap<String, EntryStat>) -> std::io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let meta = fs::symlink_metadata(&path)?;
        if meta.is_dir() {
            walk(root, &path, entries)?;
            continue;
        }
        let rel = path.strip_prefix(root).expect("under root").to_string_lossy().into_owned();
        if rel != MANIFEST {
            entries.insert(rel, EntryStat::of(&meta));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::publish::{Durations, TargetReport};

    fn publish(out: &Path) -> BTreeMap<String, String> {
        fs::create_dir_all(out.join("bin")).unwrap();
        fs::write(out.join("bin/tool"), b"tool v1").unwrap();
        std::os::unix::fs::symlink("tool", out.join("bin/link")).unwrap();
        let file = crate::cache::ArchiveFile {
            path: "bin/tool".into(),
            mode: 0o644,
            size: 7,
            digest: Some(blake3::hash(b"tool v1").to_hex().to_string()),
            link: None,
        };
        let link = crate::cache::ArchiveFile {
            path: "bin/link".into(),
            mode: 0o777,
            size: 0,
            digest: None,
            link: Some("tool".into()),
        };
        let report = TargetReport {
            key: "k1".into(),
            status: Status::Hit,
            source: "local".into(),
            artifact_dir: "bin".into(),
            inputs: 1,
            artifact_digest: None,
            durations_ms: Durations::default(),
            files: vec![link, file],
            error: None,
        };
        let manifest = Manifest {
            tbuild: "0".into(),
            sha: "abc".into(),
            repo: "r".into(),
            recipe: "fixture".into(),
            targets: [("t".to_string(), report)].into(),
        };
        fs::write(out.join(MANIFEST), serde_json::to_vec(&manifest).unwrap()).unwrap();
        [("t".to_string(), "k1".to_string())].into()
    }

    #[test]
    fn a_repeat_is_skipped_only_while_nothing_changed() {
        let dir = tempfile::tempdir().unwrap();
        let cache = LocalCache::open(&dir.path().join("cache")).unwrap();
        let out = dir.path().join("out");
        let keys = publish(&out);
        let keys: BTreeMap<&str, &str> = keys.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert!(unchanged(&cache, &out, "abc", "fixture", &keys).is_none(), "no record yet");
        record(&cache, &out);
        assert!(unchanged(&cache, &out, "abc", "fixture", &keys).is_some());
        assert!(unchanged(&cache, &out, "abd", "fixture", &keys).is_none(), "another commit");
        let other: BTreeMap<&str, &str> = [("t", "k2")].into();
        assert!(unchanged(&cache, &out, "abc", "fixture", &other).is_none(), "another key");

        // Same size, same mtime: the ctime still tells.
        let mtime = fs::metadata(out.join("bin/tool")).unwrap().modified().unwrap();
        fs::write(out.join("bin/tool"), b"tool v2").unwrap();
        fs::File::options().write(true).open(out.join("bin/tool")).unwrap().set_modified(mtime).unwrap();
        assert!(unchanged(&cache, &out, "abc", "fixture", &keys).is_none(), "an edited output");

        let keys2 = publish(&dir.path().join("out2"));
        let keys2: BTreeMap<&str, &str> = keys2.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let out2 = dir.path().join("out2");
        record(&cache, &out2);
        fs::write(out2.join("bin/extra"), b"x").unwrap();
        assert!(unchanged(&cache, &out2, "abc", "fixture", &keys2).is_none(), "an extra file");
        fs::remove_file(out2.join("bin/extra")).unwrap();
        fs::remove_file(out2.join("bin/link")).unwrap();
        std::os::unix::fs::symlink("elsewhere", out2.join("bin/link")).unwrap();
        assert!(unchanged(&cache, &out2, "abc", "fixture", &keys2).is_none(), "a replaced link");
    }
}
