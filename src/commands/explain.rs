//! `tbuild explain TARGET`: why the target's key misses the cache, in terms of the closest
//! stored entry (see `crate::tools::explain`).

use std::path::Path;

use serde::Serialize;

use crate::cache::entries::RecordFile;
use crate::cache::{ActionRecord, KeyDerivation, LAYOUT_VERSION, LocalCache};
use crate::cli::ExplainArgs;
use crate::engine::plan;
use crate::engine::source::LoadedTree;
use crate::error::Error;
use crate::report::Reporter;
use crate::tools::explain::{Closest, Current, Differences, closest, differences};

/// Commits of history searched for an entry built from an ancestor.
const ANCESTRY_LIMIT: usize = 10_000;

#[derive(Serialize)]
struct Explanation {
    target: String,
    tree: String,
    key: String,
    /// The key is in the cache: a run would restore it.
    stored: bool,
    /// Entries of this target in the cache, and how many predate input manifests.
    entries: usize,
    entries_without_manifest: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    closest: Option<Closest>,
    #[serde(skip_serializing_if = "Option::is_none")]
    differences: Option<Differences>,
}

pub fn run(args: &ExplainArgs, cache: &LocalCache, reporter: &Reporter) -> Result<(), Error> {
    // The walk reads the commit's ancestors: a shallow mirror is deepened first.
    let rev = super::rev(&args.rev)?.walked();
    let target = std::slice::from_ref(&args.target);
    let planned = plan::load(cache, rev, args.recipe.as_deref(), target, reporter, |_, _, _| {})?;
    let (loaded, p) = (planned.loaded, planned.targets.into_iter().next().expect("one target selected"));
    let derivation = KeyDerivation::new(&p.target, &p.key_env, &p.inputs);
    let current = Current { key: &p.key, toolchain: &p.toolchain, derivation: &derivation };

    let all = records_of(cache, &args.target, reporter);
    let entries = all.len();
    let explainable: Vec<ActionRecord> = all.into_iter().filter(|r| r.derivation.is_some() || r.key == p.key).collect();
    let ancestry = ancestry(&loaded);
    let found = closest(&current, &explainable, &ancestry);
    let explanation = Explanation {
        target: args.target.clone(),
        tree: loaded.tree.provenance(),
        key: p.key.clone(),
        stored: found.as_ref().is_some_and(|(r, _)| r.key == p.key),
        entries,
        entries_without_manifest: entries - explainable.len(),
        closest: found.as_ref().map(|(r, by)| Closest {
            key: r.key.clone(),
            provenance: r.provenance.clone(),
            created_at: r.created_at,
            chosen_by: by.clone(),
        }),
        differences: found.as_ref().map(|(r, _)| differences(&current, r)),
    };
    if args.format.is_json() {
        println!("{}", serde_json::to_string_pretty(&explanation).expect("explanations serialise"));
    } else {
        print!("{}", render(&explanation));
    }
    Ok(())
}

/// Every readable action record of `target` in the cache. Unreadable ones are skipped: the
/// lookup that uses them reports and drops them.
fn records_of(cache: &LocalCache, target: &str, reporter: &Reporter) -> Vec<ActionRecord> {
    let actions = cache.root().join(format!("v{LAYOUT_VERSION}")).join("actions");
    let mut found = Vec::new();
    let Ok(shards) = std::fs::read_dir(&actions) else { return found };
    for shard in shards.flatten() {
        let Ok(files) = std::fs::read_dir(shard.path()) else { continue };
        for file in files.flatten() {
            let path = file.path();
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            // The one safe read (no FIFO hangs, no link followed, size capped) and validation.
            let read = match crate::cache::entries::read_record_file(&path) {
                Ok(RecordFile::Read(bytes)) => ActionRecord::from_json(&bytes).ok(),
                Ok(RecordFile::Missing) => continue,
                Ok(RecordFile::Unusable(_)) | Err(_) => None,
            };
            match read {
                Some(record) if record.target == target => found.push(record),
                Some(_) => {}
                None => reporter.warn(&format!("skipping unreadable action record {}", path.display())),
            }
        }
    }
    found
}

