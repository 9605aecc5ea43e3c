use super::*;
use std::os::unix::fs::symlink;

/// Raw tar entries, written without the tar crate's path checks so that hostile archives can
/// be crafted. Each case is named after its attack.
pub(crate) enum Raw<'a> {
    File(&'a str, &'a [u8]),
    Symlink(&'a str, &'a str),
    HardLink(&'a str, &'a str),
    Fifo(&'a str),
}

pub(crate) fn craft(entries: &[Raw]) -> Vec<u8> {
    let mut tar_bytes = Vec::new();
    for entry in entries {
        let mut header = tar::Header::new_old();
        let (name, kind, link, data): (&str, tar::EntryType, Option<&str>, &[u8]) = match entry {
            Raw::File(n, d) => (n, tar::EntryType::Regular, None, d),
            Raw::Symlink(n, t) => (n, tar::EntryType::Symlink, Some(t), b""),
            Raw::HardLink(n, t) => (n, tar::EntryType::Link, Some(t), b""),
            Raw::Fifo(n) => (n, tar::EntryType::Fifo, None, b""),
        };
        let old = header.as_old_mut();
        old.name[..name.len()].copy_from_slice(name.as_bytes());
        if let Some(link) = link {
            old.linkname[..link.len()].copy_from_slice(link.as_bytes());
        }
        header.set_entry_type(kind);
        header.set_mode(0o644);
        header.set_size(data.len() as u64);
        header.set_cksum();
        tar_bytes.extend_from_slice(header.as_bytes());
        tar_bytes.extend_from_slice(data);
        let pad = (512 - data.len() % 512) % 512;
        tar_bytes.extend(std::iter::repeat_n(0u8, pad));
    }
    tar_bytes.extend(std::iter::repeat_n(0u8, 1024));
    zstd::encode_all(&tar_bytes[..], 3).unwrap()
}

fn unpack_bytes(bytes: &[u8]) -> (tempfile::TempDir, Result<Vec<ArchiveFile>, CacheError>) {
    let root = tempfile::tempdir().unwrap();
    let archive = root.path().join("a.tar.zst");
    fs::write(&archive, bytes).unwrap();
    let digest = blake3::hash(bytes).to_hex().to_string();
    let dest = root.path().join("sandbox/dest");
    fs::create_dir_all(&dest).unwrap();
    let result = unpack(&archive, Some(&digest), &dest, UnpackLimits::UNBOUNDED);
    (root, result)
}

/// Every file under `root` except the archive itself and the destination dir.
fn outside_dest(root: &Path) -> Vec<PathBuf> {
    walkdir::WalkDir::new(root)
        .into_iter()
        .map(|e| e.unwrap().path().to_path_buf())
        .filter(|p| p.is_file() && !p.ends_with("a.tar.zst") && !p.starts_with(root.join("sandbox/dest")))
        .collect()
}

