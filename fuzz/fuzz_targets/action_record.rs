//! Any bytes as an action record: parsing never panics, what parses round-trips, and every
//! field of an accepted record that becomes a path is safe to use as one.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tbuild::cache::ActionRecord;

fuzz_target!(|data: &[u8]| {
    if let Ok(record) = ActionRecord::from_json(data) {
        let again = ActionRecord::from_json(&serde_json::to_vec(&record).unwrap()).expect("a parsed record re-parses");
        assert_eq!(record, again);
        assert!(tbuild::cache::is_name(&record.target), "target {:?}", record.target);
        assert!(tbuild::cache::is_digest(&record.artifact_digest) && tbuild::cache::is_digest(&record.key));
        for file in &record.files {
            let plain = file.path.split('/').all(|part| !part.is_empty() && part != "." && part != "..");
            assert!(plain, "file path {:?}", file.path);
            let link_inside = file.link.as_deref().is_none_or(|target| !target.starts_with('/'));
            assert!(link_inside, "link {:?} -> {:?}", file.path, file.link);
        }
    }
});
