//! File system access that never follows a link it did not mean to: the primitives every
//! reader and unpacker of cache entries goes through.
//!
//! - [`Beneath`] writes entries beneath a root dir by relative path, opening each parent
//!   with `O_NOFOLLOW | O_DIRECTORY` from the one above it (`openat`). A symlink anywhere in
//!   a path, one an archive made a moment ago or one planted beforehand, is an error
//!   (`ELOOP`/`ENOTDIR`), never followed, so nothing written through it can land outside the
//!   root: the kernel enforces what the archive checks decide.
//! - [`open_regular`] and [`read_capped`] open cache files (records, archives) with
//!   `O_NOFOLLOW | O_NONBLOCK` and require a regular file: a FIFO planted under `actions/`
//!   must not hang a reader, a link to `/dev/zero` must not be read until memory runs out.
//! - [`first_escape`] finds a path under a dir that resolves outside it: the check that the
//!   fuzz target, the tests and `cache verify` (for trees) apply after the fact.

use std::cell::RefCell;
use std::fs::{File, Metadata};
use std::io::{self, ErrorKind, Read};
use std::os::fd::OwnedFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{AtFlags, Mode, OFlags};

/// A directory that entries are created beneath without following any link.
pub(crate) struct Beneath {
    root: OwnedFd,
    path: PathBuf,
    /// The parent dir opened last, by relative path: entries come sorted, so most share it.
    last_parent: RefCell<Option<(String, OwnedFd)>>,
}

const DIR_FLAGS: OFlags = OFlags::RDONLY.union(OFlags::DIRECTORY).union(OFlags::NOFOLLOW).union(OFlags::CLOEXEC);

impl Beneath {
    /// `dir` itself may be reached through links (it is the caller's); nothing below it is.
    pub(crate) fn open(dir: &Path) -> io::Result<Beneath> {
        let root = rustix::fs::open(dir, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())?;
        Ok(Beneath { root, path: dir.to_path_buf(), last_parent: RefCell::new(None) })
    }

    /// Where `rel` is, for messages.
    pub(crate) fn path(&self, rel: &str) -> PathBuf {
        self.path.join(rel)
    }

    /// Runs `f` with the parent dir of `rel` (created if missing) and `rel`'s last component.
    fn in_parent<T>(&self, rel: &str, f: impl FnOnce(&OwnedFd, &str) -> io::Result<T>) -> io::Result<T> {
        let (parent, name) = match rel.rsplit_once('/') {
            Some((parent, name)) => (parent, name),
            None => return f(&self.root, rel),
        };
        check_name(name)?;
        let mut cached = self.last_parent.borrow_mut();
        if cached.as_ref().is_none_or(|(p, _)| p != parent) {
            *cached = Some((parent.to_string(), self.open_dirs(parent)?));
        }
        f(&cached.as_ref().expect("just set").1, name)
    }

    /// Opens (creating what is missing) each component of `rel`, none of them a link.
    fn open_dirs(&self, rel: &str) -> io::Result<OwnedFd> {
        let mut dir = rustix::fs::openat(&self.root, ".", DIR_FLAGS, Mode::empty())?;
        for name in rel.split('/') {
            check_name(name)?;
            dir = match rustix::fs::openat(&dir, name, DIR_FLAGS, Mode::empty()) {
                Ok(next) => next,
                Err(rustix::io::Errno::NOENT) => {
                    match rustix::fs::mkdirat(&dir, name, Mode::from_raw_mode(0o755)) {
                        Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                        Err(err) => return Err(err.into()),
                    }
                    rustix::fs::openat(&dir, name, DIR_FLAGS, Mode::empty())?
                }
                Err(err) => return Err(not_a_dir(err)),
            };
        }
        Ok(dir)
    }

    /// Creates `rel` and its parents as dirs (an existing dir is fine, a link is not).
    pub(crate) fn create_dirs(&self, rel: &str) -> io::Result<()> {
        self.open_dirs(rel).map(drop)
    }

    /// Creates the new file `rel` (it must not exist) for writing.
    pub(crate) fn create_file(&self, rel: &str, mode: u32) -> io::Result<File> {
        self.in_parent(rel, |dir, name| {
            let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
            Ok(File::from(rustix::fs::openat(dir, name, flags, Mode::from_raw_mode(mode))?))
        })
    }

    /// Creates the symlink `rel` -> `target`.
    pub(crate) fn symlink(&self, rel: &str, target: &str) -> io::Result<()> {
        self.in_parent(rel, |dir, name| Ok(rustix::fs::symlinkat(target, dir, name)?))
    }

    /// Hard-links the existing file `from` (not followed if it is a link) as `rel`.
    pub(crate) fn hard_link(&self, from: &Path, rel: &str) -> io::Result<()> {
        self.in_parent(rel, |dir, name| Ok(rustix::fs::linkat(rustix::fs::CWD, from, dir, name, AtFlags::empty())?))
    }
}

/// One plain path component: what a relative path is split into before it gets here.
fn check_name(name: &str) -> io::Result<()> {
    if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\0']) {
        return Err(io::Error::new(ErrorKind::InvalidInput, format!("{name:?} is not a plain file name")));
    }
    Ok(())
}

fn not_a_dir(err: rustix::io::Errno) -> io::Error {
    match err {
        rustix::io::Errno::LOOP | rustix::io::Errno::NOTDIR => {
            io::Error::new(ErrorKind::NotADirectory, "a symlink or a file stands where a directory is needed")
        }
        other => other.into(),
    }
}

