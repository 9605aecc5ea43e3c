//! Which files of a cargo target dir go into a snapshot, pruned the way Swatinem/rust-cache
//! prunes: no `incremental/` (big, and useless to a non-incremental CI build; kept on request,
//! [`WhatToKeep`]), no split-debuginfo `deps/*.dwo` (a debugger's; cargo never checks them:
//! BENCHMARKS.md, warm state on tasker-core), no outputs
//! uplifted into the profile dir (hard links of files in `deps/`, which cargo links again
//! for fresh units), and no units this build did not use (artifacts of older commits and
//! older dependency versions, which would otherwise pile up snapshot after snapshot).
//!
//! Build scripts are uplifted too: `build/<pkg>-<hash>/build-script-build` is a hard link of
//! `build_script_build-<hash>` beside it, which an archive would store twice (199 MB of
//! tasker-core's build scripts, twice). cargo links it again for a fresh build-script unit
//! before running it (checked by hand: link removed, watched file touched, the script ran
//! without being compiled), so only the hashed name goes in.
//!
//! "Used" is read from access times. Before the build every file under `.fingerprint/` gets
//! an atime older than its mtime ([`mark`]); cargo reads each unit's fingerprint to decide
//! whether it is fresh, and a read of such a file updates its atime even on `relatime`
//! mounts. After the build a unit whose fingerprint files were neither read nor written
//! since the mark was not part of it. On a `noatime` mount (the probe in [`mark`] tells)
//! nothing is pruned as unused.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File, FileTimes};
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The state [`mark`] leaves for [`select`].
#[derive(Debug, Clone, Copy)]
pub struct Mark {
    /// When marking ended: reads and writes after it count as use.
    pub at: SystemTime,
    /// Whether reads update atimes here (`false` on `noatime` mounts).
    pub atime_works: bool,
}

/// A file picked for a snapshot.
#[derive(Debug)]
pub struct Picked {
    pub path: PathBuf,
    pub size: u64,
    pub mtime_nanos: u64,
}

/// Gives every fingerprint file under `target` an atime of 1970-01-01T00:00:01 (its mtime
/// untouched), then probes whether a read moves it.
pub fn mark(target: &Path) -> Mark {
    let old = FileTimes::new().set_accessed(UNIX_EPOCH + Duration::from_secs(1));
    for dir in fingerprint_dirs(target) {
        for unit in read_dir(&dir) {
            for file in read_dir(&unit) {
                // Best effort: an unmarked file only looks used.
                let _ = File::open(&file).and_then(|f| f.set_times(old));
            }
        }
    }
    // A first build has no target dir yet; the probe needs it (cargo creates it anyway).
    let _ = fs::create_dir_all(target);
    let probe = target.join(".tbuild-atime-probe");
    let atime_works = (|| -> std::io::Result<bool> {
        fs::write(&probe, b"probe")?;
        File::open(&probe)?.set_times(old)?;
        let before = SystemTime::now() - Duration::from_secs(1);
        File::open(&probe)?.read_to_end(&mut Vec::new())?;
        Ok(fs::metadata(&probe)?.accessed()? >= before)
    })()
    .unwrap_or(false);
    let _ = fs::remove_file(&probe);
    // File times come from a coarse clock that may lag `now` by a tick.
    Mark { at: SystemTime::now() - Duration::from_millis(20), atime_works }
}

/// The files of `target` for a snapshot (path relative to `target` -> file), pruned as the
/// module says, keeping what `keep` asks for besides.
pub fn select(target: &Path, mark: Mark, keep: WhatToKeep) -> BTreeMap<String, Picked> {
    let mut stale_hashes: BTreeSet<String> = BTreeSet::new();
    let mut profile_dirs = Vec::new();
    for dir in fingerprint_dirs(target) {
        for unit in read_dir(&dir) {
            if mark.atime_works && !used(&unit, mark.at) {
                let name = unit.file_name().and_then(|n| n.to_str()).unwrap_or_default();
                if let Some((_, hash)) = name.rsplit_once('-') {
                    stale_hashes.insert(hash.to_string());
                }
            }
        }
        profile_dirs.push(dir.parent().expect("a .fingerprint dir has a parent").to_path_buf());
    }
    let mut picked = BTreeMap::new();
    for entry in walkdir::WalkDir::new(target).min_depth(1).into_iter().filter_entry(|e| {
        let in_profile = e.path().parent().is_some_and(|p| profile_dirs.iter().any(|d| d == p));
        let name = e.file_name().to_str().unwrap_or_default();
        // Uplifted outputs and incremental state sit right in a profile dir.
        let pruned_here = !e.file_type().is_dir() || (name == "incremental" && !keep.incremental);
        let dropped = (in_profile && pruned_here) || is_stale(name, &stale_hashes) || is_split_debuginfo(e.path());
        !dropped
    }) {
        let Ok(entry) = entry else { continue };
        if !entry.file_type().is_file() {
            continue;
        }
        let Ok(meta) = entry.metadata() else { continue };
        let Ok(rel) = entry.path().strip_prefix(target) else { continue };
        let Some(rel) = rel.to_str() else { continue };
        let mtime_nanos = meta.modified().map_or(0, super::mtime::nanos);
        picked.insert(rel.to_string(), Picked { path: entry.path().to_path_buf(), size: meta.len(), mtime_nanos });
    }
    let uplifted_build_scripts: Vec<String> = picked
        .keys()
        .filter(|rel| {
            rel.strip_suffix("/build-script-build").is_some_and(|dir| {
                let hashed = format!("{dir}/build_script_build-");
                picked.range(hashed.clone()..).next().is_some_and(|(next, _)| next.starts_with(&hashed))
            })
        })
        .cloned()
        .collect();
    for rel in uplifted_build_scripts {
        picked.remove(&rel);
    }
    picked
}

