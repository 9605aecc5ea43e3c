//! Artifact archives: deterministic tar + zstd on the way in, hostile-input-safe on the way out.
//!
//! Packing sorts entries by path and zeroes everything that varies between machines and runs
//! (mtime, uid/gid, user names); modes are normalised to 0644/0755 and symlinks stay symlinks,
//! so the same output files always pack to the same bytes, and thus the same digest. zstd runs
//! at level 3 with at least one worker thread: multithreaded zstd output does not depend on the
//! worker count, so machines with different core counts agree.
//!
//! Unpacking treats the archive as hostile even though we wrote it: the cache dir may be
//! shared or restored from a CI cache. It verifies the whole archive's digest first, refuses
//! absolute paths, `..`, hard links, device nodes and other special entries, symlinks that
//! resolve outside the destination (following the archive's own links), and entries that
//! would be written through a symlink. Links are created last. It also refuses names that
//! collide once case-folded and Unicode-normalised (they would overwrite each other on macOS
//! or Windows file systems), and stops at the limits the action record implies (entry count
//! and bytes), so a small archive cannot expand into a full disk (a decompression bomb).

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{AtomicFile, CacheError};

const ZSTD_LEVEL: i32 = 3;

/// One file as it lands in the artifact layout, recorded in the action record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchiveFile {
    /// Path inside the artifact layout, `/`-separated (e.g. `tasker-core-binaries/tasker-ctl`).
    pub path: String,
    /// 0o644 or 0o755 for files, 0o777 for symlinks.
    pub mode: u32,
    pub size: u64,
    /// blake3 of the content (files only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// Link target (symlinks only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
}

/// The result of [`pack`]: the archive's digest and size and what it holds.
#[derive(Debug, Clone)]
pub struct PackedArchive {
    pub digest: String,
    pub size: u64,
    pub files: Vec<ArchiveFile>,
}

/// How much an archive may hold when unpacked. A record lists every file with its size, so
/// a verified archive that expands beyond its record is lying: the limits stop it early,
/// before it fills the disk.
#[derive(Debug, Clone, Copy)]
pub struct UnpackLimits {
    pub max_entries: usize,
    pub max_bytes: u64,
}

impl UnpackLimits {
    /// Exactly what `files` (an action record's list) describes.
    pub fn for_files(files: &[ArchiveFile]) -> UnpackLimits {
        UnpackLimits { max_entries: files.len(), max_bytes: files.iter().map(|f| f.size).sum() }
    }

    /// For archives with no record to compare against (bundles check theirs separately).
    pub const UNBOUNDED: UnpackLimits = UnpackLimits { max_entries: usize::MAX, max_bytes: u64::MAX };
}

/// Packs `files` (archive path -> file or symlink on disk) into `dest`, which the caller
/// commits once the archive is stored.
pub fn pack(
    files: &BTreeMap<String, PathBuf>,
    mut dest: AtomicFile,
) -> Result<(PackedArchive, AtomicFile), CacheError> {
    let temp_path = dest.temp_path().to_path_buf();
    let io_err = |e: io::Error| CacheError::Io { path: temp_path.clone(), source: e };
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get()) as u32;
    let hashing = HashingWriter { inner: dest.file(), hasher: blake3::Hasher::new(), written: 0 };
    let mut encoder = zstd::Encoder::new(hashing, ZSTD_LEVEL).map_err(io_err)?;
    encoder.multithread(workers.max(1)).map_err(io_err)?;
    let mut tar = tar::Builder::new(encoder);
    tar.mode(tar::HeaderMode::Deterministic);
    let mut listed = Vec::with_capacity(files.len());
    let mut entries = Vec::with_capacity(files.len());
    for (archive_path, source) in files {
        let meta = fs::symlink_metadata(source).map_err(CacheError::io(source))?;
        entries.push((archive_path.as_str(), source.as_path(), meta));
    }
    // Files are read and hashed on a thread of their own, ahead of the tar + zstd stream
    // (as `tar | zstd` runs in two processes): on a loaded machine one thread doing both
    // was the bottleneck while the zstd workers waited.
    let regular: Vec<(&Path, u64)> =
        entries.iter().filter(|(_, _, m)| m.is_file()).map(|(_, source, m)| (*source, m.len())).collect();
    std::thread::scope(|scope| -> Result<(), CacheError> {
        let (sender, receiver) = std::sync::mpsc::sync_channel(4);
        scope.spawn(move || read_ahead(&regular, &sender));
        let mut contents = ChannelReader { receiver, chunk: Vec::new(), at: 0, digest: None };
        for (archive_path, source, meta) in &entries {
            listed.push(append_entry(&mut tar, archive_path, source, meta, &mut contents)?);
        }
        Ok(())
    })?;
    let encoder = tar.into_inner().map_err(io_err)?;
    let hashing = encoder.finish().map_err(io_err)?;
    let packed =
        PackedArchive { digest: hashing.hasher.finalize().to_hex().to_string(), size: hashing.written, files: listed };
    Ok((packed, dest))
}

