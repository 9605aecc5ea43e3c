//! Per-target slices of the two workspace-wide files, so that a dependency bump outside a
//! target's build does not change its key.
//!
//! - `Cargo.lock` enters a key as the lock entries of the target's resolved closure: from the
//!   workspace members its command builds, the lock's own dependency edges (which cargo
//!   resolves with every feature and every platform, so they are a superset of what any one
//!   build uses), except that a member's edges are cut to its normal and build dependencies
//!   (dev-dependencies are not built). The lock's other top-level fields (`version`,
//!   `metadata`, `patch`) enter whole.
//! - The root `Cargo.toml` of a virtual workspace enters as its parsed content with
//!   `[workspace.dependencies]` cut to the entries the closure's members inherit, and, when
//!   every cargo command names its packages (`-p`), without `members`/`exclude` (which then
//!   cannot change what is built). Profiles, `[patch]`, `[replace]`, `workspace.package`,
//!   `workspace.lints`, `resolver` and anything unknown stay.
//!
//! A slice that cannot be made with certainty (an unparsable file, a lock edge that names no
//! entry, a root manifest that is a package) is `None`: the whole file enters the key. A
//! wrong slice is worse than no slice.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use toml::{Table, Value};

use super::{Target, WorkspaceGraph};
use crate::source::{Entry, SourceError, Tree};

/// Bumped with the key version when the slice encoding changes (it is part of the bytes).
const SLICE_FORMAT: &str = "tbuild-slice-v1";

/// What a member's manifest says it builds with (not dev-dependencies).
#[derive(Debug, Clone, Default)]
pub struct MemberDeps {
    /// Package names of its normal and build dependencies, every platform.
    pub packages: BTreeSet<String>,
    /// Keys it inherits from `[workspace.dependencies]` (`x.workspace = true`).
    pub inherited: BTreeSet<String>,
}

/// A slice's bytes, or `None` when the whole file enters the key.
type Slice = Option<Arc<Vec<u8>>>;

/// What slicing learned during one run, reused across the trees (commits) it keys: files are
/// named by their git blob ids, which name their content, so a hit is the same answer. Over a
/// `key --range` most commits share their lock and manifests with their parent, and parsing,
/// slicing and re-serialising a 700-entry lock per target per commit was most of a warm run.
/// Trees on disk (no blob ids) compute everything. Owned by the caller, never global.
#[derive(Default)]
pub struct SliceMemo {
    /// The last lock parsed, by blob id.
    last_lock: Option<(git2::Oid, Option<Arc<ParsedLock>>)>,
    /// (lock blob, members and what they build with) -> the lock slice.
    lock_slices: HashMap<(git2::Oid, String), Slice>,
    /// (root manifest blob, inherited keys, packages named) -> the root manifest slice.
    root_slices: HashMap<(git2::Oid, String, bool), Slice>,
    /// Root manifest blob -> its `[workspace.dependencies]`.
    workspace_deps: HashMap<git2::Oid, Arc<Table>>,
    /// (member manifest blob, root manifest blob) -> what the member builds with.
    member_deps: HashMap<(git2::Oid, git2::Oid), Option<MemberDeps>>,
}

/// The workspace-wide files of one tree, parsed once for all its targets.
pub struct WorkspaceFiles {
    /// The root manifest, if it is a file, with its blob id when it comes from git.
    root: Option<String>,
    root_id: Option<git2::Oid>,
    workspace_deps: Arc<Table>,
    /// `Cargo.lock`'s blob id when it comes from git; the lock is parsed only on a memo miss.
    lock_id: Option<git2::Oid>,
    /// Member manifest path -> what it builds with (`None`: absent or unparsable).
    members: BTreeMap<String, Option<MemberDeps>>,
}

fn blob_id(tree: &Tree, path: &str) -> Option<git2::Oid> {
    match tree.entries().get(path) {
        Some(Entry::File { blob, .. }) => *blob,
        _ => None,
    }
}

