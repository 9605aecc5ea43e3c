//! Reading a bundle: check the whole file, then unpack its members into a staging dir,
//! checking each against the manifest. Nothing here touches the cache's entries or mirrors:
//! the caller publishes only a [`StagedBundle`], which exists only when every check passed.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::{
    BUNDLE_FORMAT, BundleError, BundleManifest, DIGEST_MEMBER, MANIFEST, MemberDigest, SOURCE_PACK, archive_member,
    record_member,
};
use crate::cache::{ActionRecord, RECORD_FORMAT};

/// A tar block.
const BLOCK: u64 = 512;
/// The digest member's header and its one data block, and the two zero blocks that end a tar.
const TRAILER: u64 = 4 * BLOCK;

/// A bundle whose every byte was checked, unpacked into `dir`.
#[derive(Debug)]
pub struct StagedBundle {
    pub manifest: BundleManifest,
    /// The records, in manifest order, with the staged path of each one's archive.
    pub entries: Vec<(ActionRecord, PathBuf)>,
    /// The staged git pack, with `--with-source`.
    pub pack: Option<PathBuf>,
}

/// Checks `file` whole and unpacks it into `dir` (an empty staging dir).
pub fn stage(file: &Path, dir: &Path) -> Result<StagedBundle, BundleError> {
    let corrupt = |reason: String| BundleError::Corrupt { file: file.into(), reason };
    check_whole(file).map_err(|reason| corrupt(reason.to_string()))?;

    let members = unpack(file, dir).map_err(|reason| corrupt(reason.to_string()))?;
    let manifest_path = dir.join(flat(MANIFEST));
    let manifest: BundleManifest =
        serde_json::from_slice(&read(&manifest_path)?).map_err(|e| corrupt(format!("unreadable manifest: {e}")))?;
    if manifest.format > BUNDLE_FORMAT {
        return Err(BundleError::NewerFormat { file: file.into(), found: manifest.format, supported: BUNDLE_FORMAT });
    }
    let mut listed = manifest.members.clone();
    listed.insert(MANIFEST.into(), members[MANIFEST].clone());
    if listed != members {
        return Err(corrupt("its members differ from those its manifest lists".into()));
    }

    let mut entries = Vec::new();
    for entry in &manifest.entries {
        let record_path = dir.join(flat(&entry.record));
        let record: ActionRecord = serde_json::from_slice(&read(&record_path)?)
            .map_err(|e| corrupt(format!("unreadable action record {}: {e}", entry.record)))?;
        if record.format > RECORD_FORMAT {
            return Err(corrupt(format!(
                "record {} has format {}, newer than this tbuild's",
                entry.record, record.format
            )));
        }
        record.validate().map_err(|e| corrupt(format!("invalid action record {}: {e}", entry.record)))?;
        let archive = archive_member(&record.artifact_digest);
        let consistent = entry.record == record_member(&record.key)
            && record.key == entry.key
            && record.target == entry.target
            && entry.archive == archive
            && members
                .get(&archive)
                .is_some_and(|m| m.blake3 == record.artifact_digest && m.size == record.artifact_size);
        if !consistent || !is_hex64(&record.key) {
            return Err(corrupt(format!("entry {} does not match its record and archive", entry.target)));
        }
        entries.push((record, dir.join(flat(&archive))));
    }
    let pack = match &manifest.source {
        Some(source) if source.pack == SOURCE_PACK && members.contains_key(SOURCE_PACK) => {
            if git2::Oid::from_str(&source.commit).is_err() || source.commit.len() != 40 {
                return Err(corrupt(format!("source commit {:?} is not a SHA", source.commit)));
            }
            Some(dir.join(flat(SOURCE_PACK)))
        }
        Some(_) => return Err(corrupt("its manifest names a source pack it does not hold".into())),
        None => None,
    };
    Ok(StagedBundle { manifest, entries, pack })
}

/// The file ends with the digest member, whose content is the blake3 of every byte before
/// its header, followed by the tar's end (zeros only). See `cache-layout.md`.
fn check_whole(path: &Path) -> Result<(), String> {
    let mut file = File::open(path).map_err(|e| format!("cannot read it: {e}"))?;
    let len = file.metadata().map_err(|e| e.to_string())?.len();
    if len < TRAILER || len % BLOCK != 0 {
        return Err(format!("{len} bytes is not the size of a bundle"));
    }
    let covered = len - TRAILER;
    let mut hasher = blake3::Hasher::new();
    hasher.update_reader((&mut file).take(covered)).map_err(|e| e.to_string())?;
    let mut trailer = vec![0u8; TRAILER as usize];
    file.read_exact(&mut trailer).map_err(|e| e.to_string())?;
    let header = tar::Header::from_byte_slice(&trailer[..BLOCK as usize]);
    let named = header.path_bytes().as_ref() == DIGEST_MEMBER.as_bytes();
    let size = header.entry_size().unwrap_or(0);
    if !named || size != 65 || header.cksum().ok() != Some(checksum(&trailer[..BLOCK as usize])) {
        return Err("its last member is not the bundle digest".into());
    }
    let data = &trailer[BLOCK as usize..];
    let expected = format!("{}\n", hasher.finalize().to_hex());
    if &data[..65] != expected.as_bytes() {
        return Err("its bytes do not match the digest it ends with".into());
    }
    if data[65..].iter().any(|b| *b != 0) {
        return Err("its end has bytes that belong to no member".into());
    }
    Ok(())
}

/// A tar header's checksum: the sum of its bytes with the checksum field read as spaces.
fn checksum(header: &[u8]) -> u32 {
    header.iter().enumerate().map(|(i, b)| if (148..156).contains(&i) { 32 } else { *b as u32 }).sum()
}