/// Opens `path` for reading if it is a regular file: not through a final symlink, and
/// without blocking on a FIFO. The metadata is the open file's own (fstat).
pub(crate) fn open_regular(path: &Path) -> io::Result<(File, Metadata)> {
    let file =
        File::options().read(true).custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC).open(path);
    let file = match file {
        Err(err) if err.raw_os_error() == Some(libc::ELOOP) => return Err(not_regular("a symlink")),
        other => other?,
    };
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(not_regular(if meta.is_dir() { "a directory" } else { "a FIFO, socket or device" }));
    }
    Ok((file, meta))
}

fn not_regular(what: &str) -> io::Error {
    io::Error::new(ErrorKind::InvalidData, format!("it is {what}, not a regular file"))
}

/// The bytes of the regular file `path`, refused beyond `limit` bytes, and its metadata.
pub(crate) fn read_capped(path: &Path, limit: u64) -> io::Result<(Vec<u8>, Metadata)> {
    let (file, meta) = open_regular(path)?;
    if meta.len() > limit {
        return Err(too_big(meta.len(), limit));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    // It may grow after the fstat: never read more than the limit.
    file.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(too_big(bytes.len() as u64, limit));
    }
    Ok((bytes, meta))
}

fn too_big(size: u64, limit: u64) -> io::Error {
    io::Error::new(ErrorKind::InvalidData, format!("it holds {size} bytes, more than the {limit} a record may"))
}

/// The first path under `root` (walked without following links) that resolves to a place
/// outside `root`, following every link on the way as the kernel would; `None` if all stay
/// inside. A dangling link is judged by where it points.
pub fn first_escape(root: &Path) -> Option<PathBuf> {
    let real_root = root.canonicalize().ok()?;
    for entry in walkdir::WalkDir::new(&real_root).min_depth(1).into_iter().flatten() {
        if !resolve(entry.path()).starts_with(&real_root) {
            return Some(root.join(entry.path().strip_prefix(&real_root).expect("walked from it")));
        }
    }
    None
}

/// Where `path` leads: each existing link is followed (up to 40), `..` pops, and what does
/// not exist is taken as written.
fn resolve(path: &Path) -> PathBuf {
    let mut pending: Vec<PathBuf> = vec![path.to_path_buf()];
    let mut at = PathBuf::from("/");
    let mut hops = 0;
    while let Some(next) = pending.pop() {
        let mut parts: Vec<Component> = next.components().collect();
        parts.reverse();
        while let Some(part) = parts.pop() {
            match part {
                Component::RootDir | Component::Prefix(_) => at = PathBuf::from("/"),
                Component::CurDir => {}
                Component::ParentDir => {
                    at.pop();
                }
                Component::Normal(name) => {
                    at.push(name);
                    if let Ok(target) = std::fs::read_link(&at) {
                        hops += 1;
                        if hops > 40 {
                            return at;
                        }
                        at.pop();
                        let rest: PathBuf = parts.iter().rev().collect();
                        if !rest.as_os_str().is_empty() {
                            pending.push(rest);
                        }
                        pending.push(target);
                        break;
                    }
                }
            }
        }
    }
    at
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    /// A scratch dir holding `root/<sub>`: the root the tests confine, with the scratch dir
    /// as the outside a link may escape to.
    fn scratch_root(sub: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join(sub)).unwrap();
        (dir, root)
    }

    #[test]
    fn beneath_never_follows_a_link_and_creates_parents() {
        let (dir, root) = scratch_root("real");
        symlink("..", root.join("up")).unwrap();
        symlink(dir.path(), root.join("abs")).unwrap();
        let beneath = Beneath::open(&root).unwrap();
        for rel in ["up/x", "abs/x", "up/deeper/x"] {
            let err = beneath.create_file(rel, 0o644).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::NotADirectory, "{rel}: {err}");
            assert!(beneath.symlink(rel, "y").is_err() && beneath.create_dirs(rel).is_err(), "{rel}");
        }
        assert!(beneath.create_file("up", 0o644).is_err(), "not even the link itself is opened");
        beneath.create_file("a/b/c", 0o600).unwrap();
        beneath.symlink("a/b/d", "c").unwrap();
        assert_eq!(std::fs::read_link(root.join("a/b/d")).unwrap(), Path::new("c"));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "nothing next to the root");
    }

    #[test]
    fn non_regular_files_are_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        rustix::fs::mknodat(rustix::fs::CWD, &fifo, rustix::fs::FileType::Fifo, Mode::from_raw_mode(0o644), 0).unwrap();
        symlink("/dev/zero", dir.path().join("zero")).unwrap();
        std::fs::write(dir.path().join("big"), vec![b' '; 100]).unwrap();
        for (name, expect) in [("fifo", "FIFO"), ("zero", "symlink"), ("big", "100 bytes")] {
            let err = read_capped(&dir.path().join(name), 99).unwrap_err().to_string();
            assert!(err.contains(expect), "{name}: {err}");
        }
        assert_eq!(read_capped(&dir.path().join("big"), 100).unwrap().0.len(), 100);
    }

    #[test]
    fn escapes_are_found_through_chains_of_links() {
        let (_dir, root) = scratch_root("a");
        symlink("../a", root.join("a/inside")).unwrap();
        assert_eq!(first_escape(&root), None);
        symlink("..", root.join("a/b")).unwrap(); // root itself: still inside
        assert_eq!(first_escape(&root), None);
        symlink("b/..", root.join("a/c")).unwrap(); // a/b is root, its `..` is outside
        assert_eq!(first_escape(&root), Some(root.join("a/c")));
    }
}
