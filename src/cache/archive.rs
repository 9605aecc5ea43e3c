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
//! hard links, device nodes and other special entries, and every entry that breaks the
//! layout rules of `entry_layout` (`..`, absolute paths, duplicates, names that collide once
//! case-folded, anything below a symlink or a file, links that resolve outside the
//! destination). Each entry is written through `no_follow::Beneath`, which never follows a
//! link, and links are created last. It stops at the limits the action record implies
//! (entry count and bytes), so a small archive cannot expand into a full disk (a
//! decompression bomb).

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::entry_layout::{EntryLayout, Kind, Refusal};
use super::no_follow::{Beneath, open_regular};
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

/// blake3 of a cache file, streaming; it must be a regular file (see `no_follow`).
pub(crate) fn digest_file(path: &Path) -> io::Result<blake3::Hash> {
    let mut hasher = blake3::Hasher::new();
    hasher.update_reader(open_regular(path)?.0)?;
    Ok(hasher.finalize())
}

/// Verifies `archive` against `expected_digest` (`None`: the caller just did), then extracts
/// it into `dest`, an empty dir the caller created and renames into place afterwards.
/// Returns the files extracted, with their digests.
///
/// Every entry is checked against the rules of [`EntryLayout`] before it is written, and
/// written through [`Beneath`], which opens no link: links are created last, and nothing
/// is ever written through one.
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
    let (file, _) = open_regular(archive).map_err(CacheError::io(archive))?;
    let decoder = zstd::Decoder::new(file).map_err(corrupt)?;
    let mut tar = tar::Archive::new(decoder);
    let beneath = Beneath::open(dest).map_err(CacheError::io(dest))?;
    // Writing into dest: a link or file in the way is the archive's doing (a refusal).
    let write_err = |rel: &str| {
        let path = beneath.path(rel);
        move |source: io::Error| match source.kind() {
            io::ErrorKind::NotADirectory | io::ErrorKind::AlreadyExists => {
                CacheError::UnsafeEntry { entry: rel_string(&path, dest), reason: source.to_string() }
            }
            _ => CacheError::Io { path, source },
        }
    };
    let mut extracted = Vec::new();
    let mut layout = EntryLayout::default();
    let (mut entries, mut bytes) = (0usize, 0u64);
    let mut buf = vec![0u8; 256 * 1024];
    for entry in tar.entries().map_err(corrupt)? {
        let mut entry = entry.map_err(corrupt)?;
        let raw_path = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let refuse = |reason: &str| CacheError::UnsafeEntry { entry: raw_path.clone(), reason: reason.into() };
        entries += 1;
        if entries > limits.max_entries {
            let reason = format!("it holds more than the {} entries its record lists", limits.max_entries);
            return Err(CacheError::CorruptArchive { path: archive.to_path_buf(), reason });
        }
        let kind = entry.header().entry_type();
        match kind {
            tar::EntryType::Directory => {
                let rel = layout.add(&raw_path, Kind::Dir, None).map_err(unsafe_entry)?;
                beneath.create_dirs(&rel).map_err(write_err(&rel))?;
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let rel = layout.add(&raw_path, Kind::File, None).map_err(unsafe_entry)?;
                let mode = normalised_mode(entry.header().mode().map_err(corrupt)?);
                let mut out = beneath.create_file(&rel, 0o600).map_err(write_err(&rel))?;
                let out_path = beneath.path(&rel);
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
                    path: rel,
                    mode,
                    size,
                    digest: Some(hasher.finalize().to_hex().to_string()),
                    link: None,
                });
            }
            tar::EntryType::Symlink => {
                let target = entry.link_name_bytes().ok_or_else(|| refuse("symlink without a target"))?;
                let target =
                    String::from_utf8(target.into_owned()).map_err(|_| refuse("symlink target is not UTF-8"))?;
                layout.add(&raw_path, Kind::Link, Some(&target)).map_err(unsafe_entry)?;
            }
            tar::EntryType::Link => return Err(refuse("hard links are not allowed in artifacts")),
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                return Err(refuse("device nodes and fifos are not allowed in artifacts"));
            }
            other => return Err(refuse(&format!("unsupported entry type {other:?}"))),
        }
    }
    layout.check_links().map_err(unsafe_entry)?;
    for (path, target) in layout.links() {
        beneath.symlink(path, target).map_err(write_err(path))?;
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

fn unsafe_entry(refusal: Refusal) -> CacheError {
    CacheError::UnsafeEntry { entry: refusal.entry, reason: refusal.reason }
}

fn rel_string(path: &Path, dest: &Path) -> String {
    path.strip_prefix(dest).unwrap_or(path).to_string_lossy().into_owned()
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
