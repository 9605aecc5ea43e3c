//! `tbuild cache dir | ls | du | verify | gc | clean`: the maintenance commands
//! (`export`/`import` are in `bundle.rs`). The work is
//! in `crate::cache::{entries, usage, verify, gc, clean}`; this file prints.

use std::time::{Duration, SystemTime};

use serde_json::json;

use crate::cache::gc::{self, GcPolicy};
use crate::cache::{CacheDirLock, CacheError, LocalCache, clean, entries, usage, verify};
use crate::cli::CacheCommand;
use crate::error::Error;
use crate::report::{Reporter, human_bytes};

pub fn run(command: &CacheCommand, cache: &LocalCache, reporter: &Reporter) -> Result<(), Error> {
    match command {
        CacheCommand::Export(args) => super::bundle::export(args, cache, reporter)?,
        CacheCommand::Import(args) => super::bundle::import(args, cache, reporter)?,
        CacheCommand::Dir { format } if format.is_json() => println!("{:#}", json!({ "dir": cache.root() })),
        CacheCommand::Dir { .. } => println!("{}", cache.root().display()),
        CacheCommand::Ls { format } => ls(cache, format.is_json())?,
        CacheCommand::Du { format } => du(cache, format.is_json()),
        CacheCommand::Verify { fix, format, max_entry_size } => {
            verify(cache, *fix, format.is_json(), *max_entry_size, reporter)?
        }
        CacheCommand::Gc { max_size, max_age, max_warm_size, prune_target_dirs, dry_run, format } => {
            let policy = GcPolicy {
                max_size: *max_size,
                max_age: *max_age,
                max_warm_size: Some(*max_warm_size),
                prune_target_dirs: *prune_target_dirs,
                dry_run: *dry_run,
            };
            gc(cache, &policy, format.is_json(), reporter)?
        }
        CacheCommand::Clean { all, format } => {
            let _sole = CacheDirLock::exclusive(cache.root())?;
            let removed = clean::clean(cache, *all)?;
            let bytes: u64 = removed.iter().map(|r| r.bytes).sum();
            for r in &removed {
                reporter.info(&format!("removed {} ({})", r.path.display(), human_bytes(r.bytes)));
            }
            reporter.info(&format!("cleaned {}, {} freed", cache.root().display(), human_bytes(bytes)));
            if format.is_json() {
                let removed: Vec<_> = removed.iter().map(|r| json!({ "path": r.path, "bytes": r.bytes })).collect();
                let report = json!({ "dir": cache.root(), "removed": removed, "freed_bytes": bytes });
                println!("{}", serde_json::to_string_pretty(&report).expect("reports serialise"));
            }
        }
    }
    Ok(())
}

fn ls(cache: &LocalCache, json: bool) -> Result<(), Error> {
    let now = SystemTime::now();
    let mut entries = entries::records(cache)?;
    let target = |e: &entries::Entry| e.record.as_ref().map(|r| r.target.clone()).unwrap_or_default();
    entries.sort_by(|a, b| target(a).cmp(&target(b)).then(b.last_used.cmp(&a.last_used)));
    if json {
        let list: Vec<_> = entries
            .iter()
            .map(|e| match &e.record {
                Ok(r) => json!({
                    "target": r.target,
                    "key": e.key,
                    "provenance": r.provenance,
                    "artifact_digest": r.artifact_digest,
                    "size": r.artifact_size,
                    "files": r.files.len(),
                    "toolchain": r.toolchain,
                    "build_duration_ms": r.build_duration_ms,
                    "created_at": r.created_at,
                    "last_used": epoch_secs(e.last_used),
                }),
                Err(error) => json!({ "key": e.key, "error": error, "last_used": epoch_secs(e.last_used) }),
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&list).expect("entries serialise"));
        return Ok(());
    }
    println!("{:<24} {:<12} {:<12} {:>10} {:>6} {:>9}", "TARGET", "KEY", "COMMIT", "SIZE", "AGE", "LAST USE");
    for e in &entries {
        match &e.record {
            Ok(r) => {
                let created = SystemTime::UNIX_EPOCH + Duration::from_secs(r.created_at);
                println!(
                    "{:<24} {:<12} {:<12} {:>10} {:>6} {:>9}",
                    r.target,
                    &e.key[..12],
                    r.provenance.chars().take(12).collect::<String>(),
                    human_bytes(r.artifact_size),
                    human_age(now, created),
                    format!("{} ago", human_age(now, e.last_used)),
                );
            }
            Err(error) => println!("{:<24} {:<12} {error}", "?", &e.key[..12]),
        }
    }
    let total: u64 = entries.iter().filter_map(|e| e.record.as_ref().ok()).map(|r| r.artifact_size).sum();
    println!("{} entries, {} of archives", entries.len(), human_bytes(total));
    Ok(())
}