fn append_entry<W: Write>(
    tar: &mut tar::Builder<W>,
    archive_path: &str,
    source: &Path,
    meta: &fs::Metadata,
    contents: &mut ChannelReader,
) -> Result<ArchiveFile, CacheError> {
    let io_err = CacheError::io(source);
    let mut header = tar::Header::new_gnu();
    header.set_mtime(0);
    header.set_uid(0);
    header.set_gid(0);
    if meta.file_type().is_symlink() {
        let target = fs::read_link(source).map_err(CacheError::io(source))?;
        let target = target.to_str().ok_or_else(|| CacheError::UnsafeEntry {
            entry: archive_path.to_string(),
            reason: "symlink target is not UTF-8".into(),
        })?;
        header.set_entry_type(tar::EntryType::Symlink);
        header.set_mode(0o777);
        header.set_size(0);
        tar.append_link(&mut header, archive_path, target).map_err(io_err)?;
        return Ok(ArchiveFile {
            path: archive_path.into(),
            mode: 0o777,
            size: 0,
            digest: None,
            link: Some(target.into()),
        });
    }
    if !meta.is_file() {
        return Err(CacheError::UnsafeEntry {
            entry: archive_path.into(),
            reason: "only files and symlinks can be archived".into(),
        });
    }
    let mode = normalised_mode(meta.permissions().mode());
    header.set_entry_type(tar::EntryType::Regular);
    header.set_mode(mode);
    header.set_size(meta.len());
    tar.append_data(&mut header, archive_path, &mut *contents).map_err(io_err)?;
    let digest = contents.digest.take().ok_or_else(|| CacheError::Io {
        path: source.to_path_buf(),
        source: io::Error::other("changed size while being archived"),
    })?;
    Ok(ArchiveFile {
        path: archive_path.into(),
        mode,
        size: meta.len(),
        digest: Some(digest.to_hex().to_string()),
        link: None,
    })
}

/// What the read-ahead thread sends for each file: its bytes in chunks, then its digest.
enum Piece {
    Data(Vec<u8>),
    Done(blake3::Hash),
    Failed(io::Error),
}

/// Reads and hashes `files` (path, size as archived) in order, in 1 MiB chunks. Exactly
/// `size` bytes are read: a file that shrank is an error, one that grew is cut (its tar
/// header already holds the size).
fn read_ahead(files: &[(&Path, u64)], sender: &std::sync::mpsc::SyncSender<Piece>) {
    for (path, size) in files {
        let result = (|| -> io::Result<blake3::Hash> {
            let mut file = File::open(path)?.take(*size);
            let mut hasher = blake3::Hasher::new();
            let mut left = *size;
            while left > 0 {
                let mut chunk = vec![0u8; left.min(1 << 20) as usize];
                file.read_exact(&mut chunk)?;
                hasher.update(&chunk);
                left -= chunk.len() as u64;
                if sender.send(Piece::Data(chunk)).is_err() {
                    return Err(io::ErrorKind::BrokenPipe.into());
                }
            }
            Ok(hasher.finalize())
        })();
        let piece = match result {
            Ok(digest) => Piece::Done(digest),
            Err(err) => Piece::Failed(io::Error::new(err.kind(), format!("{}: {err}", path.display()))),
        };
        if sender.send(piece).is_err() {
            return;
        }
    }
}

