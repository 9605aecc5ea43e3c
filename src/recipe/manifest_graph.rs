//! The crate graph from the manifests themselves, without spawning cargo.
//!
//! `cargo metadata` on a skeleton costs a process and a workspace load per distinct manifest
//! set, which over a long history (`key --range`) is most of a cold run. This module follows
//! cargo's own workspace discovery on the parsed manifests: explicit `members` (with `*`/`?`
//! globs over the dirs that exist), minus `exclude` unless a member entry as written is a
//! prefix of the path (so a member `"."`, as tasker-core has, makes `exclude` exclude nothing),
//! plus the root package, plus every path dependency (of any kind, any platform: cargo makes
//! those members too) inside the root and not excluded, transitively. A package's edges are
//! its normal and build path dependencies, `[target.*]` ones too, with `x.workspace = true`
//! taking the `path` of `[workspace.dependencies].x` (relative to the root).
//!
//! A wrong graph is worse than a slow one: whenever the manifests step outside the shapes
//! handled here (no `[workspace]` in the root, a nested workspace or `package.workspace` on a
//! member's path, `**`/`[..]` globs, a path dependency leaving the repository, a dependency
//! key or source this does not know, duplicate names, a member cargo would reject for having
//! no targets, `cargo-features`, ...), [`parse_graph`] returns `None` and the caller asks
//! cargo. `tests/e2e` compares both on a fixture of many shapes and
//! `scripts/graph-equivalence.sh` on a real history.

use std::collections::{BTreeMap, BTreeSet};

use toml::{Table, Value};

use super::{WorkspaceGraph, WorkspacePackage};

/// Keys a dependency table may have for this parser to be sure of its path (others: cargo).
const PATH_DEP_KEYS: &[&str] =
    &["path", "version", "features", "optional", "default-features", "default_features", "package", "public"];
const INHERITING_KEYS: &[&str] =
    &["workspace", "features", "optional", "default-features", "default_features", "public"];
const DEP_SECTIONS: &[&str] = &["dependencies", "build-dependencies", "build_dependencies"];
const DEV_SECTIONS: &[&str] = &["dev-dependencies", "dev_dependencies"];

/// What the tree offers: manifest path -> text, and every path (file) in the tree.
pub struct Manifests<'a> {
    pub texts: &'a BTreeMap<String, String>,
    pub files: &'a BTreeSet<String>,
}

/// The workspace graph `cargo metadata --no-deps` gives for these manifests, or `None` when
/// this parser is not certain (see the module doc).
pub fn parse_graph(m: &Manifests) -> Option<WorkspaceGraph> {
    let root: Table = m.texts.get("Cargo.toml")?.parse().ok()?;
    if root.contains_key("cargo-features") {
        return None;
    }
    let workspace = root.get("workspace")?.as_table()?;
    let known = ["members", "exclude", "default-members", "dependencies", "package", "lints", "metadata", "resolver"];
    if workspace.keys().any(|k| !known.contains(&k.as_str())) {
        return None;
    }
    let members = strings(workspace.get("members"))?;
    let exclude = strings(workspace.get("exclude"))?;
    let workspace_deps = match workspace.get("dependencies") {
        Some(v) => v.as_table()?.clone(),
        None => Table::new(),
    };
    let dirs = dirs_of(m.files);
    let walk = Walk { m, members: &members, exclude: &exclude, workspace_deps: &workspace_deps };

    let mut pending: Vec<String> = Vec::new();
    for member in &members {
        let expanded = expand_member(member, &dirs)?;
        // A member pattern naming nothing is a cargo error; let cargo say it.
        if expanded.is_empty() {
            return None;
        }
        pending.extend(expanded);
    }
    if root.contains_key("package") {
        pending.push(String::new());
    }
    let mut packages: BTreeMap<String, WorkspacePackage> = BTreeMap::new();
    let mut seen = BTreeSet::new();
    if pending.is_empty() {
        return None;
    }
    // Cargo's find_path_deps (every path here is inside the root: others returned `None`).
    let mut queue: Vec<String> = pending.into_iter().rev().collect();
    while let Some(dir) = queue.pop() {
        if seen.contains(&dir) || walk.is_excluded(&dir) {
            continue;
        }
        seen.insert(dir.clone());
        let (name, package, all_path_deps) = walk.package(&dir, &root)?;
        if packages.insert(name, package).is_some() {
            return None;
        }
        queue.extend(all_path_deps.into_iter().rev());
    }
    Some(WorkspaceGraph { packages })
}

