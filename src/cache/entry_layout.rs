//! The shape an artifact's entries must have, whether they come from an archive being
//! unpacked or from the `files` of an action record (checked before anything is touched):
//!
//! - each path is relative, of plain components only (no `..`, no absolute path, no empty
//!   or `.` component), written the one normal way (`a/b`, never `./a//b`);
//! - no two entries share a name, even once case-folded and Unicode-normalised (they would
//!   overwrite each other on APFS or NTFS);
//! - nothing lies below a file or a symlink: a symlink is never a parent dir, so a link's
//!   parent is a real dir at the place its path names, and every link can be judged from
//!   there (this is what makes chains such as `a/b -> ..`, `a/b/c -> ../..` impossible);
//! - a symlink's target, relative and followed through the other links of the same
//!   artifact, stays inside the destination.
//!
//! Writing goes through `no_follow::Beneath` as well, so even a gap in these rules could
//! not make the kernel follow a link out of the destination.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Component, Path};

/// Why an entry is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub entry: String,
    pub reason: String,
}

impl Refusal {
    fn new(entry: &str, reason: impl Into<String>) -> Refusal {
        Refusal { entry: entry.to_string(), reason: reason.into() }
    }
}

/// What an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Dir,
    File,
    Link,
}

/// The entries seen so far; [`EntryLayout::add`] refuses one that breaks a rule as soon as
/// it is seen, [`EntryLayout::check_links`] judges the links once all are known.
#[derive(Debug, Default)]
pub(crate) struct EntryLayout {
    kinds: HashMap<String, Kind>,
    /// Every proper prefix of an entry: these must be dirs.
    parents: HashSet<String>,
    folded: HashMap<String, String>,
    links: BTreeMap<String, String>,
}

impl EntryLayout {
    /// Checks and records the entry `raw`; its normal path.
    pub(crate) fn add(&mut self, raw: &str, kind: Kind, link: Option<&str>) -> Result<String, Refusal> {
        let path = safe_relative_path(raw)?;
        let refuse = |reason: String| Err(Refusal::new(&path, reason));
        if self.kinds.contains_key(&path) {
            return refuse("duplicate entry".into());
        }
        if let Some(other) = self.folded.insert(folded(&path), path.clone()) {
            return refuse(format!("collides with {other:?} on case-insensitive or Unicode-normalising file systems"));
        }
        if kind != Kind::Dir && self.parents.contains(&path) {
            return refuse("it is a file or symlink, but other entries lie below it".into());
        }
        let mut prefix = String::new();
        for part in path.split('/').collect::<Vec<_>>().split_last().expect("not empty").1 {
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(part);
            match self.kinds.get(&prefix) {
                Some(Kind::Link) => return refuse(format!("it lies below the symlink {prefix}")),
                Some(Kind::File) => return refuse(format!("it lies below the file {prefix}")),
                Some(Kind::Dir) | None => {}
            }
            self.parents.insert(prefix.clone());
        }
        if kind == Kind::Link {
            let target = link.unwrap_or_default();
            if target.is_empty() || target.contains('\0') {
                return refuse("symlink without a target".into());
            }
            self.links.insert(path.clone(), target.to_string());
        }
        self.kinds.insert(path.clone(), kind);
        Ok(path)
    }

    /// The links seen, by path.
    pub(crate) fn links(&self) -> &BTreeMap<String, String> {
        &self.links
    }

    /// Every link's target stays inside the destination.
    pub(crate) fn check_links(&self) -> Result<(), Refusal> {
        self.links.iter().try_for_each(|(path, target)| check_link_stays_inside(path, target, &self.links))
    }
}

/// The name a case-insensitive, normalising file system (APFS, NTFS) would see.
fn folded(path: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    path.nfc().collect::<String>().to_lowercase()
}

