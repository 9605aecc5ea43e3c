//! Writing a bundle: members are streamed into a tar while their digests and the digest of
//! the whole stream so far are computed; the file appears at its destination atomically.

use std::collections::BTreeMap;
use std::io::{self, BufWriter, Read, Write};
use std::path::Path;

use super::{BundleError, BundleManifest, DIGEST_MEMBER, MANIFEST, MemberDigest};
use crate::cache::{AtomicFile, CacheError};

pub struct BundleWriter {
    tar: tar::Builder<Hashing<BufWriter<AtomicFile>>>,
    members: BTreeMap<String, MemberDigest>,
    dest: std::path::PathBuf,
}

impl BundleWriter {
    /// Starts a bundle that lands at `dest` when finished (a temp file next to it until then).
    pub fn create(dest: &Path) -> Result<BundleWriter, BundleError> {
        // Absolute, so that the temp file and the final rename share a named directory.
        let dest = std::path::absolute(dest).map_err(BundleError::io(dest))?;
        let parent = dest.parent().unwrap_or(Path::new("/")).to_path_buf();
        let file = AtomicFile::create(&parent, &dest).map_err(|e| cache_err(e.into()))?;
        let hashing = Hashing { inner: BufWriter::new(file), hasher: blake3::Hasher::new() };
        let mut tar = tar::Builder::new(hashing);
        tar.mode(tar::HeaderMode::Deterministic);
        Ok(BundleWriter { tar, members: BTreeMap::new(), dest })
    }

    /// Appends a member of `size` bytes read from `content`, once per name.
    pub fn append(&mut self, name: &str, size: u64, content: impl Read) -> Result<(), BundleError> {
        if self.members.contains_key(name) {
            return Ok(());
        }
        let mut reader = HashingReader { inner: content, hasher: blake3::Hasher::new(), read: 0 };
        let mut header = tar::Header::new_ustar();
        header.set_size(size);
        header.set_mode(0o644);
        header.set_mtime(0);
        header.set_entry_type(tar::EntryType::Regular);
        self.tar.append_data(&mut header, name, &mut reader).map_err(BundleError::io(&self.dest))?;
        if reader.read != size {
            return Err(BundleError::Io {
                path: self.dest.clone(),
                source: io::Error::other(format!("{name} changed size while it was bundled")),
            });
        }
        let digest = MemberDigest { size, blake3: reader.hasher.finalize().to_hex().to_string() };
        self.members.insert(name.to_string(), digest);
        Ok(())
    }

    pub fn append_file(&mut self, name: &str, path: &Path) -> Result<(), BundleError> {
        let file = std::fs::File::open(path).map_err(BundleError::io(path))?;
        let size = file.metadata().map_err(BundleError::io(path))?.len();
        self.append(name, size, file)
    }

    /// Writes the manifest (with every member's digest) and the digest member, and moves
    /// the file into place. Returns the bundle's size.
    pub fn finish(mut self, mut manifest: BundleManifest) -> Result<u64, BundleError> {
        manifest.members = std::mem::take(&mut self.members);
        let json = serde_json::to_vec_pretty(&manifest).expect("manifests serialise");
        self.append(MANIFEST, json.len() as u64, json.as_slice())?;
        let whole = format!("{}\n", self.tar.get_ref().hasher.finalize().to_hex());
        self.append(DIGEST_MEMBER, whole.len() as u64, whole.as_bytes())?;
        let dest = self.dest.clone();
        let hashing = self.tar.into_inner().map_err(BundleError::io(&dest))?;
        let mut file =
            hashing.inner.into_inner().map_err(|e| BundleError::Io { path: dest.clone(), source: e.into_error() })?;
        file.flush().map_err(BundleError::io(&dest))?;
        let size = file.file().metadata().map_err(BundleError::io(&dest))?.len();
        // Temp files are private (0600); a bundle is meant to be copied around.
        let mut permissions = file.file().metadata().map_err(BundleError::io(&dest))?.permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o644);
        file.file().set_permissions(permissions).map_err(BundleError::io(&dest))?;
        file.commit().map_err(|e| cache_err(e.into()))?;
        Ok(size)
    }
}

fn cache_err(err: CacheError) -> BundleError {
    match err {
        CacheError::Io { path, source } => BundleError::Io { path, source },
        other => BundleError::Io { path: Default::default(), source: io::Error::other(other.to_string()) },
    }
}

struct Hashing<W> {
    inner: W,
    hasher: blake3::Hasher,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

struct HashingReader<R> {
    inner: R,
    hasher: blake3::Hasher,
    read: u64,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.read += n as u64;
        Ok(n)
    }
}
