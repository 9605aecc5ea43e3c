//! `tbuild cache export` and `tbuild cache import`: a commit's entries (and optionally its
//! source) moved between machines as one file. See `crate::bundle` for the format.

use serde::Serialize;

use crate::bundle::{
    BUNDLE_FORMAT, BundleEntry, BundleError, BundleManifest, BundleSource, BundleWriter, SOURCE_PACK, StagedBundle,
    archive_member, record_member, stage,
};
use crate::cache::{ArtifactStore, KeyLock, LocalCache, now_secs};
use crate::cli::{ExportArgs, ImportArgs};
use crate::engine::plan;
use crate::engine::source::{History, Rev};
use crate::error::Error;
use crate::report::{Reporter, human_bytes};
use crate::source::{Mirror, normalise_url, repo_id};

#[derive(Serialize)]
struct EntrySummary {
    target: String,
    key: String,
    artifact_size: u64,
}

#[derive(Serialize)]
struct ExportReport {
    file: String,
    sha: String,
    repo: String,
    size: u64,
    entries: Vec<EntrySummary>,
    source: bool,
}

pub fn export(args: &ExportArgs, cache: &LocalCache, reporter: &Reporter) -> Result<(), Error> {
    let rev = Rev::Commit { repo: &args.repo.url, rev: &args.sha, offline: args.repo.offline, history: History::No };
    let plan::Planned { loaded, targets: planned, .. } =
        plan::load(cache, rev, args.recipe.as_deref(), &args.targets, reporter, |_, _, _| {})?;
    let sha = loaded.tree.provenance();

    let mut hits = Vec::new();
    let mut missing = Vec::new();
    for p in &planned {
        let mut on_corrupt = |c: crate::cache::CorruptEntry| {
            reporter.warn(&format!("cache entry of {} is corrupt ({}); dropped", p.target.name, c.reason));
        };
        match cache.get(&p.key, &mut on_corrupt)? {
            Some(hit) => hits.push(hit),
            None => missing.push(p.target.name.clone()),
        }
    }
    if !missing.is_empty() {
        return Err(BundleError::Missing { sha, targets: missing }.into());
    }

    let mut writer = BundleWriter::create(&args.output)?;
    let mut entries = Vec::new();
    let mut summaries = Vec::new();
    for hit in &hits {
        let record = &hit.record;
        let json = serde_json::to_vec_pretty(record).expect("records serialise");
        let (record_name, archive_name) = (record_member(&record.key), archive_member(&record.artifact_digest));
        // The archive first: a reader checks it against the record either way, but this
        // keeps the order records are published in (archive, then record).
        writer.append_file(&archive_name, &hit.archive)?;
        writer.append(&record_name, json.len() as u64, json.as_slice())?;
        entries.push(BundleEntry {
            target: record.target.clone(),
            key: record.key.clone(),
            record: record_name,
            archive: archive_name,
        });
        summaries.push(EntrySummary {
            target: record.target.clone(),
            key: record.key.clone(),
            artifact_size: record.artifact_size,
        });
    }
    let source = if args.with_source {
        let (repo, commit) = loaded.tree.git().expect("commits come from git");
        let git = |action: &str| {
            let action = action.to_string();
            move |source| BundleError::Git { action, source }
        };
        let mut builder = repo.packbuilder().map_err(git("starting a pack"))?;
        builder.insert_commit(commit).map_err(git("packing the commit"))?;
        let mut pack = git2::Buf::new();
        builder.write_buf(&mut pack).map_err(git("writing the pack"))?;
        writer.append(SOURCE_PACK, pack.len() as u64, &pack[..])?;
        Some(BundleSource { pack: SOURCE_PACK.into(), commit: sha.clone() })
    } else {
        None
    };
    let has_source = source.is_some();
    let manifest = BundleManifest {
        format: BUNDLE_FORMAT,
        tbuild: env!("CARGO_PKG_VERSION").into(),
        created_at: now_secs(),
        repo: loaded.repo_url.clone(),
        sha: sha.clone(),
        entries,
        source,
        members: Default::default(),
    };
    let size = writer.finish(manifest)?;
    reporter.info(&format!(
        "exported {} of {sha}{} to {} ({})",
        count(summaries.len(), "entry", "entries"),
        if has_source { " with its source" } else { "" },
        args.output.display(),
        human_bytes(size)
    ));
    if args.format.is_json() {
        let report = ExportReport {
            file: args.output.display().to_string(),
            sha,
            repo: loaded.repo_url,
            size,
            entries: summaries,
            source: has_source,
        };
        println!("{}", serde_json::to_string_pretty(&report).expect("reports serialise"));
    }
    Ok(())
}

