//! `tbuild cache du`: the cache dir's apparent size by kind of content.

use std::fs;
use std::path::Path;

use super::LocalCache;
use super::gc::dir_size;

/// Kinds in the order `du` prints them.
pub const KINDS: [&str; 9] =
    ["records", "archives", "memo", "logs", "temp", "git mirrors", "cargo target dirs", "work dirs", "other"];

/// Bytes per kind (every kind present, zero when empty), in [`KINDS`] order.
pub fn usage(cache: &LocalCache) -> Vec<(&'static str, u64)> {
    let mut sizes: Vec<(&'static str, u64)> = KINDS.iter().map(|k| (*k, 0)).collect();
    let mut add = |kind: &str, bytes: u64| {
        sizes.iter_mut().find(|(k, _)| *k == kind).expect("a known kind").1 += bytes;
    };
    for (name, path) in children(cache.root()) {
        if path == cache.versioned_dir() {
            for (name, path) in children(&path) {
                let kind = match name.as_str() {
                    "actions" => "records",
                    "blobs" => "archives",
                    "memo" | "graphs" => "memo",
                    "logs" => "logs",
                    "tmp" => "temp",
                    _ => "other",
                };
                add(kind, dir_size(&path));
            }
        } else if name == "repos" {
            for (_, repo) in children(&path) {
                for (name, path) in children(&repo) {
                    let kind = match name.as_str() {
                        "mirror.git" => "git mirrors",
                        "cargo-target" => "cargo target dirs",
                        "work" | "checkout-state.json" => "work dirs",
                        _ => "other",
                    };
                    add(kind, dir_size(&path));
                }
            }
        } else {
            add("other", dir_size(&path));
        }
    }
    sizes
}

fn children(dir: &Path) -> Vec<(String, std::path::PathBuf)> {
    let Ok(entries) = fs::read_dir(dir) else { return Vec::new() };
    let mut found: Vec<_> =
        entries.flatten().map(|e| (e.file_name().to_string_lossy().into_owned(), e.path())).collect();
    found.sort();
    found
}