#[test]
fn hostile_archives_are_refused_and_write_nothing_outside() {
    let cases: Vec<(&str, Vec<Raw>, &str)> = vec![
        ("parent_dir_traversal", vec![Raw::File("../x", b"evil")], "`..`"),
        ("nested_parent_dir_traversal", vec![Raw::File("a/../../x", b"evil")], "`..`"),
        ("absolute_path", vec![Raw::File("/tmp/tbuild-evil-abs", b"evil")], "absolute"),
        ("symlink_escapes_with_dotdot", vec![Raw::Symlink("link", "../../outside")], "escapes"),
        ("symlink_absolute_target", vec![Raw::Symlink("link", "/etc/passwd")], "absolute"),
        ("symlink_escapes_through_other_link", vec![Raw::Symlink("up", ".."), Raw::Symlink("link", "up/x")], "escapes"),
        ("symlink_to_root_then_up", vec![Raw::Symlink("d", "."), Raw::Symlink("e", "d/..")], "escapes"),
        ("write_through_symlink", vec![Raw::Symlink("dir", "sub"), Raw::File("dir/x", b"x")], "below the symlink"),
        ("file_then_link_above_it", vec![Raw::File("dir/x", b"x"), Raw::Symlink("dir", "sub")], "below it"),
        (
            "chain_of_links_through_a_link",
            vec![Raw::Symlink("a/b", ".."), Raw::Symlink("a/b/c", "../.."), Raw::File("a/b/c/d/e", b"evil")],
            "below the symlink a/b",
        ),
        ("file_below_a_file", vec![Raw::File("a", b"1"), Raw::File("a/b", b"2")], "below the file"),
        ("hard_link", vec![Raw::File("a", b"a"), Raw::HardLink("b", "a")], "hard links"),
        ("hard_link_outside", vec![Raw::HardLink("b", "/etc/passwd")], "hard links"),
        ("fifo", vec![Raw::Fifo("pipe")], "device"),
        ("duplicate_entry", vec![Raw::File("a", b"1"), Raw::File("a", b"2")], "duplicate"),
        ("symlink_loop", vec![Raw::Symlink("a", "b"), Raw::Symlink("b", "a")], "loop"),
        ("names_differ_by_case", vec![Raw::File("bin/Tool", b"1"), Raw::File("bin/tool", b"2")], "case-insensitive"),
        (
            "names_differ_by_normalisation",
            vec![Raw::File("caf\u{e9}", b"1"), Raw::File("cafe\u{301}", b"2")],
            "Unicode",
        ),
        ("link_and_file_differ_by_case", vec![Raw::File("lib.so", b"1"), Raw::Symlink("LIB.so", "lib.so")], "case"),
    ];
    for (name, entries, expect) in cases {
        let (root, result) = unpack_bytes(&craft(&entries));
        let err = result.expect_err(name).to_string();
        assert!(err.contains(expect), "{name}: {err}");
        assert_eq!(outside_dest(root.path()), Vec::<PathBuf>::new(), "{name} wrote outside");
        assert_eq!(crate::cache::first_escape(&root.path().join("sandbox/dest")), None, "{name} left an escape");
        assert!(!Path::new("/tmp/tbuild-evil-abs").exists());
    }
}

/// A small archive whose contents expand far beyond what its record lists.
#[test]
fn decompression_bomb_stops_at_the_record_size() {
    let zeros = vec![0u8; 64 << 20];
    let bytes = craft(&[Raw::File("bomb", &zeros)]);
    assert!(bytes.len() < 64 << 10, "64 MiB of zeros compress to {} bytes", bytes.len());
    let root = tempfile::tempdir().unwrap();
    let archive = root.path().join("a.tar.zst");
    fs::write(&archive, &bytes).unwrap();
    let dest = root.path().join("dest");
    fs::create_dir_all(&dest).unwrap();
    let record = [ArchiveFile { path: "bomb".into(), mode: 0o644, size: 1 << 20, digest: None, link: None }];
    let err = unpack(&archive, None, &dest, UnpackLimits::for_files(&record)).unwrap_err().to_string();
    assert!(err.contains("expands beyond the 1048576 bytes"), "{err}");
    let written = fs::metadata(dest.join("bomb")).map(|m| m.len()).unwrap_or(0);
    assert!(written <= 1 << 20, "stopped at the limit, wrote {written}");
}

#[test]
fn more_entries_than_the_record_lists_are_refused() {
    let files: Vec<String> = (0..10_000).map(|i| format!("d{}/f{i}", i % 100)).collect();
    let entries: Vec<Raw> = files.iter().map(|f| Raw::File(f, b"x")).collect();
    let bytes = craft(&entries);
    let listed: Vec<ArchiveFile> =
        files.iter().map(|f| ArchiveFile { path: f.clone(), mode: 0o644, size: 1, digest: None, link: None }).collect();
    // 10,000 entries restore when the record lists them all...
    let (_root, result) = unpack_bytes(&bytes);
    assert_eq!(result.unwrap().len(), 10_000);
    // ...and are refused past the count the record gives.
    let root = tempfile::tempdir().unwrap();
    let archive = root.path().join("a.tar.zst");
    fs::write(&archive, &bytes).unwrap();
    let err = unpack(&archive, None, root.path(), UnpackLimits::for_files(&listed[..9_999])).unwrap_err();
    assert!(err.to_string().contains("more than the 9999 entries"), "{err}");
}

