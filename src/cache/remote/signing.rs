//! The remote record and its optional signature.
//!
//! With `TBUILD_SIGNING_KEY` set, an uploaded record carries an HMAC-SHA256 over the whole
//! action record (key, target, archive digest and size, the file list, provenance: every
//! field a reader acts on or shows) and the archive's sha256, and a downloaded record
//! without a valid one is refused. The archive itself is verified against those digests on
//! download, so a signature vouches for the bytes that get unpacked and for what the record
//! says about them. Whoever holds the signing key can still write anything; a writer without
//! it can only make entries that signed readers refuse.
//!
//! The signed bytes are the record as this tbuild serialises it (compact JSON, fields in
//! declaration order), not as it arrived: a reader parses and re-serialises, so a field it
//! does not know is dropped and cannot ride along unsigned, and a field it knows cannot be
//! changed without breaking the signature.

use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::cache::ActionRecord;

/// Format of remote records (`ac/<key>`); readers treat a newer one as a miss.
/// 2: the signature covers the whole record (1 signed the key and archive digest only).
pub const REMOTE_FORMAT: u32 = 2;

const SIGNATURE_PREFIX: &str = "hmac-sha256:";

/// What `ac/<key>` holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RemoteRecord {
    pub format: u32,
    /// The action record, as in the local cache.
    pub record: ActionRecord,
    /// sha256 hex of the archive: its name under `cas/`.
    pub archive_sha256: String,
    /// `hmac-sha256:<hex>` over the record and `archive_sha256` (see [`Signer`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
}

/// The signing key of a run.
pub struct Signer {
    key: Vec<u8>,
}

impl Signer {
    /// From `TBUILD_SIGNING_KEY` (its bytes are the HMAC key), if set and not empty.
    pub fn from_env() -> Option<Signer> {
        std::env::var("TBUILD_SIGNING_KEY").ok().filter(|k| !k.is_empty()).map(|k| Signer { key: k.into_bytes() })
    }

    pub fn from_bytes(key: &[u8]) -> Signer {
        Signer { key: key.to_vec() }
    }

    fn mac(&self, record: &ActionRecord, archive_sha256: &str) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes keys of any length");
        // Domain-separated and length-unambiguous: the sha256 is fixed-length hex and the
        // record, last, runs to the end.
        mac.update(b"tbuild remote record v2\0");
        mac.update(archive_sha256.as_bytes());
        mac.update(b"\0");
        mac.update(&serde_json::to_vec(record).expect("records serialise"));
        mac
    }

    /// The signature of `record` stored with an archive of sha256 `archive_sha256`.
    pub fn sign(&self, record: &ActionRecord, archive_sha256: &str) -> String {
        let tag = self.mac(record, archive_sha256).finalize().into_bytes();
        format!("{SIGNATURE_PREFIX}{}", hex::encode(tag))
    }

    /// Why `remote` must be refused, if it must.
    pub fn check(&self, remote: &RemoteRecord) -> Result<(), String> {
        let Some(signature) = remote.signature.as_deref() else {
            return Err("it is not signed, and TBUILD_SIGNING_KEY is set".into());
        };
        let tag = signature.strip_prefix(SIGNATURE_PREFIX).and_then(decode_hex);
        let Some(tag) = tag else {
            return Err(format!("its signature is malformed (expected {SIGNATURE_PREFIX}<64 hex digits>)"));
        };
        // verify_slice compares in constant time.
        self.mac(&remote.record, &remote.archive_sha256)
            .verify_slice(&tag)
            .map_err(|_| "its signature does not match TBUILD_SIGNING_KEY".to_string())
    }
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if text.len() != 64 {
        return None;
    }
    hex::decode(text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::RECORD_FORMAT;

    fn remote(key: &str, digest: &str) -> RemoteRecord {
        RemoteRecord {
            format: REMOTE_FORMAT,
            record: ActionRecord {
                format: RECORD_FORMAT,
                target: "t".into(),
                key: key.into(),
                artifact_digest: digest.into(),
                artifact_size: 1,
                files: vec![],
                build_duration_ms: 0,
                provenance: "abc".into(),
                toolchain: "rustc".into(),
                created_at: 0,
                derivation: None,
            },
            archive_sha256: "00".into(),
            signature: None,
        }
    }

    #[test]
    fn signatures_bind_every_field_to_the_signing_key() {
        let signer = Signer { key: b"secret".to_vec() };
        let mut entry = remote(&"a".repeat(64), &"b".repeat(64));
        assert!(signer.check(&entry).unwrap_err().contains("not signed"));
        entry.signature = Some(signer.sign(&entry.record, &entry.archive_sha256));
        signer.check(&entry).unwrap();

        let other = Signer { key: b"other".to_vec() };
        assert!(other.check(&entry).unwrap_err().contains("does not match"));
        let mut moved = entry.clone();
        moved.record.artifact_digest = "c".repeat(64);
        assert!(signer.check(&moved).is_err(), "a signature is not valid for another archive");
        let mut moved = entry.clone();
        moved.record.key = "d".repeat(64);
        assert!(signer.check(&moved).is_err(), "a signature is not valid for another key");
        // Every other field a reader acts on or shows is covered too.
        type Edit = fn(&mut RemoteRecord);
        let edits: [(&str, Edit); 7] = [
            ("target", |r| r.record.target = "../../x".into()),
            ("artifact_size", |r| r.record.artifact_size = 1 << 40),
            ("files", |r| {
                r.record.files.push(crate::cache::ArchiveFile {
                    path: "evil".into(),
                    mode: 0o777,
                    size: 0,
                    digest: None,
                    link: Some("/etc/shadow".into()),
                })
            }),
            ("provenance", |r| r.record.provenance = "trusted-sha".into()),
            ("format", |r| r.record.format += 1),
            ("created_at", |r| r.record.created_at = 1),
            ("archive_sha256", |r| r.archive_sha256 = "e".repeat(64)),
        ];
        for (field, edit) in edits {
            let mut moved = entry.clone();
            edit(&mut moved);
            assert!(signer.check(&moved).is_err(), "{field} is signed");
        }
        entry.signature = Some("hmac-sha256:xyz".into());
        assert!(signer.check(&entry).unwrap_err().contains("malformed"));
    }
}
