//! Why cargo rebuilt (`core --explain-rebuild`). The builds run with cargo's fingerprint log
//! on ([`CARGO_LOG`]); cargo then writes, for every unit it finds dirty, a line
//! `fingerprint dirty for <package>/<mode>/<target>` followed by `dirty: <reason>`, the first
//! stale item it met (a source file newer than the unit's output, a changed env var or
//! flag, a dependency rebuilt). After each build tbuild reads those lines back from the
//! target's log and lists them, root causes first, paths shortened to the work dir and the
//! cargo target dir. Units that were never built into this target dir (cargo's "fingerprint
//! error" lines) and units dirty only because a dependency was rebuilt are counted, not listed.
//!
//! The log format is cargo's own debug output, not a stable interface: a line this parser
//! does not recognise is shown as cargo wrote it, never dropped.

use std::path::Path;

/// The environment that turns cargo's fingerprint log on.
pub const CARGO_LOG: (&str, &str) = ("CARGO_LOG", "cargo::core::compiler::fingerprint=info");

/// Root causes listed at most; the rest are counted.
const MAX_LISTED: usize = 40;

/// One unit cargo found dirty.
#[derive(Debug, PartialEq, Eq)]
pub struct DirtyUnit {
    /// `tasker-shared v0.1.0 build script run`, `tasker-ctl v0.1.0 bin tasker-ctl`, ...
    pub unit: String,
    pub why: Why,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Why {
    /// The first stale item cargo names (a file, an env var, a flag...).
    Stale(String),
    /// Dirty only because a unit it depends on was rebuilt.
    Dependency,
    /// No fingerprint: never built into this target dir.
    NeverBuilt,
}

/// The dirty units of a build log, in the order cargo checked them. `roots` are
/// (prefix, replacement) pairs that shorten paths, e.g. (work dir, "") and (target dir,
/// "target/").
pub fn dirty_units(log: &str, roots: &[(&Path, &str)]) -> Vec<DirtyUnit> {
    let mut units = Vec::new();
    let mut pending: Option<(String, bool)> = None;
    for line in log.lines() {
        let Some((_, message)) = line.split_once("cargo::core::compiler::fingerprint: ") else { continue };
        if let Some(rest) = message.strip_prefix("fingerprint dirty for ") {
            pending = Some((unit_name(rest), false));
        } else if let Some(rest) = message.strip_prefix("fingerprint error for ") {
            pending = Some((unit_name(rest.trim_end_matches(':')), true));
        } else if let Some((unit, error)) = pending.take() {
            let message = message.trim_start();
            let why = if error && message.starts_with("err:") {
                Why::NeverBuilt
            } else if let Some(reason) = message.strip_prefix("dirty: ") {
                reason_of(reason, roots)
            } else {
                // Not the line that follows a unit's header: keep waiting for it.
                pending = Some((unit, error));
                continue;
            };
            units.push(DirtyUnit { unit, why });
        }
    }
    units
}

/// The lines `core --explain-rebuild` prints for one target's build.
pub fn report(units: &[DirtyUnit]) -> Vec<String> {
    let stale: Vec<&DirtyUnit> = units.iter().filter(|u| matches!(u.why, Why::Stale(_))).collect();
    let dependents = units.iter().filter(|u| u.why == Why::Dependency).count();
    let never = units.iter().filter(|u| u.why == Why::NeverBuilt).count();
    let mut lines = vec![format!(
        "cargo found {} dirty: {} stale, {dependents} because a dependency was rebuilt, {never} never built here",
        plural(units.len(), "unit"),
        stale.len()
    )];
    for unit in stale.iter().take(MAX_LISTED) {
        if let Why::Stale(reason) = &unit.why {
            lines.push(format!("  {}: {reason}", unit.unit));
        }
    }
    if stale.len() > MAX_LISTED {
        lines.push(format!("  ... and {} more stale (the build log has them all)", stale.len() - MAX_LISTED));
    }
    lines
}

fn plural(n: usize, noun: &str) -> String {
    if n == 1 { format!("1 {noun}") } else { format!("{n} {noun}s") }
}

/// `tasker-shared v0.1.0 (/path)/RunCustomBuild/TargetInner { ... }` -> a short unit name.
fn unit_name(header: &str) -> String {
    let package = match header.split_once(" (") {
        Some((package, _)) => package,
        None => header.split('/').next().unwrap_or(header),
    };
    let kind = if header.contains(")/RunCustomBuild/") {
        "build script run".to_string()
    } else if header.contains("custom_build_target(") {
        "build script".to_string()
    } else if header.contains("lib_target(") {
        "lib".to_string()
    } else if let Some(name) = quoted_after(header, "name: ") {
        let mode = header.split(")/").nth(1).and_then(|m| m.split('/').next()).unwrap_or("Build");
        if mode == "Build" { format!("target {name}") } else { format!("target {name} ({mode})") }
    } else {
        "unit".to_string()
    };
    format!("{package} {kind}")
}

/// The reason after `dirty: `, in words, with paths shortened.
fn reason_of(reason: &str, roots: &[(&Path, &str)]) -> Why {
    // A dependency rebuilt, by mtime (StaleDepFingerprint) or by its fingerprint's hash
    // (UnitDependencyInfoChanged, e.g. after a build script ran again).
    if reason.contains("StaleDepFingerprint") || reason.starts_with("UnitDependencyInfoChanged") {
        return Why::Dependency;
    }
    let short = |path: &str| {
        for (root, replacement) in roots {
            let root = root.display().to_string();
            if let Some(rest) = path.strip_prefix(&root).and_then(|rest| rest.strip_prefix('/')) {
                return format!("{replacement}{rest}");
            }
        }
        path.to_string()
    };
    let text = if reason.contains("ChangedFile")
        && let (Some(stale), Some(reference)) = (quoted_after(reason, "stale: "), quoted_after(reason, "reference: "))
    {
        format!("changed file {} (newer than {})", short(&stale), short(&reference))
    } else if reason.contains("MissingFile")
        && let Some(path) = quoted_after(reason, "MissingFile")
    {
        format!("missing file {}", short(&path))
    } else if let Some(name) =
        reason.strip_prefix("FsStatusOutdated(StaleDependency").and(quoted_after(reason, "name: "))
    {
        format!("dependency {name} changed")
    } else {
        // Everything else (RustcChanged, EnvVarChanged { .. }, FeaturesChanged { .. }, ...)
        // as cargo wrote it.
        let mut text: String = reason.chars().take(300).collect();
        if text.len() < reason.len() {
            text.push_str("...");
        }
        text
    };
    Why::Stale(text)
}

/// The first `"..."` string after `marker` in `text`.
fn quoted_after(text: &str, marker: &str) -> Option<String> {
    let rest = &text[text.find(marker)? + marker.len()..];
    let start = rest.find('"')? + 1;
    let len = rest[start..].find('"')?;
    Some(rest[start..start + len].to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lines as cargo 1.95 writes them (trimmed of the package path where it repeats).
    const LOG: &str = r#"   Compiling itoa v1.0.15
   0.09s  INFO prepare_target{force=false package_id=tasker-ctl v0.1.0 (/w/crates/tasker-ctl) target="tasker-ctl"}: cargo::core::compiler::fingerprint: stale: changed "/w/crates/tasker-shared/proto"
   0.11s  INFO prepare_target{force=false}: cargo::core::compiler::fingerprint:           (vs) "/t/debug/build/tasker-shared-763f/output"
   0.11s  INFO prepare_target{force=false}: cargo::core::compiler::fingerprint: fingerprint dirty for tasker-ctl v0.1.0 (/w/crates/tasker-ctl)/Build/TargetInner { name: "tasker-ctl", doc: true, ..: with_path("/w/crates/tasker-ctl/src/main.rs", Edition2021) }
   0.11s  INFO prepare_target{force=false}: cargo::core::compiler::fingerprint:     dirty: FsStatusOutdated(StaleDepFingerprint { unit: UnitIndex(1) })
   0.11s  INFO prepare_target{force=false}: cargo::core::compiler::fingerprint: fingerprint dirty for tasker-shared v0.1.0 (/w/crates/tasker-shared)/Build/TargetInner { name_inferred: true, ..: lib_target("tasker_shared", ["lib"], "/w/crates/tasker-shared/src/lib.rs", Edition2021) }
   0.11s  INFO prepare_target{force=false}: cargo::core::compiler::fingerprint:     dirty: UnitDependencyInfoChanged { unit: UnitIndex(6) }
   0.11s  INFO prepare_target{force=false}: cargo::core::compiler::fingerprint: fingerprint dirty for tasker-shared v0.1.0 (/w/crates/tasker-shared)/RunCustomBuild/TargetInner { ..: custom_build_target("build-script-build", "/w/crates/tasker-shared/build.rs", Edition2021) }
   0.11s  INFO prepare_target{force=false}: cargo::core::compiler::fingerprint:     dirty: FsStatusOutdated(StaleItem(ChangedFile { reference: "/t/debug/build/tasker-shared-763f/output", reference_mtime: FileTime { seconds: 1, nanos: 1 }, stale: "/w/crates/tasker-shared/proto", stale_mtime: FileTime { seconds: 2, nanos: 2 } }))
   0.12s  INFO prepare_target{force=false}: cargo::core::compiler::fingerprint: fingerprint dirty for tasker-client v0.1.0 (/w/crates/tasker-client)/Build/TargetInner { name_inferred: true, ..: lib_target("tasker_client", ["lib"], "/w/crates/tasker-client/src/lib.rs", Edition2021) }
   0.12s  INFO prepare_target{force=false}: cargo::core::compiler::fingerprint:     dirty: EnvVarChanged { name: "SQLX_OFFLINE", old_value: None, new_value: Some("true") }
   0.12s  INFO prepare_target{force=false}: cargo::core::compiler::fingerprint: fingerprint error for itoa v1.0.15/Build/TargetInner { name_inferred: true, ..: lib_target("itoa", ["lib"], "/h/itoa-1.0.15/src/lib.rs", Edition2018) }:
   0.12s  INFO prepare_target{force=false}: cargo::core::compiler::fingerprint:     err: failed to read `/t/debug/.fingerprint/itoa-1/lib-itoa`
"#;

    #[test]
    fn every_dirty_unit_with_its_first_stale_item() {
        let units = dirty_units(LOG, &[(Path::new("/w"), ""), (Path::new("/t"), "target/")]);
        let got: Vec<(&str, &Why)> = units.iter().map(|u| (u.unit.as_str(), &u.why)).collect();
        assert_eq!(
            got,
            [
                ("tasker-ctl v0.1.0 target tasker-ctl", &Why::Dependency),
                ("tasker-shared v0.1.0 lib", &Why::Dependency),
                (
                    "tasker-shared v0.1.0 build script run",
                    &Why::Stale(
                        "changed file crates/tasker-shared/proto (newer than target/debug/build/tasker-shared-763f/output)"
                            .into()
                    )
                ),
                (
                    "tasker-client v0.1.0 lib",
                    &Why::Stale(
                        "EnvVarChanged { name: \"SQLX_OFFLINE\", old_value: None, new_value: Some(\"true\") }".into()
                    )
                ),
                ("itoa v1.0.15 lib", &Why::NeverBuilt),
            ]
        );
        let lines = report(&units);
        assert_eq!(
            lines[0],
            "cargo found 5 units dirty: 2 stale, 2 because a dependency was rebuilt, 1 never built here"
        );
        assert_eq!(lines.len(), 3);
        assert!(
            lines[1].starts_with("  tasker-shared v0.1.0 build script run: changed file crates/tasker-shared/proto")
        );
    }

    #[test]
    fn a_log_without_fingerprint_lines_has_no_dirty_units() {
        assert!(dirty_units("   Compiling itoa v1.0.15\n    Finished `dev`\n", &[]).is_empty());
    }
}