struct Walk<'a> {
    m: &'a Manifests<'a>,
    members: &'a [String],
    exclude: &'a [String],
    workspace_deps: &'a Table,
}

impl Walk<'_> {
    /// Cargo's `is_excluded`: under an `exclude` entry and not under a `members` entry as
    /// written (a glob entry is compared literally, as cargo does).
    fn is_excluded(&self, dir: &str) -> bool {
        let under = |entry: &String| normalise("", entry).is_some_and(|e| is_under(dir, &e));
        self.exclude.iter().any(under) && !self.members.iter().any(under)
    }

    /// A member's name, its graph node, and every path dependency dir (dev ones too, which
    /// make members but not edges). `None`: not certain.
    fn package(&self, dir: &str, root: &Table) -> Option<(String, WorkspacePackage, Vec<String>)> {
        let path = manifest_path(dir);
        let parsed;
        let table = if dir.is_empty() {
            root
        } else {
            parsed = self.m.texts.get(&path)?.parse::<Table>().ok()?;
            &parsed
        };
        if table.contains_key("cargo-features") || (!dir.is_empty() && table.contains_key("workspace")) {
            return None;
        }
        self.check_ancestors(dir)?;
        let package = table.get("package")?.as_table()?;
        if package.contains_key("workspace") {
            return None;
        }
        let name = package.get("name")?.as_str()?.to_string();
        // Cargo refuses a package without targets; a declared target with a path is one.
        let declared = |key: &str| match table.get(key) {
            Some(Value::Table(t)) => t.contains_key("path"),
            Some(Value::Array(a)) => a.iter().any(|t| t.get("path").is_some()),
            _ => false,
        };
        let has_target = declared("lib")
            || declared("bin")
            || ["src/lib.rs", "src/main.rs"].iter().any(|f| self.m.files.contains(&join(dir, f)));
        if !has_target {
            return None;
        }
        let mut edges = BTreeSet::new();
        let mut all = Vec::new();
        for (section, builds) in sections(table)? {
            for (key, spec) in section {
                if let Some(dep) = self.dep_path(dir, key, spec)? {
                    if builds {
                        edges.insert(dep.clone());
                    }
                    all.push(dep);
                }
            }
        }
        Some((name, WorkspacePackage { dir: dir.to_string(), path_deps: edges.into_iter().collect() }, all))
    }

    /// Every manifest between a member and the root parses and is no workspace of its own
    /// (cargo's find_root would stop there).
    fn check_ancestors(&self, dir: &str) -> Option<()> {
        let mut current = dir;
        while let Some((parent, _)) = current.rsplit_once('/') {
            if let Some(text) = self.m.texts.get(&manifest_path(parent)) {
                let table: Table = text.parse().ok()?;
                if table.contains_key("workspace") {
                    return None;
                }
            }
            current = parent;
        }
        Some(())
    }

    /// The repository-relative dir of a dependency's `path`; `Some(None)` for no path.
    fn dep_path(&self, dir: &str, key: &str, spec: &Value) -> Option<Option<String>> {
        let Some(spec) = spec.as_table() else {
            return spec.is_str().then_some(None);
        };
        if spec.get("workspace").is_some() {
            if !spec.get("workspace")?.as_bool()? || spec.keys().any(|k| !INHERITING_KEYS.contains(&k.as_str())) {
                return None;
            }
            return match self.workspace_deps.get(key)? {
                Value::String(_) => Some(None),
                Value::Table(inherited) => path_of("", inherited),
                _ => None,
            };
        }
        path_of(dir, spec)
    }
}

/// A dependency table's path relative to `base` (a dir of the repository).
fn path_of(base: &str, spec: &Table) -> Option<Option<String>> {
    let Some(path) = spec.get("path") else {
        // git, registry, version-only: no path, and nothing else cargo-metadata-wise.
        return Some(None);
    };
    if spec.keys().any(|k| !PATH_DEP_KEYS.contains(&k.as_str())) {
        return None;
    }
    normalise(base, path.as_str()?).map(Some)
}

/// The dependency tables of a manifest, each with whether it feeds a build (not dev).
fn sections(table: &Table) -> Option<Vec<(&Table, bool)>> {
    let mut holders = vec![table];
    if let Some(targets) = table.get("target") {
        for platform in targets.as_table()?.values() {
            holders.push(platform.as_table()?);
        }
    }
    let mut out = Vec::new();
    for holder in holders {
        for (names, builds) in [(DEP_SECTIONS, true), (DEV_SECTIONS, false)] {
            for name in names {
                if let Some(section) = holder.get(*name) {
                    out.push((section.as_table()?, builds));
                }
            }
        }
    }
    Some(out)
}

