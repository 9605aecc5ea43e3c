//! `tbuild upstream check` and `tbuild upstream constraints`.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use super::Runtime;
use crate::cli::{CheckFormat, RegistryArgs, TableOrJson, UpstreamCheckArgs, UpstreamCommand, UpstreamConstraintsArgs};
use crate::error::Error;
use crate::report::Reporter;
use crate::tools::upstream::constraints::{Constraint, scan};
use crate::tools::upstream::{
    CheckOptions, CheckReport, Ecosystem, Registry, UpstreamError, VersionsFile, check, report,
};

pub fn run(command: &UpstreamCommand, runtime: &Runtime, reporter: &Reporter) -> Result<(), Error> {
    match command {
        UpstreamCommand::Check(args) => run_check(args, runtime, reporter),
        UpstreamCommand::Constraints(args) => run_constraints(args, runtime, reporter),
    }
}

/// `--registry-url kind=URL` flags, checked.
fn options(args: &RegistryArgs) -> Result<CheckOptions, Error> {
    let mut urls = BTreeMap::new();
    for flag in &args.registry_urls {
        let known = Registry::ALL.map(Registry::name).join(", ");
        let (kind, url) = flag.split_once('=').ok_or_else(|| {
            Error::Usage(format!("--registry-url {flag}: expected KIND=URL with KIND one of {known}"))
        })?;
        let registry = Registry::from_name(kind).ok_or_else(|| {
            Error::Usage(format!("--registry-url {flag}: unknown registry '{kind}'; use one of {known}"))
        })?;
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(Error::Usage(format!("--registry-url {flag}: the URL must start with http:// or https://")));
        }
        urls.insert(registry, url.to_string());
    }
    Ok(CheckOptions {
        urls,
        timeout: Duration::from_secs(args.timeout),
        retries: args.retries,
        concurrency: args.concurrency as usize,
    })
}

fn run_check(args: &UpstreamCheckArgs, runtime: &Runtime, reporter: &Reporter) -> Result<(), Error> {
    let options = options(&args.registry)?;
    let file = VersionsFile::load(&args.versions)?;
    reporter.info(&format!("checking {} pinned packages from {}", file.pins.len(), args.versions.display()));
    let report = runtime.get().block_on(check(&file, &options));
    match args.format.get() {
        CheckFormat::Table => print!("{}", report::table(&report)),
        CheckFormat::Json => println!("{}", report::json(&report)),
        CheckFormat::Markdown => print!("{}", report::markdown(&report)),
        CheckFormat::Github => {
            let output = std::env::var_os("GITHUB_OUTPUT").map(std::path::PathBuf::from);
            let summary = std::env::var_os("GITHUB_STEP_SUMMARY").map(std::path::PathBuf::from);
            if output.is_none() {
                reporter.warn("GITHUB_OUTPUT is not set (not in GitHub Actions): printing the outputs instead");
            }
            let printed = report::github(&report, output.as_deref(), summary.as_deref())
                .map_err(|e| Error::Usage(format!("cannot write the GitHub Actions output files: {e}")))?;
            print!("{printed}");
        }
    }
    if args.update {
        let changed = file.update(&report)?;
        reporter.info(&format!("{}: {changed} pin(s) updated", args.versions.display()));
    }
    exit_status(&report, args.fail_on)
}

/// Lookup failures first (the report is incomplete), then --fail-on.
fn exit_status(report: &CheckReport, fail_on: Option<crate::tools::upstream::Severity>) -> Result<(), Error> {
    if report.failed > 0 {
        return Err(UpstreamError::LookupsFailed { failed: report.failed, total: report.packages.len() }.into());
    }
    if let (Some(threshold), Some(worst)) = (fail_on, report.worst)
        && worst >= threshold
    {
        let count = report.packages.iter().filter(|p| p.severity.is_some_and(|s| s >= threshold)).count();
        return Err(UpstreamError::FailOn { count, threshold: threshold.name(), worst: worst.name() }.into());
    }
    Ok(())
}