fn text(tree: &Tree, path: &str) -> Result<Option<String>, SourceError> {
    Ok(match tree.entries().get(path) {
        Some(Entry::File { .. }) => Some(String::from_utf8_lossy(&tree.read(path)?).into_owned()),
        _ => None,
    })
}

impl WorkspaceFiles {
    pub fn read(tree: &Tree, memo: &mut SliceMemo) -> Result<WorkspaceFiles, SourceError> {
        let root = text(tree, "Cargo.toml")?;
        let root_id = blob_id(tree, "Cargo.toml");
        let parse_deps = || Arc::new(root.as_deref().map(workspace_deps).unwrap_or_default());
        let workspace_deps = match root_id {
            Some(id) => memo.workspace_deps.entry(id).or_insert_with(parse_deps).clone(),
            None => parse_deps(),
        };
        Ok(WorkspaceFiles {
            root,
            root_id,
            workspace_deps,
            lock_id: blob_id(tree, "Cargo.lock"),
            members: BTreeMap::new(),
        })
    }

    /// The bytes that stand for `Cargo.lock` and the root `Cargo.toml` in `target`'s key
    /// (see the module doc), by path; a path missing here enters whole. Only for targets
    /// that name packages: their build is cargo's, and the graph says what it reads.
    pub fn target_slices(
        &mut self,
        tree: &Tree,
        graph: &WorkspaceGraph,
        target: &Target,
        memo: &mut SliceMemo,
    ) -> Result<BTreeMap<String, Vec<u8>>, SourceError> {
        let mut slices = BTreeMap::new();
        let Some(root) = &self.root else { return Ok(slices) };
        if target.packages.is_empty() {
            return Ok(slices);
        }
        let (named, packages_named) = command_packages(&target.commands);
        let roots: Vec<String> =
            target.packages.iter().chain(named.iter().filter(|p| graph.packages.contains_key(*p))).cloned().collect();
        let Ok(dirs) = graph.closure(&target.name, &roots) else { return Ok(slices) };
        let mut members = BTreeMap::new();
        for (name, package) in graph.packages.iter().filter(|(_, p)| dirs.contains(&p.dir)) {
            let manifest =
                if package.dir.is_empty() { "Cargo.toml".to_string() } else { format!("{}/Cargo.toml", package.dir) };
            if !self.members.contains_key(&manifest) {
                let deps = self.member_deps(tree, &manifest, memo)?;
                self.members.insert(manifest.clone(), deps);
            }
            let Some(deps) = &self.members[&manifest] else { return Ok(slices) };
            members.insert(name.clone(), deps.clone());
        }
        let inherited: BTreeSet<String> = members.values().flat_map(|m| m.inherited.iter().cloned()).collect();
        let root_slice = || root_manifest_slice(root, &inherited, packages_named).map(Arc::new);
        let root_slice = match self.root_id {
            Some(id) => {
                let names = inherited.iter().map(String::as_str).collect::<Vec<_>>().join("\n");
                memo.root_slices.entry((id, names, packages_named)).or_insert_with(root_slice).clone()
            }
            None => root_slice(),
        };
        if let Some(slice) = root_slice {
            slices.insert("Cargo.toml".to_string(), slice.to_vec());
        }
        if let Some(slice) = self.lock_slice(tree, &members, memo)? {
            slices.insert("Cargo.lock".to_string(), slice.to_vec());
        }
        Ok(slices)
    }

    fn member_deps(
        &self,
        tree: &Tree,
        manifest: &str,
        memo: &mut SliceMemo,
    ) -> Result<Option<MemberDeps>, SourceError> {
        let parse = |text: Option<String>| text.and_then(|t| member_deps(&t, &self.workspace_deps));
        match (blob_id(tree, manifest), self.root_id) {
            (Some(id), Some(root_id)) => {
                if let Some(known) = memo.member_deps.get(&(id, root_id)) {
                    return Ok(known.clone());
                }
                let deps = parse(text(tree, manifest)?);
                memo.member_deps.insert((id, root_id), deps.clone());
                Ok(deps)
            }
            _ => Ok(parse(text(tree, manifest)?)),
        }
    }

