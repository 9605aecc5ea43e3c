//! The one validation of an action record, run by every reader before anything is touched:
//! the local tier in copy and link modes, the remote tier before it downloads an archive,
//! gc, verify, `ls`, bundles. A record comes from a cache dir that may be shared or restored
//! from CI, or from a remote anyone with write access can fill, so every field that reaches
//! the file system is checked here:
//!
//! - `key` and `artifact_digest` become file names (`actions/`, `blobs/`, `trees/`): 64
//!   lowercase hex digits, nothing else;
//! - `target` names the log dir (`logs/<target>/`): one plain path component;
//! - `files` become paths under `--out` and the store's trees: the rules of `entry_layout`
//!   (plain relative paths in normal form, sorted, no duplicates, nothing below a link or a
//!   file, link targets that stay inside), plus consistent kinds (a file has a digest and
//!   mode 0644/0755, a link a target and mode 0777) and sizes that add up without overflow.

use super::entry_layout::{EntryLayout, Kind, safe_relative_path};
use super::{ActionRecord, is_digest};

/// The most bytes a record file may hold. A tasker-core record with its derivation is about
/// 110 KB; a remote record (`ac/<key>`) wraps one and has its own, larger limit.
pub const MAX_RECORD_BYTES: u64 = 8 * 1024 * 1024;

/// One plain path component as tbuild writes names (a target): not empty, not `.` or `..`,
/// no `/`, no NUL, at most 255 bytes.
pub fn is_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 255 && s != "." && s != ".." && !s.contains(['/', '\0'])
}

impl ActionRecord {
    /// Why this record must not be acted on, if it must not.
    pub fn validate(&self) -> Result<(), String> {
        if !is_digest(&self.key) {
            return Err(format!("key {:?} is not 64 hex digits", self.key));
        }
        if !is_digest(&self.artifact_digest) {
            return Err(format!("artifact_digest {:?} is not a blake3 hex digest", self.artifact_digest));
        }
        if !is_name(&self.target) {
            return Err(format!("target {:?} is not a plain name (it becomes a directory name)", self.target));
        }
        let mut layout = EntryLayout::default();
        let mut total = 0u64;
        let mut previous: Option<&str> = None;
        for file in &self.files {
            let bad = |reason: &str| Err(format!("file {:?}: {reason}", file.path));
            match safe_relative_path(&file.path) {
                Ok(normal) if normal == file.path => {}
                Ok(_) => return bad("path is not in normal form (a/b)"),
                Err(refusal) => return bad(&refusal.reason),
            }
            if previous.is_some_and(|p| p >= file.path.as_str()) {
                return bad("files are not sorted by path, or one is listed twice");
            }
            previous = Some(&file.path);
            let kind = match (&file.digest, &file.link, file.mode) {
                (Some(digest), None, 0o644 | 0o755) if is_digest(digest) => Kind::File,
                (Some(_), None, 0o644 | 0o755) => return bad("digest is not a blake3 hex digest"),
                (None, Some(_), 0o777) if file.size == 0 => Kind::Link,
                _ => return bad("neither a file (digest, mode 420 or 493) nor a symlink (link, mode 511, size 0)"),
            };
            layout
                .add(&file.path, kind, file.link.as_deref())
                .map_err(|r| format!("file {:?}: {}", r.entry, r.reason))?;
            total = total.checked_add(file.size).ok_or_else(|| "file sizes add up beyond 2^64 bytes".to_string())?;
        }
        layout.check_links().map_err(|r| format!("file {:?}: {}", r.entry, r.reason))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::{ArchiveFile, RECORD_FORMAT};

    fn file(path: &str) -> ArchiveFile {
        ArchiveFile { path: path.into(), mode: 0o644, size: 1, digest: Some("ab".repeat(32)), link: None }
    }

    fn link(path: &str, target: &str) -> ArchiveFile {
        ArchiveFile { path: path.into(), mode: 0o777, size: 0, digest: None, link: Some(target.into()) }
    }

    fn record(files: Vec<ArchiveFile>) -> ActionRecord {
        ActionRecord {
            format: RECORD_FORMAT,
            target: "tasker-ctl".into(),
            key: "0".repeat(64),
            artifact_digest: "1".repeat(64),
            artifact_size: 1,
            files,
            build_duration_ms: 1,
            provenance: "abc".into(),
            toolchain: "rustc".into(),
            created_at: 0,
            derivation: None,
        }
    }

    #[test]
    fn every_field_that_becomes_a_path_is_checked() {
        let good = record(vec![file("bin/a"), link("bin/b", "a"), file("lib/c")]);
        good.validate().unwrap();
        let cases: Vec<(&str, ActionRecord, &str)> = vec![
            ("digest is a path", ActionRecord { artifact_digest: "../../../etc".into(), ..good.clone() }, "digest"),
            ("key is a path", ActionRecord { key: "../k".into(), ..good.clone() }, "key"),
            ("target is a path", ActionRecord { target: "../../x".into(), ..good.clone() }, "target"),
            ("target is ..", ActionRecord { target: "..".into(), ..good.clone() }, "target"),
            ("file with ..", record(vec![file("../../x")]), "`..`"),
            ("absolute file", record(vec![file("/etc/shadow")]), "absolute"),
            ("empty components", record(vec![file("a//b")]), "normal form"),
            ("dot component", record(vec![file("./a")]), "normal form"),
            ("empty path", record(vec![file("")]), "empty"),
            ("link to /etc/shadow", record(vec![link("a", "/etc/shadow")]), "absolute"),
            ("link escapes", record(vec![link("a", "../x")]), "escapes"),
            ("link chain", record(vec![link("a/b", ".."), link("a/b/c", "../..")]), "below the symlink"),
            ("unsorted", record(vec![file("b"), file("a")]), "sorted"),
            ("twice", record(vec![file("a"), file("a")]), "sorted"),
            ("file below a file", record(vec![file("a"), file("a/b")]), "below the file"),
            (
                "link with a digest",
                record(vec![ArchiveFile { digest: Some("ab".repeat(32)), ..link("a", "b") }]),
                "neither",
            ),
            ("file without a digest", record(vec![ArchiveFile { digest: None, ..file("a") }]), "neither"),
            ("odd mode", record(vec![ArchiveFile { mode: 0o4755, ..file("a") }]), "neither"),
            ("bad file digest", record(vec![ArchiveFile { digest: Some("x".into()), ..file("a") }]), "digest"),
            (
                "sizes overflow",
                record(vec![ArchiveFile { size: u64::MAX, ..file("a") }, ArchiveFile { size: 2, ..file("b") }]),
                "2^64",
            ),
        ];
        for (name, record, expect) in cases {
            let err = record.validate().expect_err(name);
            assert!(err.contains(expect), "{name}: {err}");
            let json = serde_json::to_vec(&record).unwrap();
            assert!(ActionRecord::from_json(&json).is_err(), "{name}: from_json validates too");
        }
    }
}