/// One file's bytes from the read-ahead thread; EOF at its end, with `digest` set.
struct ChannelReader {
    receiver: std::sync::mpsc::Receiver<Piece>,
    chunk: Vec<u8>,
    at: usize,
    digest: Option<blake3::Hash>,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.at == self.chunk.len() {
            match self.receiver.recv() {
                Ok(Piece::Data(chunk)) => (self.chunk, self.at) = (chunk, 0),
                Ok(Piece::Done(digest)) => {
                    self.digest = Some(digest);
                    return Ok(0);
                }
                Ok(Piece::Failed(err)) => return Err(err),
                Err(_) => return Err(io::ErrorKind::BrokenPipe.into()),
            }
        }
        let n = buf.len().min(self.chunk.len() - self.at);
        buf[..n].copy_from_slice(&self.chunk[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// Any execute bit makes a file 0755; everything else is 0644.
fn normalised_mode(mode: u32) -> u32 {
    if mode & 0o111 != 0 { 0o755 } else { 0o644 }
}

/// blake3 of a file, streaming.
pub(crate) fn digest_file(path: &Path) -> io::Result<blake3::Hash> {
    let mut hasher = blake3::Hasher::new();
    hasher.update_reader(File::open(path)?)?;
    Ok(hasher.finalize())
}

/// Verifies `archive` against `expected_digest` (`None`: the caller just did), then extracts
/// it into `dest`, an empty dir the caller created and renames into place afterwards.
/// Returns the files extracted, with their digests.
pub fn unpack(
    archive: &Path,
    expected_digest: Option<&str>,
    dest: &Path,
    limits: UnpackLimits,
) -> Result<Vec<ArchiveFile>, CacheError> {
    if let Some(expected) = expected_digest {
        let actual = digest_file(archive).map_err(CacheError::io(archive))?;
        if actual.to_hex().as_str() != expected {
            return Err(CacheError::CorruptArchive {
                path: archive.to_path_buf(),
                reason: format!("digest is {}, expected {expected}", actual.to_hex()),
            });
        }
    }
    let corrupt = |e: io::Error| CacheError::CorruptArchive { path: archive.to_path_buf(), reason: e.to_string() };
    let file = File::open(archive).map_err(CacheError::io(archive))?;
    let decoder = zstd::Decoder::new(file).map_err(corrupt)?;
    let mut tar = tar::Archive::new(decoder);
    let mut extracted = Vec::new();
    let mut links: BTreeMap<String, String> = BTreeMap::new();
    let mut seen: HashMap<String, bool> = HashMap::new(); // path -> is a directory
    let mut folded_names: HashMap<String, String> = HashMap::new(); // folded -> as in the archive
    let (mut entries, mut bytes) = (0usize, 0u64);
    // Per file: one buffer, and each parent dir created once (a dist/ has hundreds of files).
    let mut buf = vec![0u8; 256 * 1024];
    let mut made: std::collections::HashSet<PathBuf> = std::collections::HashSet::new();
    for entry in tar.entries().map_err(corrupt)? {
        let mut entry = entry.map_err(corrupt)?;
        let raw_path = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let rel = safe_relative_path(&raw_path)?;
        let refuse = |reason: &str| CacheError::UnsafeEntry { entry: raw_path.clone(), reason: reason.into() };
        if seen.contains_key(&rel) || links.contains_key(&rel) {
            return Err(refuse("duplicate entry"));
        }
        if let Some(other) = folded_names.insert(folded(&rel), rel.clone()) {
            return Err(refuse(&format!(
                "collides with {other:?} on case-insensitive or Unicode-normalising file systems"
            )));
        }
        entries += 1;
        if entries > limits.max_entries {
            let reason = format!("it holds more than the {} entries its record lists", limits.max_entries);
            return Err(CacheError::CorruptArchive { path: archive.to_path_buf(), reason });
        }
        let kind = entry.header().entry_type();
        match kind {
            tar::EntryType::Directory => {
                fs::create_dir_all(dest.join(&rel)).map_err(CacheError::io(dest.join(&rel)))?;
                seen.insert(rel, true);
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let out_path = dest.join(&rel);
                if let Some(parent) = out_path.parent()
                    && !made.contains(parent)
                {
                    fs::create_dir_all(parent).map_err(CacheError::io(parent))?;
                    made.insert(parent.to_path_buf());
                }
                let mode = normalised_mode(entry.header().mode().map_err(corrupt)?);
                let mut out = fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&out_path)
                    .map_err(CacheError::io(&out_path))?;
                let mut hasher = blake3::Hasher::new();
                let mut size = 0u64;
                loop {
                    let n = entry.read(&mut buf).map_err(corrupt)?;
                    if n == 0 {
                        break;
                    }
                    bytes += n as u64;
                    if bytes > limits.max_bytes {
                        let reason = format!("it expands beyond the {} bytes its record lists", limits.max_bytes);
                        return Err(CacheError::CorruptArchive { path: archive.to_path_buf(), reason });
                    }
                    hasher.update(&buf[..n]);
                    out.write_all(&buf[..n]).map_err(CacheError::io(&out_path))?;
                    size += n as u64;
                }
                out.set_permissions(fs::Permissions::from_mode(mode)).map_err(CacheError::io(&out_path))?;
                extracted.push(ArchiveFile {
                    path: rel.clone(),
                    mode,
                    size,
                    digest: Some(hasher.finalize().to_hex().to_string()),
                    link: None,
                });
                seen.insert(rel, false);
            }
            tar::EntryType::Symlink => {
                let target = entry.link_name_bytes().ok_or_else(|| refuse("symlink without a target"))?;
                let target =
                    String::from_utf8(target.into_owned()).map_err(|_| refuse("symlink target is not UTF-8"))?;
                links.insert(rel, target);
            }
            tar::EntryType::Link => return Err(refuse("hard links are not allowed in artifacts")),
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                return Err(refuse("device nodes and fifos are not allowed in artifacts"));
            }
            other => return Err(refuse(&format!("unsupported entry type {other:?}"))),
        }
    }
    // Nothing may have been written through a path that the archive makes a symlink.
    for path in seen.keys() {
        if let Some(link) = links.keys().find(|l| path.starts_with(&format!("{l}/"))) {
            return Err(CacheError::UnsafeEntry {
                entry: path.clone(),
                reason: format!("would be written through the symlink {link}"),
            });
        }
    }
    for (path, target) in &links {
        check_link_stays_inside(path, target, &links)?;
    }
    for (path, target) in &links {
        let out_path = dest.join(path);
        if let Some(parent) = out_path.parent() {
            fs::create_dir_all(parent).map_err(CacheError::io(parent))?;
        }
        symlink(target, &out_path).map_err(CacheError::io(&out_path))?;
        extracted.push(ArchiveFile {
            path: path.clone(),
            mode: 0o777,
            size: 0,
            digest: None,
            link: Some(target.clone()),
        });
    }
    extracted.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(extracted)
}

/// The name a case-insensitive, normalising file system (APFS, NTFS) would see.
fn folded(path: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    path.nfc().collect::<String>().to_lowercase()
}

/// A relative path of plain components only, normalised to `/` separators.
fn safe_relative_path(raw: &str) -> Result<String, CacheError> {
    let refuse = |reason: &str| CacheError::UnsafeEntry { entry: raw.to_string(), reason: reason.into() };
    let path = Path::new(raw);
    let mut parts = Vec::new();
    for component in path.components() {
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

/// Resolves `target` from the directory holding `link`, following the archive's own links,
/// and refuses anything that leaves the destination.
fn check_link_stays_inside(link: &str, target: &str, links: &BTreeMap<String, String>) -> Result<(), CacheError> {
    let refuse = |reason: String| CacheError::UnsafeEntry { entry: link.to_string(), reason };
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

struct HashingWriter<W> {
    inner: W,
    hasher: blake3::Hasher,
    written: u64,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
#[path = "archive_tests.rs"]
mod tests;