    /// The lock slice of `members`, from the memo when this lock and these members were
    /// sliced before; `None`: no lock, or one that cannot be sliced.
    fn lock_slice(
        &self,
        tree: &Tree,
        members: &BTreeMap<String, MemberDeps>,
        memo: &mut SliceMemo,
    ) -> Result<Option<Arc<Vec<u8>>>, SourceError> {
        let Some(id) = self.lock_id else {
            let lock = text(tree, "Cargo.lock")?;
            return Ok(lock.as_deref().and_then(|l| lock_slice(l, members)).map(Arc::new));
        };
        let mut members_key = String::new();
        for (name, deps) in members {
            members_key.push_str(name);
            for package in &deps.packages {
                members_key.push(' ');
                members_key.push_str(package);
            }
            members_key.push('\n');
        }
        if let Some(known) = memo.lock_slices.get(&(id, members_key.clone())) {
            return Ok(known.clone());
        }
        let parsed = match &memo.last_lock {
            Some((known, parsed)) if *known == id => parsed.clone(),
            _ => {
                let parsed = text(tree, "Cargo.lock")?.as_deref().and_then(ParsedLock::parse).map(Arc::new);
                memo.last_lock = Some((id, parsed.clone()));
                parsed
            }
        };
        let slice = parsed.and_then(|lock| lock.slice(members)).map(Arc::new);
        memo.lock_slices.insert((id, members_key), slice.clone());
        Ok(slice)
    }
}

/// The manifests a target's build reads besides its closure's: those of every package its
/// cargo commands select (with theirs), since their features unify with the target's.
pub fn command_manifests(graph: &WorkspaceGraph, target: &Target) -> BTreeSet<String> {
    let (named, _) = command_packages(&target.commands);
    let known: Vec<String> = named.into_iter().filter(|p| graph.packages.contains_key(p)).collect();
    let dirs = graph.closure(&target.name, &known).unwrap_or_default();
    dirs.into_iter().map(|dir| if dir.is_empty() { "Cargo.toml".into() } else { format!("{dir}/Cargo.toml") }).collect()
}

/// The non-dev dependencies named by a member's manifest; `None` if it does not parse.
pub fn member_deps(manifest: &str, workspace_deps: &Table) -> Option<MemberDeps> {
    let table: Table = manifest.parse().ok()?;
    let mut deps = MemberDeps::default();
    let mut sections: Vec<&Table> = Vec::new();
    for name in ["dependencies", "build-dependencies", "build_dependencies"] {
        sections.extend(table.get(name).and_then(Value::as_table));
    }
    if let Some(targets) = table.get("target").and_then(Value::as_table) {
        for platform in targets.values().filter_map(Value::as_table) {
            for name in ["dependencies", "build-dependencies", "build_dependencies"] {
                sections.extend(platform.get(name).and_then(Value::as_table));
            }
        }
    }
    for section in sections {
        for (key, spec) in section {
            let inherited = spec.get("workspace").and_then(Value::as_bool) == Some(true);
            let renamed = |spec: &Value| spec.get("package").and_then(Value::as_str).map(str::to_string);
            let package = if inherited {
                deps.inherited.insert(key.clone());
                workspace_deps.get(key).and_then(renamed)
            } else {
                renamed(spec)
            };
            deps.packages.insert(package.unwrap_or_else(|| key.clone()));
        }
    }
    Some(deps)
}

/// `[workspace.dependencies]` of a root manifest (empty if none or unparsable).
pub fn workspace_deps(root_manifest: &str) -> Table {
    root_manifest
        .parse::<Table>()
        .ok()
        .and_then(|t| t.get("workspace")?.get("dependencies")?.as_table().cloned())
        .unwrap_or_default()
}

#[derive(Debug)]
struct LockEntry {
    name: String,
    version: String,
    source: Option<String>,
    /// The entry as written, for a member's slice (its edges are cut).
    value: Value,
    /// The entry's canonical text, for everything else.
    canonical: String,
    deps: Vec<String>,
}