/// The explained commit and its ancestors, nearest first (for `--path`: the checkout's
/// HEAD and its ancestors). Empty when there is no history to walk.
fn ancestry(loaded: &LoadedTree) -> Vec<String> {
    let opened;
    let (repo, start) = match loaded.tree.git() {
        Some((repo, commit)) => (repo, commit),
        None => {
            let Some(dir) = loaded.tree.dir() else { return vec![] };
            let Some(repo) = open_checkout(dir) else { return vec![] };
            opened = repo;
            match opened.head().ok().and_then(|h| h.peel_to_commit().ok()) {
                Some(head) => (&opened, head.id()),
                None => return vec![],
            }
        }
    };
    let Ok(mut walk) = repo.revwalk() else { return vec![] };
    let _ = walk.set_sorting(git2::Sort::TOPOLOGICAL | git2::Sort::TIME);
    if walk.push(start).is_err() {
        return vec![];
    }
    // A commit imported from a bundle has no parents in the mirror: the walk ends there.
    walk.take(ANCESTRY_LIMIT).map_while(Result::ok).map(|oid| oid.to_string()).collect()
}

fn open_checkout(dir: &Path) -> Option<git2::Repository> {
    git2::Repository::open(dir).ok()
}

fn render(e: &Explanation) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let short = |key: &str| key[..16.min(key.len())].to_string();
    let _ = writeln!(out, "{} at {}: key {}", e.target, e.tree, short(&e.key));
    let (Some(closest), Some(d)) = (&e.closest, &e.differences) else {
        let _ = writeln!(
            out,
            "miss: the cache holds no entry of {} to compare with{}",
            e.target,
            if e.entries_without_manifest > 0 {
                format!(" ({} written by an older tbuild, without an input manifest)", e.entries_without_manifest)
            } else {
                String::new()
            }
        );
        return out;
    };
    if e.stored {
        let _ = writeln!(out, "hit: stored (built from {}); a run restores it", closest.provenance);
        return out;
    }
    // A --path tree is compared along the history of its checkout's HEAD.
    let base = if e.tree.starts_with("path:") { "the checkout's HEAD" } else { "this commit" };
    let how = match &closest.chosen_by {
        crate::tools::explain::ChosenBy::Ancestry { commits_back: 0 } => format!("built from {base}"),
        crate::tools::explain::ChosenBy::Ancestry { commits_back: 1 } => format!("built 1 commit before {base}"),
        crate::tools::explain::ChosenBy::Ancestry { commits_back } => {
            format!("built {commits_back} commits before {base}")
        }
        crate::tools::explain::ChosenBy::InputOverlap { shared_inputs } => {
            format!("not on this history; it shares the most inputs ({shared_inputs})")
        }
        crate::tools::explain::ChosenBy::SameKey => "the same key".to_string(),
    };
    let _ = writeln!(out, "miss: closest stored entry is {} from {} ({how})", short(&closest.key), closest.provenance);
    if d.is_empty() {
        let _ = writeln!(out, "no difference tbuild can name (an input changed beyond the recorded digests)");
        return out;
    }
    let i = &d.inputs;
    if i.added.is_empty() && i.removed.is_empty() && i.changed.is_empty() {
        let _ = writeln!(out, "inputs: same");
    } else {
        let _ =
            writeln!(out, "inputs: {} changed, {} added, {} removed", i.changed.len(), i.added.len(), i.removed.len());
        for (what, paths) in [("changed", &i.changed), ("added", &i.added), ("removed", &i.removed)] {
            for path in paths {
                let _ = writeln!(out, "  {what:<8} {path}");
            }
        }
    }
    let lines = |out: &mut String, name: &str, c: &crate::tools::explain::LineChanges| {
        if c.is_empty() {
            let _ = writeln!(out, "{name}: same");
        } else {
            let _ = writeln!(out, "{name}: changed");
            for line in &c.stored {
                let _ = writeln!(out, "  - {line}");
            }
            for line in &c.now {
                let _ = writeln!(out, "  + {line}");
            }
        }
    };
    lines(&mut out, "toolchain", &d.toolchain);
    if d.recipe.is_empty() {
        let _ = writeln!(out, "recipe: same");
    } else {
        let _ = writeln!(out, "recipe: changed");
        for f in &d.recipe {
            let _ = writeln!(out, "  {}: {} -> {}", f.field, f.stored, f.now);
        }
    }
    lines(&mut out, "env", &d.env);
    if let Some((then, now)) = d.key_version {
        let _ = writeln!(out, "key format: {then} -> {now} (tbuild changed how keys are derived)");
    }
    out
}