/// A member entry's dirs: itself, or a glob's matches among the tree's dirs. `None`: a
/// pattern this does not handle, or a path leaving the repository.
fn expand_member(member: &str, dirs: &BTreeSet<String>) -> Option<Vec<String>> {
    if member.contains(['[', ']', '{', '}', '\\']) || member.contains("**") {
        return None;
    }
    if !member.contains(['*', '?']) {
        return Some(vec![normalise("", member)?]);
    }
    if member.split('/').any(|c| c == "..") {
        return None;
    }
    let pattern: Vec<&str> = member.split('/').filter(|c| !c.is_empty() && *c != ".").collect();
    Some(
        dirs.iter()
            .filter(|d| {
                let parts: Vec<&str> = if d.is_empty() { Vec::new() } else { d.split('/').collect() };
                parts.len() == pattern.len() && parts.iter().zip(&pattern).all(|(p, g)| wildcard(g, p))
            })
            .cloned()
            .collect(),
    )
}

/// `*` and `?` within one path component (glob's default: a leading dot matches too).
fn wildcard(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// `base/relative` with `.` and `..` resolved lexically (cargo's normalize_path); `None`
/// when it is absolute or leaves the repository.
fn normalise(base: &str, relative: &str) -> Option<String> {
    if relative.starts_with('/') {
        return None;
    }
    let mut parts: Vec<&str> = base.split('/').filter(|c| !c.is_empty()).collect();
    for component in relative.split('/') {
        match component {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            c => parts.push(c),
        }
    }
    Some(parts.join("/"))
}

fn strings(value: Option<&Value>) -> Option<Vec<String>> {
    match value {
        None => Some(Vec::new()),
        Some(v) => v.as_array()?.iter().map(|s| s.as_str().map(str::to_string)).collect(),
    }
}

/// Every dir holding a file, with its ancestors (`""` is the root).
fn dirs_of(files: &BTreeSet<String>) -> BTreeSet<String> {
    let mut dirs = BTreeSet::from([String::new()]);
    for file in files {
        let mut current = file.as_str();
        while let Some((parent, _)) = current.rsplit_once('/') {
            if !dirs.insert(parent.to_string()) {
                break;
            }
            current = parent;
        }
    }
    dirs
}

fn is_under(dir: &str, ancestor: &str) -> bool {
    ancestor.is_empty() || dir == ancestor || dir.strip_prefix(ancestor).is_some_and(|rest| rest.starts_with('/'))
}

fn join(dir: &str, file: &str) -> String {
    if dir.is_empty() { file.to_string() } else { format!("{dir}/{file}") }
}

fn manifest_path(dir: &str) -> String {
    join(dir, "Cargo.toml")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph(files: &[(&str, &str)]) -> Option<WorkspaceGraph> {
        let texts: BTreeMap<String, String> = files
            .iter()
            .filter(|(p, _)| p.ends_with("Cargo.toml"))
            .map(|(p, t)| (p.to_string(), t.to_string()))
            .collect();
        let paths: BTreeSet<String> = files.iter().map(|(p, _)| p.to_string()).collect();
        parse_graph(&Manifests { texts: &texts, files: &paths })
    }

    const A: &str = "[package]\nname = \"a\"\n[dependencies]\nb = { path = \"../b\" }\n[dev-dependencies]\nt = { path = \"../t\" }\n";

    #[test]
    fn globs_excludes_and_implicit_members() {
        let g = graph(&[
            ("Cargo.toml", "[workspace]\nmembers = [\"crates/*\"]\nexclude = [\"crates/x\"]\n"),
            ("crates/a/Cargo.toml", A),
            ("crates/a/src/lib.rs", ""),
            ("crates/b/Cargo.toml", "[package]\nname = \"b\"\n"),
            ("crates/b/src/lib.rs", ""),
            ("crates/t/Cargo.toml", "[package]\nname = \"t\"\n"),
            ("crates/t/src/lib.rs", ""),
            ("crates/x/Cargo.toml", "[package]\nname = \"x\"\n"),
            ("crates/x/src/lib.rs", ""),
        ])
        .unwrap();
        assert_eq!(g.packages.keys().collect::<Vec<_>>(), ["a", "b", "t"]);
        assert_eq!(g.packages["a"].path_deps, ["crates/b"], "a dev-dependency is no edge");
    }

    #[test]
    fn unsure_shapes_fall_back() {
        let lib = ("crates/a/src/lib.rs", "");
        let member = ("crates/a/Cargo.toml", "[package]\nname = \"a\"\n");
        let ws = "[workspace]\nmembers = [\"crates/a\"]\n";
        assert!(graph(&[("Cargo.toml", ws), member, lib]).is_some());
        assert!(graph(&[("Cargo.toml", "[package]\nname = \"r\"\n"), member, lib]).is_none(), "no [workspace]");
        assert!(graph(&[("Cargo.toml", "[workspace]\nmembers = [\"crates/**\"]\n"), member, lib]).is_none());
        assert!(graph(&[("Cargo.toml", ws), member]).is_none(), "no targets: cargo rejects it");
        let nested = ("crates/Cargo.toml", "[workspace]\n");
        assert!(graph(&[("Cargo.toml", ws), member, lib, nested]).is_none(), "a nested workspace");
        let pointer = ("crates/a/Cargo.toml", "[package]\nname = \"a\"\nworkspace = \"../..\"\n");
        assert!(graph(&[("Cargo.toml", ws), pointer, lib]).is_none());
        let outside =
            ("crates/a/Cargo.toml", "[package]\nname = \"a\"\n[dependencies]\no = { path = \"../../../o\" }\n");
        assert!(graph(&[("Cargo.toml", ws), outside, lib]).is_none(), "a path leaving the repository");
        let git =
            ("crates/a/Cargo.toml", "[package]\nname = \"a\"\n[dependencies]\no = { path = \"o\", git = \"x\" }\n");
        assert!(graph(&[("Cargo.toml", ws), git, lib]).is_none());
    }

    #[test]
    fn wildcards_and_paths() {
        assert!(wildcard("tasker-*", "tasker-ctl") && wildcard("*", ".hidden") && wildcard("a?c", "abc"));
        assert!(!wildcard("tasker-*", "other") && !wildcard("a?c", "ac"));
        assert_eq!(normalise("crates/a", "../../").as_deref(), Some(""));
        assert_eq!(normalise("crates/a", "./../b/").as_deref(), Some("crates/b"));
        assert_eq!(normalise("crates", "../.."), None);
        assert!(is_under("vendor/x/y", "vendor/x") && !is_under("vendor/xy", "vendor/x") && is_under("a", ""));
    }
}

/// The parser against real `cargo metadata` on a fixture of many manifest shapes.
#[cfg(test)]
mod cargo_equivalence {
    use crate::recipe::Skeleton;
    use crate::source::Tree;

    const FIXTURE: &[(&str, &str)] = &[
        (
            "Cargo.toml",
            r#"[package]
name = "root"
version = "0.1.0"
edition = "2021"

[workspace]
members = ["crates/*", "tools/explicit", "./nested/deep/one/"]
exclude = ["crates/skipped", "vendor"]

[workspace.dependencies]
shared = { path = "crates/shared", version = "0.1" }
renamed-inherited = { path = "crates/util", package = "util" }
serde = "1"

[patch.crates-io]
patched = { path = "vendor/patched" }

[dependencies]
app = { path = "crates/app" }
"#,
        ),
        ("src/lib.rs", ""),
        (
            "crates/app/Cargo.toml",
            r#"[package]
name = "app"
version = "0.1.0"
edition = "2021"

[dependencies]
shared = { workspace = true, features = ["x"] }
renamed-inherited = { workspace = true, optional = true }
short = { package = "util", path = "../util" }
serde = { workspace = true }
vendored = { path = "../../vendor/vendored", version = "1" }

[dependencies.table-form]
path = "../table"
default-features = false

[target.'cfg(unix)'.dependencies]
unix-only = { path = "../../platform/unix" }

[target.x86_64-pc-windows-msvc.build-dependencies]
win-build = { path = "../../platform/win" }

[build-dependencies]
gen = { path = "../../tools/gen" }

[dev-dependencies]
testkit = { path = "../../tools/testkit" }
shared = { path = "../shared" }
"#,
        ),
        ("crates/app/src/main.rs", ""),
        ("crates/app/build.rs", ""),
        ("crates/shared/Cargo.toml", "[package]\nname = \"shared\"\nversion = \"0.1.0\"\n[features]\nx = []\n"),
        ("crates/shared/src/lib.rs", ""),
        ("crates/util/Cargo.toml", "[package]\nname = \"util\"\nversion = \"0.1.0\"\n"),
        ("crates/util/src/lib.rs", ""),
        ("crates/table/Cargo.toml", "[package]\nname = \"table-form\"\nversion = \"0.1.0\"\n"),
        ("crates/table/src/lib.rs", ""),
        ("crates/skipped/Cargo.toml", "[package]\nname = \"skipped\"\nversion = \"0.1.0\"\n"),
        ("crates/skipped/src/lib.rs", ""),
        ("crates/.hidden/Cargo.toml", "[package]\nname = \"hidden\"\nversion = \"0.1.0\"\n"),
        ("crates/.hidden/src/lib.rs", ""),
        ("platform/unix/Cargo.toml", "[package]\nname = \"unix-only\"\nversion = \"0.1.0\"\n"),
        ("platform/unix/src/lib.rs", ""),
        ("platform/win/Cargo.toml", "[package]\nname = \"win-build\"\nversion = \"0.1.0\"\n"),
        ("platform/win/src/lib.rs", ""),
        (
            "tools/gen/Cargo.toml",
            "[package]\nname = \"gen\"\nversion = \"0.1.0\"\n[dependencies]\nutil = { path = \"../../crates/util\" }\n",
        ),
        ("tools/gen/src/main.rs", ""),
        ("tools/testkit/Cargo.toml", "[package]\nname = \"testkit\"\nversion = \"0.1.0\"\n"),
        ("tools/testkit/src/lib.rs", ""),
        (
            "tools/explicit/Cargo.toml",
            "[package]\nname = \"explicit\"\nversion = \"0.1.0\"\n[lib]\npath = \"lib.rs\"\n",
        ),
        ("tools/explicit/lib.rs", ""),
        ("nested/deep/one/Cargo.toml", "[package]\nname = \"one\"\nversion = \"0.1.0\"\n"),
        ("nested/deep/one/src/main.rs", ""),
        ("vendor/vendored/Cargo.toml", "[package]\nname = \"vendored\"\nversion = \"1.0.0\"\n"),
        ("vendor/vendored/src/lib.rs", ""),
        ("vendor/patched/Cargo.toml", "[package]\nname = \"patched\"\nversion = \"1.0.0\"\n[workspace]\n"),
        ("vendor/patched/src/lib.rs", ""),
        ("unrelated/Cargo.toml", "[package]\nname = \"unrelated\"\nversion = \"0.1.0\"\n"),
        ("unrelated/src/lib.rs", ""),
    ];

    fn tree(files: &[(&str, &str)]) -> (tempfile::TempDir, Tree) {
        let dir = tempfile::tempdir().unwrap();
        for (path, text) in files {
            let full = dir.path().join(path);
            std::fs::create_dir_all(full.parent().unwrap()).unwrap();
            std::fs::write(full, text).unwrap();
        }
        let tree = Tree::from_dir(dir.path().to_path_buf()).unwrap();
        (dir, tree)
    }

    #[test]
    fn parser_graph_equals_cargo_metadata_graph() {
        let (_dir, tree) = tree(FIXTURE);
        let skeleton = Skeleton::of(&tree).unwrap();
        let parsed = skeleton.parsed(&tree).unwrap().expect("every shape of the fixture is one the parser knows");
        let cargo = skeleton.cargo_metadata(&tree).unwrap();
        assert_eq!(parsed, cargo);
        // The fixture means what it says: members by glob, implicit, excluded; dev edges out.
        let names: Vec<&String> = cargo.packages.keys().collect();
        assert_eq!(
            names,
            [
                "app",
                "explicit",
                "gen",
                "hidden",
                "one",
                "root",
                "shared",
                "table-form",
                "testkit",
                "unix-only",
                "util",
                "win-build"
            ]
        );
        assert_eq!(
            cargo.packages["app"].path_deps,
            [
                "crates/shared",
                "crates/table",
                "crates/util",
                "platform/unix",
                "platform/win",
                "tools/gen",
                "vendor/vendored"
            ]
        );
    }

    #[test]
    fn unsure_shapes_fall_back_to_cargo_with_the_same_answer() {
        let mut files: Vec<(&str, &str)> = FIXTURE.to_vec();
        // A nested workspace between a member and the root: cargo decides.
        files.push(("nested/Cargo.toml", "[workspace]\nmembers = []\n"));
        let (_dir, tree) = tree(&files);
        let skeleton = Skeleton::of(&tree).unwrap();
        assert_eq!(skeleton.parsed(&tree).unwrap(), None);
        let mut memo = crate::cache::BlobDigestMemo::in_memory();
        let via_fallback = crate::recipe::workspace_graph(&tree, &mut memo, None);
        assert_eq!(via_fallback.map_err(|e| e.to_string()), skeleton.cargo_metadata(&tree).map_err(|e| e.to_string()));
    }
}