/// What [`select`] keeps beyond the units' outputs.
#[derive(Debug, Clone, Copy, Default)]
pub struct WhatToKeep {
    /// rustc's incremental state, `<profile>/incremental/<crate>-<hash>/`: useful only where
    /// the work dir is at the snapshot's path (rustc keys it by absolute source paths).
    pub incremental: bool,
}

/// A split-debuginfo object in `deps/` (`split-debuginfo = "unpacked"`): only a debugger
/// reads it, cargo's fingerprints never name it, so a unit without it is still fresh. The
/// copies rustc keeps in `incremental/` stay (work products it links back into `deps/`).
fn is_split_debuginfo(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "dwo") && path.parent().and_then(Path::file_name).is_some_and(|d| d == "deps")
}

/// `name` (a unit dir `pkg-<hash>` or a file `libcrate-<hash>.rlib`, `crate-<hash>.d`)
/// belongs to a stale unit.
fn is_stale(name: &str, stale: &BTreeSet<String>) -> bool {
    if stale.is_empty() {
        return false;
    }
    let stem = name.split('.').next().unwrap_or(name);
    stem.rsplit_once('-').is_some_and(|(_, hash)| stale.contains(hash))
}

/// Whether any file of a unit's fingerprint dir was read or written since `since`.
fn used(unit: &Path, since: SystemTime) -> bool {
    let since = super::mtime::nanos(since) as i128;
    read_dir(unit).iter().any(|file| {
        fs::metadata(file).is_ok_and(|m| {
            let at = m.atime() as i128 * 1_000_000_000 + m.atime_nsec() as i128;
            let mt = m.mtime() as i128 * 1_000_000_000 + m.mtime_nsec() as i128;
            at >= since || mt >= since
        })
    })
}

/// `<target>/<profile>/.fingerprint` and `<target>/<triple>/<profile>/.fingerprint`.
fn fingerprint_dirs(target: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for first in read_dir(target) {
        let direct = first.join(".fingerprint");
        if direct.is_dir() {
            found.push(direct);
        }
        for second in read_dir(&first) {
            let nested = second.join(".fingerprint");
            if nested.is_dir() {
                found.push(nested);
            }
        }
    }
    found
}

fn read_dir(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else { return Vec::new() };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    paths
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_names_match_by_hash() {
        let stale: BTreeSet<String> = ["0123abcd".to_string()].into();
        assert!(is_stale("libitoa-0123abcd.rlib", &stale));
        assert!(is_stale("itoa-0123abcd.d", &stale));
        assert!(is_stale("itoa-0123abcd", &stale));
        assert!(!is_stale("itoa-99999999", &stale));
        assert!(!is_stale("debug", &stale));
    }

    #[test]
    fn selection_drops_incremental_uplifted_and_unused_units() {
        let dir = tempfile::tempdir().unwrap();
        let t = dir.path();
        for file in [
            "debug/.fingerprint/used-aaaa/lib-used",
            "debug/.fingerprint/old-bbbb/lib-old",
            "debug/deps/libused-aaaa.rlib",
            "debug/deps/libold-bbbb.rlib",
            "debug/build/used-aaaa/out/gen.rs",
            "debug/build/script-cccc/build-script-build",
            "debug/build/script-cccc/build_script_build-cccc",
            "debug/build/lone-dddd/build-script-build",
            "debug/incremental/used-aaaa/x.bin",
            "debug/incremental/used-aaaa/s-1-a/cgu.dwo",
            "debug/deps/used-aaaa.used.1234-cgu.0.rcgu.dwo",
            "debug/tasker-ctl",
        ] {
            fs::create_dir_all(t.join(file).parent().unwrap()).unwrap();
            fs::write(t.join(file), b"x").unwrap();
            super::super::mtime::set_mtime(&t.join(file), 1_000_000_000_000_000_000).unwrap();
        }
        let mark = mark(t);
        // What cargo's freshness check does to a fingerprint it uses: reads it.
        fs::read(t.join("debug/.fingerprint/used-aaaa/lib-used")).unwrap();
        let picked: Vec<String> = select(t, mark, WhatToKeep::default()).into_keys().collect();
        if mark.atime_works {
            assert_eq!(
                picked,
                [
                    "debug/.fingerprint/used-aaaa/lib-used",
                    // Without its hashed twin beside it, a file of that name stays.
                    "debug/build/lone-dddd/build-script-build",
                    "debug/build/script-cccc/build_script_build-cccc",
                    "debug/build/used-aaaa/out/gen.rs",
                    "debug/deps/libused-aaaa.rlib"
                ]
            );
        } else {
            assert_eq!(picked.len(), 7, "{picked:?}");
        }
        // With incremental state: all of it, its split-debuginfo work products included.
        let with = select(t, mark, WhatToKeep { incremental: true });
        let incremental: Vec<&String> = with.keys().filter(|k| k.contains("/incremental/")).collect();
        assert_eq!(incremental, ["debug/incremental/used-aaaa/s-1-a/cgu.dwo", "debug/incremental/used-aaaa/x.bin"]);
        assert!(!with.keys().any(|k| k.starts_with("debug/deps/") && k.ends_with(".dwo")), "{with:?}");
    }
}