/// A `Cargo.lock`, parsed once per tree and sliced per target.
#[derive(Debug)]
pub struct ParsedLock {
    /// `version`, `metadata` (checksums of format 1 locks), `patch`: canonical, whole.
    other: String,
    entries: Vec<LockEntry>,
    by_name: BTreeMap<String, Vec<usize>>,
}

impl ParsedLock {
    /// `None` when the lock does not parse as cargo writes it.
    pub fn parse(lock: &str) -> Option<ParsedLock> {
        let mut table: Table = lock.parse().ok()?;
        let packages = match table.remove("package") {
            Some(Value::Array(packages)) => packages,
            None => Vec::new(),
            Some(_) => return None,
        };
        let mut entries = Vec::with_capacity(packages.len());
        for value in packages {
            let field = |name: &str| value.get(name).and_then(Value::as_str).map(str::to_string);
            let deps = match value.get("dependencies") {
                Some(Value::Array(deps)) => {
                    deps.iter().map(|d| d.as_str().map(str::to_string)).collect::<Option<_>>()?
                }
                None => Vec::new(),
                Some(_) => return None,
            };
            let canonical = canonical_entry(value.clone())?;
            entries.push(LockEntry {
                name: field("name")?,
                version: field("version")?,
                source: field("source"),
                value,
                canonical,
                deps,
            });
        }
        let mut by_name: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for (i, entry) in entries.iter().enumerate() {
            by_name.entry(entry.name.clone()).or_default().push(i);
        }
        Some(ParsedLock { other: toml::to_string(&table).ok()?, entries, by_name })
    }

    /// An edge is `name`, `name version` or `name version (source)`; `None` unless exactly
    /// one entry matches.
    fn resolve(&self, edge: &str) -> Option<usize> {
        let mut parts = edge.splitn(3, ' ');
        let name = parts.next()?;
        let version = parts.next();
        let source = parts.next().map(|s| s.trim_start_matches('(').trim_end_matches(')'));
        let candidates: Vec<usize> = self
            .by_name
            .get(name)?
            .iter()
            .copied()
            .filter(|&i| version.is_none_or(|v| self.entries[i].version == v))
            .filter(|&i| source.is_none_or(|s| self.entries[i].source.as_deref() == Some(s)))
            .collect();
        (candidates.len() == 1).then(|| candidates[0])
    }

    /// The entries reachable from `members` (workspace member name -> what it builds with),
    /// as canonical bytes; `None` when the slice cannot be made with certainty.
    pub fn slice(&self, members: &BTreeMap<String, MemberDeps>) -> Option<Vec<u8>> {
        let entries = &self.entries;
        let mut reached = BTreeSet::new();
        // A member's entry enters with the edges followed, so a dev-dependency edge changes nothing.
        let mut member_edges: BTreeMap<usize, Vec<Value>> = BTreeMap::new();
        let mut pending = Vec::new();
        for name in members.keys() {
            let local: Vec<usize> = self
                .by_name
                .get(name.as_str())
                .into_iter()
                .flatten()
                .copied()
                .filter(|&i| entries[i].source.is_none())
                .collect();
            // A member without a lock entry (a lock older than the member): no certainty.
            if local.len() != 1 {
                return None;
            }
            pending.push(local[0]);
        }
        while let Some(i) = pending.pop() {
            if !reached.insert(i) {
                continue;
            }
            let entry = &entries[i];
            let member = entry.source.is_none().then(|| members.get(&entry.name)).flatten();
            for edge in &entry.deps {
                let name = edge.split(' ').next().unwrap_or(edge);
                if let Some(member) = member {
                    if !member.packages.contains(name) {
                        continue;
                    }
                    member_edges.entry(i).or_default().push(Value::String(edge.clone()));
                }
                pending.push(self.resolve(edge)?);
            }
        }

        let mut out = format!("{SLICE_FORMAT} Cargo.lock\n").into_bytes();
        out.extend(self.other.as_bytes());
        for i in reached {
            out.extend(b"\n");
            let is_member = entries[i].source.is_none() && members.contains_key(&entries[i].name);
            if is_member {
                let mut value = entries[i].value.clone();
                if let Some(table) = value.as_table_mut() {
                    table.remove("dependencies");
                    if let Some(edges) = member_edges.remove(&i) {
                        table.insert("dependencies".into(), Value::Array(edges));
                    }
                }
                out.extend(canonical_entry(value)?.into_bytes());
            } else {
                out.extend(entries[i].canonical.as_bytes());
            }
        }
        Some(out)
    }
}

