//! What a key was derived from, kept in its action record so that `tbuild explain` can say
//! why a later key of the same target differs: the key's components but the toolchain
//! (already a record field), with each input as one short line.
//!
//! Size: an input line is its path plus 24 bytes, so a tasker-core binary target with
//! 1,500 inputs adds about 110 KB to its record; records stay single files that every other
//! part of tbuild (gc, verify, bundles) handles without knowing about this field. Content
//! digests are cut to 16 hex digits (64 bits): enough to tell an edit from no edit, and the
//! key itself still covers the full digests.

use serde::{Deserialize, Serialize};

use crate::key::{KEY_VERSION, KeyInput};
use crate::recipe::Target;

/// Hex digits of an input's content digest kept in a record.
pub const INPUT_DIGEST_CHARS: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyDerivation {
    /// [`KEY_VERSION`] when the key was derived.
    pub key_version: u32,
    /// The resolved target, as it went into the key.
    pub recipe: serde_json::Value,
    /// `NAME=value`, or `NAME` when unset, for each variable that fed the key, sorted.
    pub env: Vec<String>,
    /// `<digest16> <octal mode> <path>` per input, sorted by path. A symlink's digest is
    /// the blake3 of its target.
    pub inputs: Vec<String>,
}

/// One input of a [`KeyDerivation`], parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputLine<'a> {
    pub path: &'a str,
    pub mode: &'a str,
    pub digest: &'a str,
}

impl KeyDerivation {
    pub fn new(target: &Target, key_env: &[(String, Option<String>)], inputs: &[KeyInput]) -> KeyDerivation {
        KeyDerivation {
            key_version: KEY_VERSION,
            recipe: serde_json::to_value(target).expect("targets serialise"),
            env: key_env
                .iter()
                .map(|(name, value)| match value {
                    Some(value) => format!("{name}={value}"),
                    None => name.clone(),
                })
                .collect(),
            inputs: inputs.iter().map(input_line).collect(),
        }
    }

    /// The inputs, parsed; lines that do not parse (a damaged record) are skipped.
    pub fn input_lines(&self) -> impl Iterator<Item = InputLine<'_>> {
        self.inputs.iter().filter_map(|line| {
            let mut parts = line.splitn(3, ' ');
            let (digest, mode, path) = (parts.next()?, parts.next()?, parts.next()?);
            Some(InputLine { path, mode, digest })
        })
    }
}

fn input_line(input: &KeyInput) -> String {
    // Files carry their blake3 hex; symlinks their target, hashed here so every line has
    // the same shape.
    let digest = if input.mode == 0o120000 {
        blake3::hash(input.content.as_bytes()).to_hex().to_string()
    } else {
        input.content.clone()
    };
    format!("{} {:o} {}", &digest[..INPUT_DIGEST_CHARS.min(digest.len())], input.mode, input.path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_lines_round_trip_paths_with_spaces() {
        let inputs = vec![
            KeyInput { path: "a b/c.rs".into(), mode: 0o100644, content: "0123456789abcdef0123".into() },
            KeyInput { path: "link".into(), mode: 0o120000, content: "../x".into() },
        ];
        let target: Target = toml::from_str("name = \"t\"\nkind = \"command\"\nartifact_dir = \"o\"").unwrap();
        let d = KeyDerivation::new(&target, &[("A".into(), Some("1".into())), ("B".into(), None)], &inputs);
        assert_eq!(d.env, ["A=1", "B"]);
        let lines: Vec<_> = d.input_lines().collect();
        assert_eq!(lines[0], InputLine { path: "a b/c.rs", mode: "100644", digest: "0123456789abcdef" });
        assert_eq!(lines[1].mode, "120000");
        assert_eq!(lines[1].digest.len(), INPUT_DIGEST_CHARS);
    }
}