/// One constraint and what it admits.
#[derive(Debug, Serialize)]
struct ConstraintRow {
    #[serde(flatten)]
    constraint: Constraint,
    pinned: String,
    admits_pinned: Option<bool>,
    latest: Option<String>,
    admits_latest: Option<bool>,
    /// Why a column could not be evaluated.
    note: Option<String>,
}

fn run_constraints(args: &UpstreamConstraintsArgs, runtime: &Runtime, reporter: &Reporter) -> Result<(), Error> {
    let options = options(&args.registry)?;
    let versions_path =
        args.versions.clone().unwrap_or_else(|| args.dir.join(crate::tools::upstream::DEFAULT_VERSIONS_FILE));
    let file = VersionsFile::load(&versions_path)?;
    let mut wanted: BTreeMap<Ecosystem, Vec<String>> = BTreeMap::new();
    for pin in &file.pins {
        wanted.entry(pin.ecosystem).or_default().push(pin.package.clone());
    }
    let constraints = scan(&args.dir, &wanted).map_err(|(path, reason)| UpstreamError::Manifest { path, reason })?;
    let latest: BTreeMap<(Ecosystem, String), String> = if args.offline {
        BTreeMap::new()
    } else {
        let report = runtime.get().block_on(check(&file, &options));
        for p in report.packages.iter().filter(|p| p.error.is_some()) {
            reporter.warn(&format!("{}: {}", p.package, p.error.as_ref().expect("filtered").message));
        }
        report.packages.into_iter().filter_map(|p| Some(((p.ecosystem, p.package), p.latest?))).collect()
    };
    let mut rows = Vec::new();
    for constraint in constraints {
        let key = (constraint.ecosystem, constraint.package.clone());
        let pinned = file.pins.iter().find(|p| (p.ecosystem, p.package.clone()) == key).expect("scanned for pins");
        let mut note = None;
        let mut eval = |version: &str| match constraint.admits(version) {
            Ok(admits) => Some(admits),
            Err(reason) => {
                note = Some(reason);
                None
            }
        };
        let admits_pinned = eval(&pinned.version);
        let latest_version = latest.get(&key).cloned();
        let admits_latest = latest_version.as_deref().and_then(&mut eval);
        rows.push(ConstraintRow {
            pinned: pinned.version.clone(),
            admits_pinned,
            latest: latest_version,
            admits_latest,
            note,
            constraint,
        });
    }
    match args.format.get() {
        TableOrJson::Json => println!("{}", serde_json::to_string_pretty(&rows).expect("rows serialise")),
        TableOrJson::Table => print!("{}", constraints_table(&rows)),
    }
    if rows.is_empty() {
        reporter.warn(&format!("no manifest under {} declares a pinned package", args.dir.display()));
    }
    let refusing = rows.iter().filter(|r| r.admits_pinned == Some(false)).count();
    if refusing > 0 {
        return Err(UpstreamError::ConstraintsRefuse { count: refusing }.into());
    }
    Ok(())
}

fn constraints_table(rows: &[ConstraintRow]) -> String {
    let yes_no = |v: Option<bool>| match v {
        Some(true) => "yes",
        Some(false) => "NO",
        None => "?",
    };
    let mut table =
        vec![["MANIFEST", "PACKAGE", "CONSTRAINT", "PINNED", "ADMITS", "LATEST", "ADMITS", "NOTE"].map(String::from)];
    for r in rows {
        let requirement = if r.constraint.requirement.is_empty() { "(any)" } else { &r.constraint.requirement };
        table.push([
            r.constraint.manifest.clone(),
            r.constraint.package.clone(),
            requirement.to_string(),
            r.pinned.clone(),
            yes_no(r.admits_pinned).into(),
            r.latest.clone().unwrap_or_else(|| "-".into()),
            yes_no(r.admits_latest).into(),
            r.note.clone().unwrap_or_default(),
        ]);
    }
    report::columns(&table)
}