fn canonical_entry(value: Value) -> Option<String> {
    let mut one = Table::new();
    one.insert("package".into(), Value::Array(vec![value]));
    toml::to_string(&one).ok()
}

/// [`ParsedLock::slice`] of a lock's text.
pub fn lock_slice(lock: &str, members: &BTreeMap<String, MemberDeps>) -> Option<Vec<u8>> {
    ParsedLock::parse(lock)?.slice(members)
}

/// The parts of a virtual workspace's root manifest that can change a build of the closure
/// whose members inherit `inherited`, as canonical bytes; `None` when the root is a package
/// or does not parse (the whole file enters the key).
pub fn root_manifest_slice(root: &str, inherited: &BTreeSet<String>, packages_named: bool) -> Option<Vec<u8>> {
    let mut table: Table = root.parse().ok()?;
    if table.contains_key("package") {
        return None;
    }
    if let Some(Value::Table(workspace)) = table.get_mut("workspace") {
        if let Some(Value::Table(deps)) = workspace.get_mut("dependencies") {
            deps.retain(|key, _| inherited.contains(key));
        }
        if packages_named {
            workspace.remove("members");
            workspace.remove("exclude");
        }
    }
    let mut out = format!("{SLICE_FORMAT} Cargo.toml\n").into_bytes();
    out.extend(toml::to_string(&table).ok()?.into_bytes());
    Some(out)
}

