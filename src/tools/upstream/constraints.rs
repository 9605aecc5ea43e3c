//! What the contrib packages declare about the tasker-core packages they depend on, and
//! whether each declaration admits a version, by that ecosystem's own rules:
//!
//! - RubyGems (`*.gemspec`, `Gemfile`): `add_dependency 'tasker-rb', '~> 0.5.0'`, `gem '...'`;
//!   the requirement operators `= != > < >= <= ~>` by hand, `~>` being Ruby's pessimistic
//!   operator (`~> 0.5.0` is `>= 0.5.0, < 0.6`; `~> 0.5` is `>= 0.5, < 1`).
//! - Python (`pyproject.toml`): PEP 621 `[project] dependencies` and optional dependencies,
//!   `[dependency-groups]`; PEP 440 specifiers (`pep440_rs`), names compared normalised.
//! - npm (`package.json`): dependencies, devDependencies, peerDependencies,
//!   optionalDependencies; npm ranges (`nodejs-semver`: `^`, `~`, `x`, hyphen, `||`).
//! - cargo (`Cargo.toml`): every dependency table, `package = ` renames; cargo requirements
//!   (`semver`, where a bare `0.5` means `^0.5`).
//!
//! Only the packages pinned in `upstream-versions.json` are looked for.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::Serialize;

use super::version::{Ecosystem, GemVersion};

/// One declared constraint on a pinned package.
#[derive(Debug, Clone, Serialize)]
pub struct Constraint {
    /// The manifest, relative to the scanned dir.
    pub manifest: String,
    pub ecosystem: Ecosystem,
    pub package: String,
    /// Where in the manifest: `dependencies`, `peerDependencies`, `add_dependency`...
    pub section: String,
    /// As written; empty for "any version".
    pub requirement: String,
}

impl Constraint {
    /// Whether the requirement admits `version`; `Err` says why it cannot be evaluated
    /// (a path or git dependency, a `workspace:` range, a malformed requirement).
    pub fn admits(&self, version: &str) -> Result<bool, String> {
        admits(self.ecosystem, &self.requirement, version)
    }
}

pub fn admits(ecosystem: Ecosystem, requirement: &str, version: &str) -> Result<bool, String> {
    match ecosystem {
        Ecosystem::Rust => {
            let req = semver::VersionReq::parse(requirement).map_err(|e| format!("bad cargo requirement: {e}"))?;
            let v = semver::Version::parse(version).map_err(|e| format!("bad version {version}: {e}"))?;
            Ok(req.matches(&v))
        }
        Ecosystem::Typescript => {
            let range = nodejs_semver::Range::parse(requirement)
                .map_err(|_| format!("'{requirement}' is not an npm version range"))?;
            let v = nodejs_semver::Version::parse(version).map_err(|e| format!("bad version {version}: {e}"))?;
            Ok(range.satisfies(&v))
        }
        Ecosystem::Python => {
            let specifiers = pep440_rs::VersionSpecifiers::from_str(requirement)
                .map_err(|e| format!("bad PEP 440 specifier: {e}"))?;
            let v = pep440_rs::Version::from_str(version).map_err(|e| format!("bad version {version}: {e}"))?;
            Ok(specifiers.contains(&v))
        }
        Ecosystem::Ruby => gem_requirement_admits(requirement, version),
    }
}