/// Unpacks every member into `dir` under a flat name, returning each one's size and digest.
fn unpack(path: &Path, dir: &Path) -> Result<BTreeMap<String, MemberDigest>, String> {
    let mut file = File::open(path).map_err(|e| e.to_string())?;
    file.seek(SeekFrom::Start(0)).map_err(|e| e.to_string())?;
    let mut archive = tar::Archive::new(BufReader::new(file));
    let mut members = BTreeMap::new();
    let mut saw_digest = false;
    for entry in archive.entries().map_err(|e| e.to_string())? {
        let mut entry = entry.map_err(|e| e.to_string())?;
        if saw_digest {
            return Err("a member follows the bundle digest".into());
        }
        let name = String::from_utf8(entry.path_bytes().into_owned()).map_err(|_| "a member name is not UTF-8")?;
        if entry.header().entry_type() != tar::EntryType::Regular || !allowed(&name) {
            return Err(format!("unexpected member {name:?}"));
        }
        if members.contains_key(&name) {
            return Err(format!("member {name:?} occurs twice"));
        }
        if name == DIGEST_MEMBER {
            saw_digest = true;
            continue;
        }
        let dest = dir.join(flat(&name));
        let mut out = File::create(&dest).map_err(|e| format!("{}: {e}", dest.display()))?;
        let mut hasher = blake3::Hasher::new();
        let mut buf = vec![0u8; 1 << 16];
        let mut size = 0u64;
        loop {
            let n = entry.read(&mut buf).map_err(|e| e.to_string())?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            io::Write::write_all(&mut out, &buf[..n]).map_err(|e| format!("{}: {e}", dest.display()))?;
            size += n as u64;
        }
        out.sync_all().map_err(|e| format!("{}: {e}", dest.display()))?;
        members.insert(name, MemberDigest { size, blake3: hasher.finalize().to_hex().to_string() });
    }
    if !saw_digest || !members.contains_key(MANIFEST) {
        return Err("it lacks its manifest or digest".into());
    }
    Ok(members)
}

/// Member names a bundle may hold; anything else (paths with `..`, links) is refused.
fn allowed(name: &str) -> bool {
    let hex_member = |prefix: &str, suffix: &str| {
        name.strip_prefix(prefix).and_then(|rest| rest.strip_suffix(suffix)).is_some_and(is_hex64)
    };
    [MANIFEST, DIGEST_MEMBER, SOURCE_PACK].contains(&name)
        || hex_member("records/", ".json")
        || hex_member("blobs/", ".tar.zst")
}

fn is_hex64(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Staging keeps members in one dir: `records/x.json` becomes `records_x.json`.
fn flat(name: &str) -> String {
    name.replace('/', "_")
}

fn read(path: &Path) -> Result<Vec<u8>, BundleError> {
    std::fs::read(path).map_err(BundleError::io(path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::{BundleManifest, BundleWriter};

    fn manifest() -> BundleManifest {
        BundleManifest {
            format: BUNDLE_FORMAT,
            tbuild: "test".into(),
            created_at: 0,
            repo: "/r".into(),
            sha: "0".repeat(40),
            entries: vec![],
            source: None,
            members: Default::default(),
        }
    }

    fn bundle_with(dir: &Path, name: &str, member: &str, manifest: BundleManifest) -> PathBuf {
        let path = dir.join(name);
        let mut writer = BundleWriter::create(&path).unwrap();
        writer.append(member, 5, &b"hello"[..]).unwrap();
        writer.finish(manifest).unwrap();
        path
    }

    #[test]
    fn members_no_bundle_may_hold_are_refused_even_in_an_intact_file() {
        let dir = tempfile::tempdir().unwrap();
        // Digest and manifest intact, but a member no bundle may hold.
        for member in ["run.sh", "records/x.json", "blobs/abc.tar.zst", "records/sub/a.json"] {
            let path = bundle_with(dir.path(), "b.tbundle", member, manifest());
            let staging = tempfile::tempdir().unwrap();
            let err = stage(&path, staging.path()).unwrap_err().to_string();
            assert!(err.contains("unexpected member") && err.contains("nothing was imported"), "{member}: {err}");
        }
        // The tar crate will not even write these; a crafted file would meet `allowed`.
        let hex = "a".repeat(64);
        for name in ["../escape", "/etc/passwd", &format!("records/../{hex}.json"), &format!("blobs/{hex}/x.tar.zst")] {
            assert!(!allowed(name), "{name}");
        }
        assert!(allowed(&format!("records/{hex}.json")) && allowed(&format!("blobs/{hex}.tar.zst")));
    }

    #[test]
    fn a_newer_format_is_refused_and_a_source_pack_must_be_present() {
        let dir = tempfile::tempdir().unwrap();
        let staging = tempfile::tempdir().unwrap();
        let newer = BundleManifest { format: BUNDLE_FORMAT + 1, ..manifest() };
        let path = bundle_with(dir.path(), "newer.tbundle", SOURCE_PACK, newer);
        assert!(matches!(stage(&path, staging.path()), Err(BundleError::NewerFormat { .. })));

        let staging = tempfile::tempdir().unwrap();
        let claims = BundleManifest {
            source: Some(crate::bundle::BundleSource { pack: "source.pack".into(), commit: "0".repeat(40) }),
            ..manifest()
        };
        let path = bundle_with(dir.path(), "nopack.tbundle", "tbuild-bundle.json.bak", claims);
        assert!(stage(&path, staging.path()).is_err());
    }
}