/// The packages a target's cargo commands select with `-p`/`--package`, and whether every
/// cargo command names its packages that way (no `--workspace`/`--all`, no bare build).
pub fn command_packages(commands: &[String]) -> (BTreeSet<String>, bool) {
    let mut packages = BTreeSet::new();
    let mut all_named = true;
    let mut saw_cargo = false;
    for command in commands {
        let words: Vec<&str> = command.split_whitespace().collect();
        let Some(start) = words.iter().position(|w| *w == "cargo") else { continue };
        saw_cargo = true;
        let mut named = false;
        let mut words = words[start + 1..].iter();
        while let Some(word) = words.next() {
            match *word {
                "-p" | "--package" => {
                    packages.extend(words.next().map(|s| s.to_string()));
                    named = true;
                }
                "--workspace" | "--all" => all_named = false,
                w if w.starts_with("--package=") => {
                    packages.insert(w["--package=".len()..].to_string());
                    named = true;
                }
                w if w.starts_with("-p") && w.len() > 2 => {
                    packages.insert(w[2..].to_string());
                    named = true;
                }
                _ => {}
            }
        }
        all_named &= named;
    }
    (packages, all_named && saw_cargo)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCK: &str = r#"
version = 4

[[package]]
name = "app"
version = "0.1.0"
dependencies = ["lib", "devonly", "serde 1.0.1"]

[[package]]
name = "lib"
version = "0.1.0"
dependencies = ["cc", "serde 1.0.2 (registry+https://github.com/rust-lang/crates.io-index)"]

[[package]]
name = "other"
version = "0.1.0"
dependencies = ["unrelated"]

[[package]]
name = "cc"
version = "1.0.0"
source = "registry+https://github.com/rust-lang/crates.io-index"

[[package]]
name = "devonly"
version = "1.0.0"
source = "registry+https://github.com/rust-lang/crates.io-index"

[[package]]
name = "serde"
version = "1.0.1"
source = "registry+https://github.com/rust-lang/crates.io-index"

[[package]]
name = "serde"
version = "1.0.2"
source = "registry+https://github.com/rust-lang/crates.io-index"

[[package]]
name = "unrelated"
version = "1.0.0"
source = "registry+https://github.com/rust-lang/crates.io-index"
"#;

    fn members() -> BTreeMap<String, MemberDeps> {
        let app = member_deps(
            "[dependencies]\nlib = { path = \"../lib\" }\nserde = \"1\"\n[dev-dependencies]\ndevonly = \"1\"\n",
            &Table::new(),
        )
        .unwrap();
        let lib = member_deps(
            "[build-dependencies]\ncc = \"1\"\n[target.'cfg(unix)'.dependencies]\nserde = \"1\"\n",
            &Table::new(),
        )
        .unwrap();
        [("app".to_string(), app), ("lib".to_string(), lib)].into_iter().collect()
    }

    #[test]
    fn the_slice_follows_non_dev_edges_from_the_members() {
        let slice = String::from_utf8(lock_slice(LOCK, &members()).unwrap()).unwrap();
        for name in ["\"app\"", "\"lib\"", "\"cc\"", "\"1.0.1\"", "\"1.0.2\""] {
            assert!(slice.contains(name), "{name} in {slice}");
        }
        for name in ["devonly", "unrelated", "\"other\""] {
            assert!(!slice.contains(name), "{name} not in {slice}");
        }
        let bumped =
            LOCK.replace("name = \"unrelated\"\nversion = \"1.0.0\"", "name = \"unrelated\"\nversion = \"1.0.9\"");
        assert_eq!(lock_slice(&bumped, &members()), lock_slice(LOCK, &members()));
        let bumped = LOCK.replace("name = \"cc\"\nversion = \"1.0.0\"", "name = \"cc\"\nversion = \"1.0.9\"");
        assert_ne!(lock_slice(&bumped, &members()), lock_slice(LOCK, &members()));
    }

    #[test]
    fn doubt_means_the_whole_file() {
        let dangling = LOCK.replace("name = \"cc\"\n", "name = \"cc\"\ndependencies = [\"nope\"]\n");
        assert_eq!(lock_slice(&dangling, &members()), None, "an edge to no entry");
        let mut missing = members();
        missing.insert("absent".into(), MemberDeps::default());
        assert_eq!(lock_slice(LOCK, &missing), None, "a member without an entry");
        assert_eq!(lock_slice("not = [toml", &members()), None);
        assert_eq!(root_manifest_slice("[package]\nname = \"x\"\n", &BTreeSet::new(), true), None);
    }

    #[test]
    fn the_root_manifest_keeps_what_the_closure_inherits() {
        let root = "[workspace]\nmembers = [\"a\"]\n[workspace.dependencies]\nused = \"1\"\nunused = \"1\"\n[profile.dev]\nopt-level = 1\n";
        let inherited: BTreeSet<String> = ["used".to_string()].into();
        let slice = root_manifest_slice(root, &inherited, true).unwrap();
        let other = root.replace("unused = \"1\"", "unused = \"2\"").replace("[\"a\"]", "[\"a\", \"b\"]");
        assert_eq!(root_manifest_slice(&other, &inherited, true).unwrap(), slice);
        assert_ne!(root_manifest_slice(&other, &inherited, false).unwrap(), slice, "members stay without -p");
        for changed in [
            root.replace("used = \"1\"\nunused", "used = \"2\"\nunused"),
            root.replace("opt-level = 1", "opt-level = 2"),
        ] {
            assert_ne!(root_manifest_slice(&changed, &inherited, true).unwrap(), slice, "{changed}");
        }
    }

    #[test]
    fn packages_are_read_off_cargo_commands() {
        let (packages, named) =
            command_packages(&["cargo build --features x -p a --package b -pc --package=d --bin a".into()]);
        assert_eq!(packages.into_iter().collect::<Vec<_>>(), ["a", "b", "c", "d"]);
        assert!(named);
        assert!(!command_packages(&["cargo build --workspace -p a".into()]).1);
        assert!(!command_packages(&["cargo build".into()]).1);
        assert!(!command_packages(&["rake compile".into()]).1);
    }
}