#[derive(Serialize)]
struct ImportReport {
    sha: String,
    /// Entries that were not in the cache and now are.
    added: Vec<EntrySummary>,
    /// Entries the cache already had (left as they were).
    present: Vec<EntrySummary>,
    /// The repository whose mirror got the commit's objects, with `--with-source` bundles.
    #[serde(skip_serializing_if = "Option::is_none")]
    source_repo: Option<String>,
}

pub fn import(args: &ImportArgs, cache: &LocalCache, reporter: &Reporter) -> Result<(), Error> {
    // Staging in the cache's tmp dir: same filesystem, so publishing archives is a rename.
    let staging = tempfile::Builder::new()
        .prefix("import-")
        .tempdir_in(cache.tmp_dir())
        .map_err(BundleError::io(cache.tmp_dir()))?;
    let staged = stage(&args.file, staging.path())?;
    let StagedBundle { manifest, entries, pack } = staged;

    // Everything checked: publish. The source first, so that an entry never becomes visible
    // for a commit this cache cannot read yet; then each entry with the cache's own atomic put.
    let mut source_repo = None;
    if let Some(pack) = pack {
        let url = normalise_url(args.repo.as_deref().unwrap_or(&manifest.repo));
        import_pack(cache, &url, &pack, &manifest.sha, reporter)?;
        source_repo = Some(url);
    }
    let mut added = Vec::new();
    let mut present = Vec::new();
    for (record, archive) in entries {
        let summary = EntrySummary {
            target: record.target.clone(),
            key: record.key.clone(),
            artifact_size: record.artifact_size,
        };
        let _lock = cache.lock_key(&record.key, || reporter.info("waiting for another tbuild storing this key"))?;
        let mut on_corrupt = |c: crate::cache::CorruptEntry| {
            reporter.warn(&format!("replacing corrupt cache entry of {} ({})", c.key, c.reason));
        };
        if cache.get(&record.key, &mut on_corrupt)?.is_some() {
            present.push(summary);
            continue;
        }
        cache.put(&record, &archive)?;
        added.push(summary);
    }
    reporter.info(&format!(
        "imported {} of {} from {}: {} added, {} already present{}",
        count(added.len() + present.len(), "entry", "entries"),
        manifest.sha,
        args.file.display(),
        added.len(),
        present.len(),
        source_repo.as_ref().map(|r| format!("; source into the mirror of {r}")).unwrap_or_default()
    ));
    for entry in &added {
        reporter.info(&format!("added {} {}", entry.target, &entry.key[..16]));
    }
    if args.format.is_json() {
        let report = ImportReport { sha: manifest.sha, added, present, source_repo };
        println!("{}", serde_json::to_string_pretty(&report).expect("reports serialise"));
    }
    Ok(())
}

/// Adds the pack's objects to the mirror of `url` (indexed by libgit2, which writes the pack
/// and its index under temp names and renames them into place), then checks the commit is
/// readable. No ref is created: the commit's parents are not in the pack.
fn import_pack(
    cache: &LocalCache,
    url: &str,
    pack: &std::path::Path,
    sha: &str,
    reporter: &Reporter,
) -> Result<(), Error> {
    let repo_dir = cache.repo_dir(&repo_id(url));
    let _lock = KeyLock::acquire(&repo_dir.join("mirror.lock"), || {
        reporter.info("waiting for another tbuild fetching this repository")
    })?;
    let mirror = Mirror::open(&repo_dir.join("mirror.git"), url)?;
    let repo = mirror.into_repo();
    let git = |action: &str| {
        let action = action.to_string();
        move |source| BundleError::Git { action, source }
    };
    let odb = repo.odb().map_err(git("opening the mirror's object database"))?;
    let mut writer = odb.packwriter().map_err(git("starting to index the pack"))?;
    let mut file = std::fs::File::open(pack).map_err(BundleError::io(pack))?;
    std::io::copy(&mut file, &mut writer).map_err(BundleError::io(pack))?;
    writer.commit().map_err(git("indexing the pack into the mirror"))?;
    let oid = git2::Oid::from_str(sha).map_err(git("reading the bundle's SHA"))?;
    repo.find_commit(oid).and_then(|c| c.tree()).map_err(git("reading the imported commit"))?;
    Ok(())
}

fn count(n: usize, one: &str, many: &str) -> String {
    if n == 1 { format!("1 {one}") } else { format!("{n} {many}") }
}
