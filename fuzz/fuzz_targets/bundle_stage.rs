//! Any bytes as the members of a bundle. The fuzzer's input becomes the body of the file and
//! the target appends a correct whole-file digest, so inputs get past the digest check and
//! exercise the member, manifest and record checks behind it. Staging must return an error
//! or a bundle whose files are all inside the staging dir, never panic or write elsewhere.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tbuild::bundle::{DIGEST_MEMBER, stage};

fuzz_target!(|data: &[u8]| {
    let mut body = data.to_vec();
    body.resize(body.len().div_ceil(512) * 512, 0);
    let digest = format!("{}\n", blake3::hash(&body).to_hex());
    let mut header = tar::Header::new_ustar();
    header.set_path(DIGEST_MEMBER).unwrap();
    header.set_size(digest.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    let mut file = body;
    file.extend_from_slice(header.as_bytes());
    let mut block = digest.into_bytes();
    block.resize(512, 0);
    file.extend_from_slice(&block);
    file.extend_from_slice(&[0u8; 1024]);

    let root = tempfile::tempdir().unwrap();
    let path = root.path().join("b.tbundle");
    std::fs::write(&path, &file).unwrap();
    let dir = root.path().join("sandbox/staging");
    std::fs::create_dir_all(&dir).unwrap();
    if let Ok(staged) = stage(&path, &dir) {
        for (record, archive) in &staged.entries {
            assert!(archive.starts_with(&dir) && archive.is_file(), "{} staged outside", record.key);
        }
        if let Some(pack) = &staged.pack {
            assert!(pack.starts_with(&dir) && pack.is_file());
        }
    }
    let outside: Vec<_> = std::fs::read_dir(root.path().join("sandbox")).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(outside, vec![dir]);
});