fn du(cache: &LocalCache, json: bool) {
    let sizes = usage::usage(cache);
    let total: u64 = sizes.iter().map(|(_, b)| b).sum();
    if json {
        let mut map = serde_json::Map::new();
        for (kind, bytes) in &sizes {
            map.insert(kind.replace(' ', "_"), json!(bytes));
        }
        map.insert("total".into(), json!(total));
        println!("{}", serde_json::to_string_pretty(&map).expect("sizes serialise"));
        return;
    }
    for (kind, bytes) in &sizes {
        println!("{kind:<18} {:>10}", human_bytes(*bytes));
    }
    println!("{:<18} {:>10}  {}", "total", human_bytes(total), cache.root().display());
}

fn verify(cache: &LocalCache, fix: bool, json: bool, max_entry_size: u64, reporter: &Reporter) -> Result<(), Error> {
    let report = verify::verify(cache, fix, max_entry_size)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report).expect("reports serialise"));
    } else {
        for p in &report.problems {
            let what = match &p.target {
                Some(target) => format!("{} of {target}", p.kind),
                None => p.kind.to_string(),
            };
            let removed = if p.removed { " (removed)" } else { "" };
            println!("corrupt {what} {}: {}{removed}", p.path.display(), p.reason);
        }
    }
    reporter.info(&format!(
        "checked {} archives ({}), {} records and {} trees",
        report.archives,
        human_bytes(report.bytes_hashed),
        report.records,
        report.trees
    ));
    let found = report.problems.len();
    let removed = report.problems.iter().filter(|p| p.removed).count();
    if found > 0 {
        return Err(CacheError::Corrupt { found, removed }.into());
    }
    Ok(())
}

fn gc(cache: &LocalCache, policy: &GcPolicy, json: bool, reporter: &Reporter) -> Result<(), Error> {
    let report = gc::collect(cache, policy, SystemTime::now())?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report).expect("reports serialise"));
        return Ok(());
    }
    let verb = if policy.dry_run { "would evict" } else { "evicted" };
    for e in report.evicted.iter().take(LISTED) {
        println!("{verb} {} {} {} ({})", e.target, &e.key[..12], human_bytes(e.bytes), e.reason);
    }
    if report.evicted.len() > LISTED {
        println!("... and {} more (--json lists them all)", report.evicted.len() - LISTED);
    }
    for d in &report.target_dirs {
        let verb = if policy.dry_run { "would remove" } else { "removed" };
        println!("{verb} {} ({})", d.path.display(), human_bytes(d.bytes));
    }
    let evicted: u64 = report.evicted.iter().map(|e| e.bytes).sum();
    let mut summary = format!(
        "{verb} {} entries ({}), {} unreferenced archives ({}), {} stale temp files ({}), {} old logs ({}); kept {} entries ({})",
        report.evicted.len(),
        human_bytes(evicted),
        report.orphan_archives,
        human_bytes(report.orphan_bytes),
        report.temp_files,
        human_bytes(report.temp_bytes),
        report.logs,
        human_bytes(report.log_bytes),
        report.kept_entries,
        human_bytes(report.kept_bytes),
    );
    if report.skipped_in_use > 0 {
        summary.push_str(&format!("; {} in use by another tbuild were skipped", report.skipped_in_use));
    }
    let freed = if policy.dry_run { "would free" } else { "freed" };
    summary.push_str(&format!("; {freed} {}", human_bytes(report.freed_bytes())));
    reporter.info(&summary);
    Ok(())
}

/// Evictions listed one per line; a first gc of a big cache evicts thousands.
const LISTED: usize = 20;

fn epoch_secs(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// `40s`, `12m`, `5h`, `3d` since `then`.
fn human_age(now: SystemTime, then: SystemTime) -> String {
    let secs = now.duration_since(then).unwrap_or_default().as_secs();
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m", secs / 60),
        3600..86_400 => format!("{}h", secs / 3600),
        _ => format!("{}d", secs / 86_400),
    }
}
