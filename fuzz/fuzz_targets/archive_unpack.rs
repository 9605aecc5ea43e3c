//! Any bytes as a cache archive: unpack must return an error or files that are all inside
//! the destination, never panic, never write outside it, stop at the record's limits, and
//! leave no path under the destination that resolves outside it (links followed as the
//! kernel would, chains of links included), whether it succeeded or refused half-way.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tbuild::cache::{UnpackLimits, first_escape, unpack};

fuzz_target!(|data: &[u8]| {
    let root = tempfile::tempdir().unwrap();
    let archive = root.path().join("a.tar.zst");
    std::fs::write(&archive, data).unwrap();
    let dest = root.path().join("sandbox/dest");
    std::fs::create_dir_all(&dest).unwrap();
    let limits = UnpackLimits { max_entries: 64, max_bytes: 1 << 20 };
    if let Ok(files) = unpack(&archive, None, &dest, limits) {
        assert!(files.len() <= 64);
        for file in &files {
            let path = dest.join(&file.path);
            assert!(std::fs::symlink_metadata(&path).is_ok(), "{} listed but missing", file.path);
        }
    }
    // Nothing lands next to the destination, whatever the archive said.
    let outside: Vec<_> = std::fs::read_dir(root.path().join("sandbox")).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(outside, vec![dest.clone()]);
    // Nothing under it leads out, links included.
    assert_eq!(first_escape(&dest), None, "a path under the destination resolves outside it");
});