/// A relative path of plain components only, normalised to `/` separators.
pub(crate) fn safe_relative_path(raw: &str) -> Result<String, Refusal> {
    let refuse = |reason: &str| Refusal::new(raw, reason);
    if raw.contains('\0') {
        return Err(refuse("path contains a NUL byte"));
    }
    let mut parts = Vec::new();
    for component in Path::new(raw).components() {
        match component {
            Component::Normal(part) => parts.push(part.to_str().ok_or_else(|| refuse("path is not UTF-8"))?),
            Component::CurDir => {}
            Component::ParentDir => return Err(refuse("path contains `..`")),
            Component::RootDir | Component::Prefix(_) => return Err(refuse("absolute path")),
        }
    }
    if parts.is_empty() {
        return Err(refuse("empty path"));
    }
    Ok(parts.join("/"))
}

/// Resolves `target` from the directory holding `link`, following the artifact's own links,
/// and refuses anything that leaves the destination. Sound because no entry lies below a
/// link ([`EntryLayout::add`]): the dir holding a link is where its path says.
fn check_link_stays_inside(link: &str, target: &str, links: &BTreeMap<String, String>) -> Result<(), Refusal> {
    let refuse = |reason: String| Refusal::new(link, reason);
    let mut stack: Vec<String> = link.split('/').map(String::from).collect();
    stack.pop();
    let mut pending: Vec<String> = vec![target.to_string()];
    let mut hops = 0;
    while let Some(next) = pending.pop() {
        if next.starts_with('/') {
            return Err(refuse(format!("symlink target {target:?} is absolute")));
        }
        let mut components: Vec<&str> = next.split('/').collect();
        components.reverse();
        while let Some(part) = components.pop() {
            match part {
                "" | "." => {}
                ".." => {
                    if stack.pop().is_none() {
                        return Err(refuse(format!("symlink target {target:?} escapes the destination")));
                    }
                }
                name => {
                    stack.push(name.to_string());
                    if let Some(inner) = links.get(&stack.join("/")) {
                        hops += 1;
                        if hops > 40 {
                            return Err(refuse("symlink loop".into()));
                        }
                        stack.pop();
                        // Resolve the inner link first, then the rest of this path.
                        let rest: Vec<&str> = components.iter().rev().copied().collect();
                        if !rest.is_empty() {
                            pending.push(rest.join("/"));
                        }
                        pending.push(inner.clone());
                        break;
                    }
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    type Entries<'a> = Vec<(&'a str, Kind, Option<&'a str>)>;

    fn layout(entries: &[(&str, Kind, Option<&str>)]) -> Result<(), Refusal> {
        let mut layout = EntryLayout::default();
        for (path, kind, link) in entries {
            layout.add(path, *kind, *link)?;
        }
        layout.check_links()
    }

    #[test]
    fn nothing_lies_below_a_link_or_a_file_whatever_the_order() {
        use Kind::*;
        let cases: Vec<(&str, Entries, &str)> = vec![
            (
                "link chain",
                vec![("a/b", Link, Some("..")), ("a/b/c", Link, Some("../..")), ("a/b/c/d/e", File, None)],
                "below the symlink a/b",
            ),
            ("file below a link", vec![("a", Link, Some(".")), ("a/x", File, None)], "below the symlink a"),
            ("link after a file below it", vec![("a/x", File, None), ("a", Link, Some("."))], "other entries"),
            ("file below a file", vec![("a", File, None), ("a/x", File, None)], "below the file a"),
            ("file that is a parent", vec![("a/x", File, None), ("a", File, None)], "other entries"),
            ("two links on one name", vec![("l", Link, Some("a")), ("l", Link, Some("b"))], "duplicate"),
            ("not normal", vec![("./a//b", File, None)], ""),
            ("empty target", vec![("l", Link, Some(""))], "without a target"),
        ];
        for (name, entries, expect) in cases {
            let result = layout(&entries);
            if name == "not normal" {
                // Accepted here, normalised: a record must be written normally (record_check).
                assert!(result.is_ok(), "{name}");
                continue;
            }
            let err = result.expect_err(name);
            assert!(err.reason.contains(expect), "{name}: {err:?}");
        }
        layout(&[("dir/lib.so", File, None), ("dir/lib.so.1", Link, Some("lib.so")), ("top", Link, Some("dir/x"))])
            .unwrap();
    }
}
