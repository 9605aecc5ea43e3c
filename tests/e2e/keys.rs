//! Keys across the fixture's history, and for a commit vs a checkout of it.

use crate::support::*;

#[test]
fn keys_follow_the_crate_closures_across_history() {
    let world = World::new();
    let keys = |rev: &str| world.keys(rev);
    let base = keys("base");
    assert_eq!(base.len(), 3);
    assert_eq!(keys("docs-only"), base, "docs-only: every key unchanged");

    let ctl = keys("ctl-only");
    assert_ne!(ctl["tasker-ctl"], base["tasker-ctl"]);
    assert_eq!(ctl["tasker-server"], base["tasker-server"], "tasker-server's closure has no tasker-ctl");
    assert_eq!(ctl["tasker-worker"], base["tasker-worker"]);

    let lock = keys("lock-change");
    for target in ["tasker-ctl", "tasker-server", "tasker-worker"] {
        assert_ne!(lock[target], ctl[target], "Cargo.lock changes every cargo target ({target})");
    }
    let shared = keys("shared-change");
    for target in ["tasker-ctl", "tasker-server", "tasker-worker"] {
        assert_ne!(shared[target], lock[target], "tasker-shared is in every closure ({target})");
    }
    assert_eq!(keys("secure-only"), shared, "tasker-secure is only a dev-dependency");
    assert_eq!(keys("python-only"), shared, "tasker-py feeds no binary");
    let proto = keys("proto-change");
    for target in ["tasker-ctl", "tasker-server", "tasker-worker"] {
        assert_ne!(proto[target], shared[target], "proto/ reaches tasker-shared through its symlink ({target})");
    }
}

#[test]
fn a_commit_and_a_checkout_of_it_have_the_same_keys() {
    let world = World::new();
    for tag in ["base", "ctl-only", "main"] {
        let checkout = world.dir.path().join(format!("checkout-{tag}"));
        git_in(world.dir.path(), &["clone", "-q", world.repo().to_str().unwrap(), checkout.to_str().unwrap()]);
        git_in(&checkout, &["checkout", "-q", tag]);
        // Build products and ignored files on disk must not leak into keys.
        std::fs::create_dir_all(checkout.join("target/debug")).unwrap();
        std::fs::write(checkout.join("target/debug/tasker-ctl"), b"binary").unwrap();
        std::fs::write(checkout.join("crates/tasker-ctl/stale.so"), b"ignored by .gitignore").unwrap();
        assert_eq!(world.keys_of_dir(&checkout), world.keys(tag), "{tag}");
    }
}

#[test]
fn an_edit_on_disk_changes_the_key_of_its_closure_only() {
    let world = World::new();
    let checkout = world.dir.path().join("checkout");
    git_in(world.dir.path(), &["clone", "-q", world.repo().to_str().unwrap(), checkout.to_str().unwrap()]);
    let key_of = || world.keys_of_dir(&checkout);
    let before = key_of();
    let main_rs = checkout.join("crates/tasker-ctl/src/main.rs");
    let text = std::fs::read_to_string(&main_rs).unwrap();
    std::fs::write(&main_rs, format!("{text}\n// local edit\n")).unwrap();
    let after = key_of();
    assert_ne!(after["tasker-ctl"], before["tasker-ctl"]);
    assert_eq!(after["tasker-server"], before["tasker-server"]);
}

#[test]
fn short_shas_and_tags_resolve_like_full_shas() {
    let world = World::new();
    let full = world.git(&["rev-parse", "ctl-only"]).trim().to_string();
    let by_full = world.keys(&full);
    assert_eq!(world.keys(&full[..10]), by_full);
    assert_eq!(world.keys("ctl-only"), by_full);
}

#[test]
fn the_blob_memo_makes_a_similar_commit_read_almost_nothing() {
    let world = World::new();
    let memo = world.cache().join("v1/memo/git-blob-blake3.bin");
    let records = || std::fs::metadata(&memo).map(|m| m.len() / 64).unwrap_or(0);
    world.keys("base");
    let first = records();
    assert!(first > 10, "every hashed blob is remembered ({first})");
    world.keys("base");
    assert_eq!(records(), first, "keying the same commit again hashes nothing new");
    world.keys("ctl-only");
    assert_eq!(records(), first + 1, "one changed file, one new blob hashed");
}
