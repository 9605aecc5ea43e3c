//! Any bytes as an action record: parsing never panics, and what parses round-trips.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tbuild::cache::ActionRecord;

fuzz_target!(|data: &[u8]| {
    if let Ok(record) = ActionRecord::from_json(data) {
        let again = ActionRecord::from_json(&serde_json::to_vec(&record).unwrap()).expect("a parsed record re-parses");
        assert_eq!(record, again);
    }
});
