//! The `key --range` memo: a commit's tree id -> the keys `key --range` derived for it, so a
//! warm range costs a revwalk and one small read per commit instead of listing, selecting and
//! hashing every tree again.
//!
//! Only `key --range` uses it, on purpose: its keys leave toolchains out, are never printed and
//! never looked up in the cache, only compared with the parent commit's. A forged entry can
//! therefore falsify the rebuild statistics it prints (as a forged blob-digest record could),
//! but it cannot make tbuild restore anything.
//!
//! An entry is named by blake3 over the run's context (everything besides the tree that decides
//! the keys: memo format, tbuild and key versions, the crate-graph format, the `--recipe` file's
//! content, the `--targets` selection) and the tree id, and repeats both inside, so an entry
//! copied to another name is ignored. The one input that comes from neither, the values of the
//! targets' `key_env` variables, is recorded as a digest per variable and compared with the
//! environment on every read: an entry written under other values is a miss.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{CacheError, LocalCache};

const FORMAT: u32 = 1;
const KEY_HEX: usize = 64;

/// Target -> key.
pub type RangeKeys = BTreeMap<String, String>;

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    format: u32,
    context: String,
    tree: String,
    /// `key_env` variable -> blake3 of its value (`None`: unset) when the keys were derived.
    env: BTreeMap<String, Option<String>>,
    keys: RangeKeys,
}

/// The memo as one run of `key --range` sees it: one context, many trees.
pub struct RangeKeyMemo<'a> {
    cache: &'a LocalCache,
    context: String,
}

impl<'a> RangeKeyMemo<'a> {
    /// `parts`: everything besides the tree that decides the keys (see the module doc).
    pub fn new(cache: &'a LocalCache, parts: &[&[u8]]) -> RangeKeyMemo<'a> {
        let mut hasher = blake3::Hasher::new();
        hasher.update(format!("tbuild-range-keys-v{FORMAT}\0").as_bytes());
        for part in parts {
            hasher.update(&(part.len() as u64).to_le_bytes());
            hasher.update(part);
        }
        RangeKeyMemo { cache, context: hasher.finalize().to_hex().to_string() }
    }

    /// The keys memoised for `tree` (git tree id, hex), if an entry exists, is well-formed,
    /// belongs to this context and tree, and was written under the current `key_env` values.
    pub fn get(&self, tree: &str) -> Option<RangeKeys> {
        let entry: Entry = self.cache.get_json(&self.path(tree))?;
        let valid = entry.format == FORMAT
            && entry.context == self.context
            && entry.tree == tree
            && entry.keys.iter().all(|(name, key)| !name.is_empty() && is_key(key))
            && entry.env.iter().all(|(name, digest)| *digest == env_digest(name));
        if !valid {
            tracing::warn!("ignoring a key --range memo entry that does not fit tree {tree}");
            return None;
        }
        Some(entry.keys)
    }

    /// Records `keys` of `tree`, derived with the `key_env` variables `env` (names).
    pub fn put<'n>(
        &self,
        tree: &str,
        keys: &RangeKeys,
        env: impl IntoIterator<Item = &'n String>,
    ) -> Result<(), CacheError> {
        let env = env.into_iter().map(|name| (name.clone(), env_digest(name))).collect();
        let entry =
            Entry { format: FORMAT, context: self.context.clone(), tree: tree.to_string(), env, keys: keys.clone() };
        self.cache.put_json(&self.path(tree), &entry)
    }

    fn path(&self, tree: &str) -> PathBuf {
        let name = blake3::hash(format!("{}\0{tree}", self.context).as_bytes()).to_hex();
        self.cache.versioned_dir().join("memo").join("range-keys").join(&name[..2]).join(format!("{name}.json"))
    }
}

fn env_digest(name: &str) -> Option<String> {
    std::env::var_os(name).map(|v| blake3::hash(v.as_encoded_bytes()).to_hex().to_string())
}

fn is_key(key: &str) -> bool {
    key.len() == KEY_HEX && key.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(key: &str) -> RangeKeys {
        [("app".to_string(), key.to_string())].into()
    }

    #[test]
    fn round_trip_per_context_and_tree() {
        let dir = tempfile::tempdir().unwrap();
        let cache = LocalCache::open(dir.path()).unwrap();
        let memo = RangeKeyMemo::new(&cache, &[b"recipe-a"]);
        let tree = "1".repeat(40);
        assert_eq!(memo.get(&tree), None);
        memo.put(&tree, &keys(&"a".repeat(64)), []).unwrap();
        assert_eq!(memo.get(&tree), Some(keys(&"a".repeat(64))));
        assert_eq!(memo.get(&"2".repeat(40)), None, "another tree");
        assert_eq!(RangeKeyMemo::new(&cache, &[b"recipe-b"]).get(&tree), None, "another context");
        // Length-prefixed parts: a split in another place is another context.
        assert_eq!(RangeKeyMemo::new(&cache, &[b"recipe", b"-a"]).get(&tree), None);
    }

    #[test]
    fn malformed_or_misplaced_entries_are_misses() {
        let dir = tempfile::tempdir().unwrap();
        let cache = LocalCache::open(dir.path()).unwrap();
        let memo = RangeKeyMemo::new(&cache, &[b"ctx"]);
        let (one, two) = ("1".repeat(40), "2".repeat(40));
        memo.put(&one, &keys(&"a".repeat(64)), []).unwrap();
        // An entry copied to another tree's name names its own tree: ignored.
        std::fs::create_dir_all(memo.path(&two).parent().unwrap()).unwrap();
        std::fs::copy(memo.path(&one), memo.path(&two)).unwrap();
        assert_eq!(memo.get(&two), None);
        // Not a key, not JSON, a link: all misses.
        memo.put(&two, &keys("not-a-key"), []).unwrap();
        assert_eq!(memo.get(&two), None);
        std::fs::write(memo.path(&two), b"{ torn").unwrap();
        assert_eq!(memo.get(&two), None);
        std::fs::remove_file(memo.path(&two)).unwrap();
        std::os::unix::fs::symlink(memo.path(&one), memo.path(&two)).unwrap();
        assert_eq!(memo.get(&two), None, "read through a link");
        assert!(memo.get(&one).is_some());
    }

    #[test]
    fn an_entry_written_under_other_key_env_values_is_a_miss() {
        let dir = tempfile::tempdir().unwrap();
        let cache = LocalCache::open(dir.path()).unwrap();
        let memo = RangeKeyMemo::new(&cache, &[b"ctx"]);
        let tree = "3".repeat(40);
        let var = "TBUILD_RANGE_MEMO_TEST_VAR".to_string();
        // SAFETY: no other test reads or writes this variable.
        unsafe { std::env::set_var(&var, "one") };
        memo.put(&tree, &keys(&"b".repeat(64)), [&var]).unwrap();
        assert!(memo.get(&tree).is_some());
        unsafe { std::env::set_var(&var, "two") };
        assert_eq!(memo.get(&tree), None, "value changed");
        unsafe { std::env::remove_var(&var) };
        assert_eq!(memo.get(&tree), None, "unset");
        unsafe { std::env::set_var(&var, "one") };
        assert!(memo.get(&tree).is_some());
    }
}
