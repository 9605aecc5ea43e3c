//! The git-blob-id -> blake3 memo, so that hashing a commit similar to one already seen reads
//! almost no blob content (git gives the blob id of every tree entry for free).
//!
//! One append-only file of fixed 64-byte records: 20 bytes of git object id, 32 bytes of
//! blake3, 12 bytes of check (the first 12 bytes of blake3 over the first 52). A record whose
//! check fails is ignored, so a torn or corrupted record can cost a re-hash but never a wrong
//! key. Appends take an exclusive lock on the file and first trim a torn tail left by a crash.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{ErrorKind, Read, Write};
use std::path::{Path, PathBuf};

use super::CacheError;

const RECORD: usize = 64;

/// In-memory view of the memo plus the records learned since it was loaded.
#[derive(Debug, Default)]
pub struct BlobDigestMemo {
    path: Option<PathBuf>,
    known: HashMap<[u8; 20], [u8; 32]>,
    learned: Vec<([u8; 20], [u8; 32])>,
}

impl BlobDigestMemo {
    /// Loads the memo at `path` (absent is empty).
    pub fn load(path: &Path) -> Result<BlobDigestMemo, CacheError> {
        let mut bytes = Vec::new();
        match File::open(path) {
            Ok(mut file) => {
                file.lock_shared().map_err(CacheError::io(path))?;
                file.read_to_end(&mut bytes).map_err(CacheError::io(path))?;
            }
            Err(err) if err.kind() == ErrorKind::NotFound => {}
            Err(source) => return Err(CacheError::Io { path: path.into(), source }),
        }
        let mut known = HashMap::with_capacity(bytes.len() / RECORD);
        for record in bytes.chunks_exact(RECORD) {
            if let Some((oid, digest)) = decode(record) {
                known.insert(oid, digest);
            }
        }
        Ok(BlobDigestMemo { path: Some(path.into()), known, learned: Vec::new() })
    }

    /// A memo that is never saved (for hashing without a cache).
    pub fn in_memory() -> BlobDigestMemo {
        BlobDigestMemo::default()
    }

    pub fn get(&self, oid: &[u8; 20]) -> Option<blake3::Hash> {
        self.known.get(oid).map(|d| blake3::Hash::from_bytes(*d))
    }

    pub fn insert(&mut self, oid: [u8; 20], digest: blake3::Hash) {
        if self.known.insert(oid, *digest.as_bytes()).is_none() {
            self.learned.push((oid, *digest.as_bytes()));
        }
    }

    /// Number of records learned since loading (and not yet saved).
    pub fn learned(&self) -> usize {
        self.learned.len()
    }

    /// Appends what was learned. Concurrent savers are serialised by the file lock.
    pub fn save(&mut self) -> Result<(), CacheError> {
        let Some(path) = self.path.clone() else { return Ok(()) };
        if self.learned.is_empty() {
            return Ok(());
        }
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(CacheError::io(parent))?;
        }
        let mut file = File::options().create(true).append(true).open(&path).map_err(CacheError::io(&path))?;
        file.lock().map_err(CacheError::io(&path))?;
        let len = file.metadata().map_err(CacheError::io(&path))?.len();
        if len % RECORD as u64 != 0 {
            file.set_len(len - len % RECORD as u64).map_err(CacheError::io(&path))?;
        }
        let mut buf = Vec::with_capacity(self.learned.len() * RECORD);
        for (oid, digest) in &self.learned {
            buf.extend_from_slice(&encode(oid, digest));
        }
        file.write_all(&buf).map_err(CacheError::io(&path))?;
        file.sync_data().map_err(CacheError::io(&path))?;
        self.learned.clear();
        Ok(())
    }
}

fn encode(oid: &[u8; 20], digest: &[u8; 32]) -> [u8; RECORD] {
    let mut record = [0u8; RECORD];
    record[..20].copy_from_slice(oid);
    record[20..52].copy_from_slice(digest);
    let check = blake3::hash(&record[..52]);
    record[52..].copy_from_slice(&check.as_bytes()[..12]);
    record
}

fn decode(record: &[u8]) -> Option<([u8; 20], [u8; 32])> {
    let check = blake3::hash(&record[..52]);
    if record[52..] != check.as_bytes()[..12] {
        return None;
    }
    Some((record[..20].try_into().ok()?, record[20..52].try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_damaged_records_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("memo.bin");
        let mut memo = BlobDigestMemo::load(&path).unwrap();
        memo.insert([1; 20], blake3::hash(b"one"));
        memo.insert([2; 20], blake3::hash(b"two"));
        memo.save().unwrap();

        // Flip a byte of the second record and leave a torn tail.
        let mut bytes = fs::read(&path).unwrap();
        bytes[RECORD + 30] ^= 0xff;
        bytes.extend_from_slice(&[9; 10]);
        fs::write(&path, &bytes).unwrap();

        let mut memo = BlobDigestMemo::load(&path).unwrap();
        assert_eq!(memo.get(&[1; 20]), Some(blake3::hash(b"one")));
        assert_eq!(memo.get(&[2; 20]), None, "a damaged record must not be trusted");
        memo.insert([3; 20], blake3::hash(b"three"));
        memo.save().unwrap();
        let memo = BlobDigestMemo::load(&path).unwrap();
        assert_eq!(memo.get(&[3; 20]), Some(blake3::hash(b"three")), "append after trimming the torn tail");
        assert_eq!(fs::metadata(&path).unwrap().len() % RECORD as u64, 0);
    }
}
