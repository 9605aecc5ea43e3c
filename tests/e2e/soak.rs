//! Concurrency soak: runs on different commits share one cache while `cache gc` with a small
//! `--max-size` evicts in a loop. Every run succeeds and serves the right program for its
//! commit (an entry in use is never taken from under it: a gc'd entry is a miss, rebuilt),
//! every gc succeeds, and the cache verifies clean afterwards. Bounded by a clock, not by a
//! number of rounds, so a slow machine does fewer rounds rather than a longer test.

use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::*;
use crate::torture::files_differ;

const COMMITS: [(&str, &str); 3] = [
    ("base", "tasker-ctl ctl-1 shared-1"),
    ("ctl-only", "tasker-ctl ctl-2 shared-1"),
    ("shared-change", "tasker-ctl ctl-2 shared-2"),
];

#[test]
fn concurrent_runs_on_different_commits_survive_a_looping_gc() {
    let world = World::new();
    // Warm the cargo target dir, so the soak is about the cache rather than about rustc.
    for (commit, _) in COMMITS {
        world.core_targets(commit, "warm", "tasker-ctl,tasker-server");
    }
    let soak = Duration::from_secs(25);
    let stop = AtomicBool::new(false);
    let (runs, gcs, hits, builds) =
        (AtomicUsize::new(0), AtomicUsize::new(0), AtomicUsize::new(0), AtomicUsize::new(0));
    let started = Instant::now();
    std::thread::scope(|s| {
        for (i, (commit, expected)) in COMMITS.iter().enumerate() {
            let (world, runs, hits, builds) = (&world, &runs, &hits, &builds);
            s.spawn(move || {
                let mut round = 0;
                while started.elapsed() < soak || round < 2 {
                    let out = format!("soak{i}-{}", round % 2);
                    let args = world.core_args(commit, &out, "tasker-ctl,tasker-server");
                    let output = world
                        .command(&args.iter().map(String::as_str).collect::<Vec<_>>(), &[])
                        .stdin(Stdio::null())
                        .output()
                        .unwrap();
                    assert_ok(&output);
                    let manifest: Value = serde_json::from_slice(&output.stdout).unwrap();
                    let out_dir = world.out(&out);
                    for (target, entry) in manifest["targets"].as_object().unwrap() {
                        match entry["status"].as_str() {
                            Some("hit") => hits.fetch_add(1, Ordering::Relaxed),
                            Some("built") => builds.fetch_add(1, Ordering::Relaxed),
                            other => panic!("{commit} {target}: {other:?}"),
                        };
                        let dir = out_dir.join("tasker-core-binaries");
                        assert!(!files_differ(&dir, entry["files"].as_array().unwrap(), &out_dir), "{commit} {target}");
                    }
                    let ctl = out_dir.join("tasker-core-binaries/tasker-ctl");
                    assert_eq!(run_binary(&ctl), *expected, "{commit}: the right program");
                    runs.fetch_add(1, Ordering::Relaxed);
                    round += 1;
                }
            });
        }
        let (world, stop_ref, gcs) = (&world, &stop, &gcs);
        let gc = s.spawn(move || {
            while !stop_ref.load(Ordering::Relaxed) {
                // 1 MiB holds about one entry: nearly everything not in use is evicted.
                let output = world.tbuild(&["cache", "gc", "--max-size", "1MiB"]);
                assert_ok(&output);
                gcs.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        // The run threads end on their own; then stop the gc loop.
        while started.elapsed() < soak {
            std::thread::sleep(Duration::from_millis(200));
        }
        std::thread::sleep(Duration::from_millis(100));
        stop.store(true, Ordering::Relaxed);
        gc.join().unwrap();
    });
    let (runs, gcs) = (runs.into_inner(), gcs.into_inner());
    println!("soak: {runs} runs ({} hits, {} builds), {gcs} gcs", hits.into_inner(), builds.into_inner());
    assert!(runs >= 6 && gcs >= 2, "the soak did too little to prove anything: {runs} runs, {gcs} gcs");
    assert_ok(&world.tbuild(&["cache", "verify"]));
    // Without gc, every commit is now whole again and restores.
    for (commit, expected) in COMMITS {
        let manifest = world.core_targets(commit, "after", "tasker-ctl,tasker-server");
        assert!(statuses(&manifest).values().all(|s| s == "hit" || s == "built"));
        assert_eq!(run_binary(&world.out("after").join("tasker-core-binaries/tasker-ctl")), expected);
    }
}