#[test]
fn inside_symlinks_are_restored_as_links() {
    let bytes = craft(&[
        Raw::File("dir/lib.so", b"elf"),
        Raw::Symlink("dir/lib.so.1", "lib.so"),
        Raw::Symlink("top", "dir/lib.so"),
    ]);
    let (root, result) = unpack_bytes(&bytes);
    let files = result.unwrap();
    assert_eq!(files.len(), 3);
    let dest = root.path().join("sandbox/dest");
    assert_eq!(fs::read_link(dest.join("dir/lib.so.1")).unwrap(), Path::new("lib.so"));
    assert_eq!(fs::read(dest.join("top")).unwrap(), b"elf");
}

#[test]
fn flipped_byte_is_reported_as_corrupt() {
    let mut bytes = craft(&[Raw::File("a", b"content")]);
    let digest = blake3::hash(&bytes).to_hex().to_string();
    let n = bytes.len();
    bytes[n / 2] ^= 0x01;
    let root = tempfile::tempdir().unwrap();
    let archive = root.path().join("a.tar.zst");
    fs::write(&archive, &bytes).unwrap();
    let err = unpack(&archive, Some(&digest), root.path(), UnpackLimits::UNBOUNDED).unwrap_err();
    assert!(matches!(err, CacheError::CorruptArchive { .. }), "{err}");
}

fn pack_dir(src: &Path, scratch: &Path) -> (PackedArchive, Vec<u8>) {
    let mut files = BTreeMap::new();
    for entry in walkdir::WalkDir::new(src).sort_by_file_name() {
        let entry = entry.unwrap();
        if !entry.file_type().is_dir() {
            let rel = entry.path().strip_prefix(src).unwrap().to_str().unwrap().to_string();
            files.insert(rel, entry.path().to_path_buf());
        }
    }
    let dest = scratch.join(format!("out-{}.tar.zst", files.len()));
    let (packed, file) = pack(&files, AtomicFile::create(scratch, &dest).unwrap()).unwrap();
    file.commit().unwrap();
    (packed, fs::read(&dest).unwrap())
}

#[test]
fn packing_is_deterministic_and_round_trips() {
    let scratch = tempfile::tempdir().unwrap();
    let src = scratch.path().join("src");
    fs::create_dir_all(src.join("bin")).unwrap();
    fs::write(src.join("bin/tool"), b"#!/bin/sh\necho hi\n").unwrap();
    fs::set_permissions(src.join("bin/tool"), fs::Permissions::from_mode(0o700)).unwrap();
    fs::write(src.join("data.txt"), vec![7u8; 200_000]).unwrap();
    fs::set_permissions(src.join("data.txt"), fs::Permissions::from_mode(0o600)).unwrap();
    symlink("bin/tool", src.join("tool")).unwrap();
    let (first, first_bytes) = pack_dir(&src, scratch.path());

    // Different mtimes and modes that normalise the same must not change a byte.
    let later = std::time::SystemTime::now() + std::time::Duration::from_secs(3600);
    File::options().write(true).open(src.join("data.txt")).unwrap().set_modified(later).unwrap();
    fs::set_permissions(src.join("data.txt"), fs::Permissions::from_mode(0o640)).unwrap();
    let (second, second_bytes) = pack_dir(&src, scratch.path());
    assert_eq!(first.digest, second.digest);
    assert_eq!(first_bytes, second_bytes);
    assert_eq!(first.digest, blake3::hash(&first_bytes).to_hex().to_string());

    let dest = scratch.path().join("restored");
    fs::create_dir_all(&dest).unwrap();
    let restored = unpack(
        &scratch.path().join("out-3.tar.zst"),
        Some(&first.digest),
        &dest,
        UnpackLimits::for_files(&first.files),
    )
    .unwrap();
    assert_eq!(restored, first.files);
    assert_eq!(fs::metadata(dest.join("bin/tool")).unwrap().permissions().mode() & 0o777, 0o755);
    assert_eq!(fs::metadata(dest.join("data.txt")).unwrap().permissions().mode() & 0o777, 0o644);
    assert_eq!(fs::read_link(dest.join("tool")).unwrap(), Path::new("bin/tool"));
}