/// `Gem::Requirement#satisfied_by?`: every comma-separated clause must hold.
pub fn gem_requirement_admits(requirement: &str, version: &str) -> Result<bool, String> {
    let v = GemVersion::parse(version)?;
    for clause in requirement.split(',').map(str::trim).filter(|c| !c.is_empty()) {
        let op_end =
            clause.find(|c: char| c.is_ascii_digit()).ok_or_else(|| format!("bad gem requirement '{clause}'"))?;
        let (op, number) = (clause[..op_end].trim(), clause[op_end..].trim());
        let r = GemVersion::parse(number)?;
        let holds = match op {
            "" | "=" => v == r,
            "!=" => v != r,
            ">" => v > r,
            "<" => v < r,
            ">=" => v >= r,
            "<=" => v <= r,
            "~>" => v >= r && v < GemVersion::parse(&pessimistic_bound(number))?,
            other => return Err(format!("unknown gem requirement operator '{other}' in '{clause}'")),
        };
        if !holds {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Gem::Version#bump: drop pre-release parts, drop the last number unless it is the only
/// one, increment the new last. `0.5.0` -> `0.6`, `0.5` -> `1`, `3` -> `4`.
fn pessimistic_bound(number: &str) -> String {
    let mut parts: Vec<&str> = number.split('.').take_while(|p| p.chars().all(|c| c.is_ascii_digit())).collect();
    if parts.len() > 1 {
        parts.pop();
    }
    let mut numbers: Vec<u64> = parts.iter().map(|p| p.parse().unwrap_or(0)).collect();
    if let Some(last) = numbers.last_mut() {
        *last += 1;
    }
    numbers.iter().map(u64::to_string).collect::<Vec<_>>().join(".")
}

/// Finds the constraints on `wanted` packages (per ecosystem) in the manifests under `dir`,
/// skipping what .gitignore ignores (node_modules, target, .venv in a usual repository).
pub fn scan(dir: &Path, wanted: &BTreeMap<Ecosystem, Vec<String>>) -> Result<Vec<Constraint>, (PathBuf, String)> {
    let mut found = Vec::new();
    // `require_git(false)`: a checkout exported without .git still has its .gitignore.
    let walker = ignore::WalkBuilder::new(dir).hidden(true).require_git(false).build();
    let mut manifests: Vec<PathBuf> = walker
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_some_and(|t| t.is_file()))
        .map(|e| e.into_path())
        .filter(|p| manifest_kind(p).is_some())
        .collect();
    manifests.sort();
    for path in manifests {
        let rel = path.strip_prefix(dir).unwrap_or(&path).to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&path).map_err(|e| (path.clone(), e.to_string()))?;
        let ecosystem = manifest_kind(&path).expect("filtered");
        let names = wanted.get(&ecosystem).cloned().unwrap_or_default();
        if names.is_empty() {
            continue;
        }
        let declared = match ecosystem {
            Ecosystem::Ruby => ruby_constraints(&text),
            Ecosystem::Python => python_constraints(&text).map_err(|e| (path.clone(), e))?,
            Ecosystem::Typescript => npm_constraints(&text).map_err(|e| (path.clone(), e))?,
            Ecosystem::Rust => cargo_constraints(&text).map_err(|e| (path.clone(), e))?,
        };
        for (package, section, requirement) in declared {
            let matches = |n: &String| match ecosystem {
                Ecosystem::Python => normalise_python(n) == normalise_python(&package),
                _ => *n == package,
            };
            if let Some(name) = names.iter().find(|n| matches(n)) {
                found.push(Constraint {
                    manifest: rel.clone(),
                    ecosystem,
                    package: name.clone(),
                    section,
                    requirement,
                });
            }
        }
    }
    Ok(found)
}

fn manifest_kind(path: &Path) -> Option<Ecosystem> {
    let name = path.file_name()?.to_str()?;
    match name {
        "Gemfile" => Some(Ecosystem::Ruby),
        "pyproject.toml" => Some(Ecosystem::Python),
        "package.json" => Some(Ecosystem::Typescript),
        "Cargo.toml" => Some(Ecosystem::Rust),
        _ if name.ends_with(".gemspec") => Some(Ecosystem::Ruby),
        _ => None,
    }
}

/// PEP 503: lowercase, runs of `-`, `_`, `.` are one `-`.
fn normalise_python(name: &str) -> String {
    let mut out = String::new();
    for c in name.to_ascii_lowercase().chars() {
        if matches!(c, '-' | '_' | '.') {
            if !out.ends_with('-') {
                out.push('-');
            }
        } else {
            out.push(c);
        }
    }
    out
}

type Declared = Vec<(String, String, String)>;

/// `spec.add_dependency 'name', '~> 0.5', '>= 0.5.2'` and `gem "name", "~> 0.5"`: the string
/// literals after the method name; the first is the gem, the others its requirement.
fn ruby_constraints(text: &str) -> Declared {
    let methods = ["add_runtime_dependency", "add_development_dependency", "add_dependency", "gem"];
    let mut found = Vec::new();
    for line in text.lines() {
        let code = line.split('#').next().unwrap_or("").trim();
        let Some(method) = methods.iter().find(|m| {
            code.strip_prefix(**m).is_some_and(|rest| rest.starts_with([' ', '(']))
                || code.contains(&format!(".{m} "))
                || code.contains(&format!(".{m}("))
        }) else {
            continue;
        };
        let literals = string_literals(&code[code.find(method).expect("found") + method.len()..]);
        if let Some((name, requirements)) = literals.split_first() {
            found.push((name.clone(), method.to_string(), requirements.join(", ")));
        }
    }
    found
}

/// The '...' and "..." literals of a line, stopping at the first keyword argument (`require:`).
fn string_literals(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = code.char_indices().peekable();
    while let Some((_, c)) = chars.next() {
        if c == '\'' || c == '"' {
            let literal: String = chars.by_ref().map(|(_, c)| c).take_while(|&d| d != c).collect();
            out.push(literal);
        } else if c == ':' {
            break;
        }
    }
    out
}

fn python_constraints(text: &str) -> Result<Declared, String> {
    let doc: toml::Table = toml::from_str(text).map_err(|e| format!("not valid TOML: {e}"))?;
    let mut found = Vec::new();
    let mut add = |section: String, list: Option<&toml::Value>| {
        for requirement in list.and_then(|l| l.as_array()).into_iter().flatten().filter_map(|v| v.as_str()) {
            let (name, spec) = split_pep508(requirement);
            found.push((name, section.clone(), spec));
        }
    };
    let project = doc.get("project").and_then(|p| p.as_table());
    add("project.dependencies".into(), project.and_then(|p| p.get("dependencies")));
    for (table, prefix) in [
        (project.and_then(|p| p.get("optional-dependencies")), "project.optional-dependencies"),
        (doc.get("dependency-groups"), "dependency-groups"),
    ] {
        for (group, list) in table.and_then(|t| t.as_table()).into_iter().flatten() {
            add(format!("{prefix}.{group}"), Some(list));
        }
    }
    Ok(found)
}

/// `tasker-py[extra] (>=0.5,<0.6) ; python_version >= "3.10"` -> (`tasker-py`, `>=0.5,<0.6`).
fn split_pep508(requirement: &str) -> (String, String) {
    let without_marker = requirement.split(';').next().unwrap_or("").trim();
    let end = without_marker
        .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
        .unwrap_or(without_marker.len());
    let name = without_marker[..end].to_string();
    let mut rest = without_marker[end..].trim();
    if rest.starts_with('[') {
        rest = rest.find(']').map(|i| rest[i + 1..].trim()).unwrap_or("");
    }
    let spec = rest.trim_start_matches('(').trim_end_matches(')').trim();
    (name, spec.to_string())
}

fn npm_constraints(text: &str) -> Result<Declared, String> {
    let doc: serde_json::Value = serde_json::from_str(text).map_err(|e| format!("not valid JSON: {e}"))?;
    let mut found = Vec::new();
    for section in ["dependencies", "devDependencies", "peerDependencies", "optionalDependencies"] {
        for (name, range) in doc.get(section).and_then(|d| d.as_object()).into_iter().flatten() {
            found.push((name.clone(), section.to_string(), range.as_str().unwrap_or_default().to_string()));
        }
    }
    Ok(found)
}

fn cargo_constraints(text: &str) -> Result<Declared, String> {
    let doc: toml::Table = toml::from_str(text).map_err(|e| format!("not valid TOML: {e}"))?;
    let mut tables: Vec<(String, &toml::Value)> = Vec::new();
    for kind in ["dependencies", "dev-dependencies", "build-dependencies"] {
        if let Some(t) = doc.get(kind) {
            tables.push((kind.to_string(), t));
        }
        for (target, body) in doc.get("target").and_then(|t| t.as_table()).into_iter().flatten() {
            if let Some(t) = body.get(kind) {
                tables.push((format!("target.{target}.{kind}"), t));
            }
        }
    }
    if let Some(t) = doc.get("workspace").and_then(|w| w.get("dependencies")) {
        tables.push(("workspace.dependencies".into(), t));
    }
    let mut found = Vec::new();
    for (section, table) in tables {
        for (key, spec) in table.as_table().into_iter().flatten() {
            let (name, requirement) = match spec {
                toml::Value::String(req) => (key.clone(), req.clone()),
                toml::Value::Table(t) => {
                    let name = t.get("package").and_then(|p| p.as_str()).unwrap_or(key).to_string();
                    let req = t.get("version").and_then(|v| v.as_str()).map(String::from);
                    let other = ["path", "git"].into_iter().find(|k| t.contains_key(*k));
                    match (req, other) {
                        (Some(req), _) => (name, req),
                        (None, Some(kind)) => (name, format!("{kind} dependency")),
                        (None, None) => (name, "*".into()),
                    }
                }
                _ => continue,
            };
            found.push((name, section.clone(), requirement));
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pessimistic_operator_by_hand() {
        let ok = |req: &str, v: &str| gem_requirement_admits(req, v).unwrap();
        assert!(ok("~> 0.5.0", "0.5.0") && ok("~> 0.5.0", "0.5.9"));
        assert!(!ok("~> 0.5.0", "0.6.0") && !ok("~> 0.5.0", "0.4.9"));
        assert!(ok("~> 0.5", "0.9.1") && !ok("~> 0.5", "1.0.0"));
        assert!(ok("~> 3", "3.9") && !ok("~> 3", "4.0"));
        assert!(ok("~> 0.1.4, >= 0.1.6", "0.1.8") && !ok("~> 0.1.4, >= 0.1.6", "0.1.5"));
        assert!(ok("0.1.8", "0.1.8") && !ok("!= 0.1.8", "0.1.8"));
        assert!(ok("", "9.9.9"), "no requirement admits anything");
        assert!(gem_requirement_admits("=> 1.0", "1.0").is_err());
        assert_eq!(pessimistic_bound("0.5.0"), "0.6");
        assert_eq!(pessimistic_bound("1.2.3.rc1"), "1.3");
    }

    #[test]
    fn each_ecosystem_has_its_own_range_semantics() {
        // cargo: a bare version is a caret requirement; 0.x minors are breaking.
        assert!(admits(Ecosystem::Rust, "0.5", "0.5.9").unwrap());
        assert!(!admits(Ecosystem::Rust, "0.5", "0.6.0").unwrap());
        assert!(!admits(Ecosystem::Rust, "^0.5.0", "0.5.1-rc.1").unwrap(), "cargo skips pre-releases");
        // npm: caret, hyphen and `||`; pre-releases only on the same tuple.
        assert!(admits(Ecosystem::Typescript, ">=0.5.0 <0.6.0", "0.5.3").unwrap());
        assert!(!admits(Ecosystem::Typescript, ">=0.5.0 <0.6.0", "0.6.0").unwrap());
        assert!(admits(Ecosystem::Typescript, "^0.1.4 || ^0.2.0", "0.2.7").unwrap());
        assert!(admits(Ecosystem::Typescript, "0.1.0 - 0.1.9", "0.1.8").unwrap());
        assert!(!admits(Ecosystem::Typescript, "^0.1.4", "0.1.9-beta.1").unwrap());
        assert!(admits(Ecosystem::Typescript, "workspace:*", "0.1.0").is_err());
        // PEP 440: ~= is compatible release, == with wildcards.
        assert!(admits(Ecosystem::Python, ">=0.5.0,<0.6.0", "0.5.4").unwrap());
        assert!(!admits(Ecosystem::Python, ">=0.5.0,<0.6.0", "0.6.0").unwrap());
        assert!(admits(Ecosystem::Python, "~=0.1.3", "0.1.8").unwrap());
        assert!(!admits(Ecosystem::Python, "~=0.1.3", "0.2.0").unwrap());
        assert!(admits(Ecosystem::Python, "==0.1.*", "0.1.8").unwrap());
        assert!(admits(Ecosystem::Python, "", "0.1.8").unwrap(), "no specifier admits anything");
    }

    #[test]
    fn requirements_are_read_from_each_manifest_kind() {
        let gemspec = "Gem::Specification.new do |spec|\n  spec.add_dependency 'tasker-rb', '~> 0.1.4', '>= 0.1.6'\n  \
spec.add_development_dependency \"rspec\", \"~> 3.13\"\n  # spec.add_dependency 'old', '1'\nend\n";
        let ruby = ruby_constraints(gemspec);
        assert_eq!(ruby[0], ("tasker-rb".into(), "add_dependency".into(), "~> 0.1.4, >= 0.1.6".into()));
        assert_eq!(ruby.len(), 2);
        assert_eq!(ruby_constraints("gem 'tasker-rb', '~> 0.1', require: false\n")[0].2, "~> 0.1");

        let (name, spec) = split_pep508("Tasker_Py[ffi] (>=0.1.2,<0.2) ; python_version >= '3.10'");
        assert_eq!((normalise_python(&name).as_str(), spec.as_str()), ("tasker-py", ">=0.1.2,<0.2"));

        let cargo = "[dependencies]\ntasker-worker = \"0.1.3\"\nclient = { package = \"tasker-client\", version = \"~0.1\" }\n\
[target.'cfg(unix)'.dependencies]\ntasker-pgmq = { path = \"../pgmq\" }\n";
        let rust = cargo_constraints(cargo).unwrap();
        assert!(rust.contains(&("tasker-worker".into(), "dependencies".into(), "0.1.3".into())));
        assert!(rust.contains(&("tasker-client".into(), "dependencies".into(), "~0.1".into())));
        assert!(rust.contains(&(
            "tasker-pgmq".into(),
            "target.cfg(unix).dependencies".into(),
            "path dependency".into()
        )));
    }
}
