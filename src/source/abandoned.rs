//! What a killed fetch or bundle import leaves in a mirror: libgit2's lock files
//! (`refs/heads/main.lock`, `packed-refs.lock`, `FETCH_HEAD.lock`, …) and its temp files
//! (`objects/pack/pack_git2_*` of an unfinished pack, `objects/tmp_object_git2_*`).
//! A stale ref lock makes every later fetch fail ("failed to lock file … for writing"), and a
//! temp pack can be as large as the repository, so they are removed before the mirror is
//! written again.
//!
//! Only call this under `mirror.lock`: every process that writes into a mirror (a fetch, a
//! bundle import) holds it for its whole write, so any lock or temp file found then belongs to
//! a process that died.

use std::path::Path;

/// Removes the abandoned lock and temp files under `git_dir`; returns their count and bytes.
pub fn remove_abandoned_git_files(git_dir: &Path) -> (usize, u64) {
    let (mut count, mut bytes) = (0, 0);
    for entry in walkdir::WalkDir::new(git_dir).into_iter().flatten() {
        let name = entry.file_name().to_string_lossy();
        let abandoned =
            name.ends_with(".lock") || name.starts_with("pack_git2_") || name.starts_with("tmp_object_git2_");
        if abandoned && entry.file_type().is_file() {
            let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
            if std::fs::remove_file(entry.path()).is_ok() {
                tracing::debug!("removed {}, left by a killed fetch or import", entry.path().display());
                count += 1;
                bytes += size;
            }
        }
    }
    (count, bytes)
}

/// Whether the mirror at `git_dir` holds nothing: no refs and no objects. That is what a first
/// fetch that failed leaves (the mirror is created before the fetch); it is safe to remove
/// under `mirror.lock`. A mirror with objects but no refs (a bundle import) is kept.
pub fn is_empty_mirror(git_dir: &Path) -> bool {
    let Ok(repo) = git2::Repository::open_bare(git_dir) else { return false };
    let no_refs = repo.references().is_ok_and(|mut refs| refs.next().is_none());
    let no_objects = walkdir::WalkDir::new(git_dir.join("objects"))
        .min_depth(1)
        .into_iter()
        .flatten()
        .all(|entry| !entry.file_type().is_file());
    no_refs && no_objects
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_and_temp_packs_go_and_everything_else_stays() {
        let dir = tempfile::tempdir().unwrap();
        let git = dir.path().join("mirror.git");
        git2::Repository::init_bare(&git).unwrap();
        let abandoned = [
            "refs/heads/main.lock",
            "packed-refs.lock",
            "FETCH_HEAD.lock",
            "objects/pack/pack_git2_b9b66730de0b2481",
            "objects/pack/pack_git2_b9b66730de0bidx.lock",
            "objects/tmp_object_git2_Zx81a",
        ];
        let kept = ["refs/heads/main", "objects/pack/pack-1234.pack", "objects/pack/pack-1234.idx", "config"];
        for path in abandoned.iter().chain(&kept) {
            let path = git.join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, b"x").unwrap();
        }
        assert_eq!(remove_abandoned_git_files(&git), (abandoned.len(), abandoned.len() as u64));
        for path in abandoned {
            assert!(!git.join(path).exists(), "{path} stays");
        }
        for path in kept {
            assert!(git.join(path).exists(), "{path} was removed");
        }
        assert_eq!(remove_abandoned_git_files(&dir.path().join("absent")), (0, 0));
    }
}
