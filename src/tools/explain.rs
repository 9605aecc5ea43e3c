//! Explaining a miss: compare what a target's key is derived from now with the closest entry
//! the cache holds for that target, and name every difference (input files, toolchain,
//! recipe, environment). Pure: the command gathers the records and the ancestry.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use serde::Serialize;

use crate::cache::{ActionRecord, KeyDerivation};

/// How the closest entry was chosen.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case", tag = "by")]
pub enum ChosenBy {
    /// The same key: nothing differs.
    SameKey,
    /// Built from this commit or an ancestor, `commits_back` commits before it.
    Ancestry { commits_back: usize },
    /// No entry on the commit's history: the one sharing the most inputs.
    InputOverlap { shared_inputs: usize },
}

#[derive(Debug, Clone, Serialize)]
pub struct Closest {
    pub key: String,
    pub provenance: String,
    pub created_at: u64,
    pub chosen_by: ChosenBy,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct InputChanges {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    /// Content or mode changed.
    pub changed: Vec<String>,
}

/// Lines of one side that the other does not have.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct LineChanges {
    pub stored: Vec<String>,
    pub now: Vec<String>,
}

impl LineChanges {
    fn of<'a>(stored: impl IntoIterator<Item = &'a str>, now: impl IntoIterator<Item = &'a str>) -> LineChanges {
        let (stored, now): (Vec<&str>, Vec<&str>) = (stored.into_iter().collect(), now.into_iter().collect());
        let (s, n): (HashSet<&str>, HashSet<&str>) = (stored.iter().copied().collect(), now.iter().copied().collect());
        LineChanges {
            stored: stored.iter().filter(|l| !n.contains(*l)).map(|l| l.to_string()).collect(),
            now: now.iter().filter(|l| !s.contains(*l)).map(|l| l.to_string()).collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.stored.is_empty() && self.now.is_empty()
    }
}

/// A recipe field whose value differs.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct FieldChange {
    pub field: String,
    pub stored: serde_json::Value,
    pub now: serde_json::Value,
}

#[derive(Debug, Clone, Serialize)]
pub struct Differences {
    pub inputs: InputChanges,
    /// Lines of the toolchain fingerprint (`tool: version output`) that differ.
    pub toolchain: LineChanges,
    pub recipe: Vec<FieldChange>,
    /// `NAME=value` (or `NAME`, unset) entries that differ.
    pub env: LineChanges,
    /// The key derivation itself changed (a tbuild upgrade).
    pub key_version: Option<(u32, u32)>,
}

impl Differences {
    pub fn is_empty(&self) -> bool {
        let inputs = &self.inputs;
        inputs.added.is_empty()
            && inputs.removed.is_empty()
            && inputs.changed.is_empty()
            && self.toolchain.is_empty()
            && self.recipe.is_empty()
            && self.env.is_empty()
            && self.key_version.is_none()
    }
}

/// The current side: what the key is derived from now.
pub struct Current<'a> {
    pub key: &'a str,
    pub toolchain: &'a str,
    pub derivation: &'a KeyDerivation,
}

/// Picks the closest of `records` (all of the target, with a derivation): the same key if
/// stored; else the one built from the nearest commit of `ancestry` (the explained commit
/// first, then its ancestors, nearest first), the most shared inputs breaking ties; else
/// the one sharing the most inputs; the newest breaks remaining ties.
pub fn closest<'r>(
    current: &Current,
    records: &'r [ActionRecord],
    ancestry: &[String],
) -> Option<(&'r ActionRecord, ChosenBy)> {
    if let Some(same) = records.iter().find(|r| r.key == current.key) {
        return Some((same, ChosenBy::SameKey));
    }
    let now: HashSet<&String> = current.derivation.inputs.iter().collect();
    let shared =
        |r: &ActionRecord| r.derivation.as_ref().map_or(0, |d| d.inputs.iter().filter(|l| now.contains(l)).count());
    let depth: HashMap<&str, usize> = ancestry.iter().enumerate().map(|(i, sha)| (sha.as_str(), i)).collect();
    let on_history = records
        .iter()
        .filter_map(|r| depth.get(r.provenance.as_str()).map(|d| (r, *d)))
        .min_by_key(|(r, d)| (*d, std::cmp::Reverse(shared(r)), std::cmp::Reverse(r.created_at)));
    if let Some((record, commits_back)) = on_history {
        return Some((record, ChosenBy::Ancestry { commits_back }));
    }
    records
        .iter()
        .max_by_key(|r| (shared(r), r.created_at))
        .map(|r| (r, ChosenBy::InputOverlap { shared_inputs: shared(r) }))
}

/// What differs between `stored` (a record with a derivation) and `current`.
pub fn differences(current: &Current, stored: &ActionRecord) -> Differences {
    let empty = KeyDerivation { key_version: 0, recipe: serde_json::Value::Null, env: vec![], inputs: vec![] };
    let then = stored.derivation.as_ref().unwrap_or(&empty);
    let now = current.derivation;
    let index = |d: &KeyDerivation| -> BTreeMap<String, (String, String)> {
        d.input_lines().map(|l| (l.path.to_string(), (l.mode.to_string(), l.digest.to_string()))).collect()
    };
    let (before, after) = (index(then), index(now));
    let mut inputs = InputChanges::default();
    for (path, value) in &after {
        match before.get(path) {
            None => inputs.added.push(path.clone()),
            Some(old) if old != value => inputs.changed.push(path.clone()),
            Some(_) => {}
        }
    }
    inputs.removed = before.keys().filter(|p| !after.contains_key(*p)).cloned().collect();

    let fields = |v: &serde_json::Value| -> BTreeMap<String, serde_json::Value> {
        v.as_object().map(|o| o.iter().map(|(k, v)| (k.clone(), v.clone())).collect()).unwrap_or_default()
    };
    let (old_fields, new_fields) = (fields(&then.recipe), fields(&now.recipe));
    let names: BTreeSet<&String> = old_fields.keys().chain(new_fields.keys()).collect();
    let recipe = names
        .into_iter()
        .filter_map(|name| {
            let (old, new) = (old_fields.get(name), new_fields.get(name));
            (old != new).then(|| FieldChange {
                field: name.clone(),
                stored: old.cloned().unwrap_or(serde_json::Value::Null),
                now: new.cloned().unwrap_or(serde_json::Value::Null),
            })
        })
        .collect();

    Differences {
        inputs,
        toolchain: LineChanges::of(stored.toolchain.lines(), current.toolchain.lines()),
        recipe,
        env: LineChanges::of(then.env.iter().map(String::as_str), now.env.iter().map(String::as_str)),
        key_version: (then.key_version != now.key_version).then_some((then.key_version, now.key_version)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::KeyInput;
    use crate::recipe::Target;

    fn derivation(files: &[(&str, &str)], env: &[(&str, &str)]) -> KeyDerivation {
        let target: Target = toml::from_str("name = \"t\"\nkind = \"command\"\nartifact_dir = \"o\"").unwrap();
        let inputs: Vec<KeyInput> = files
            .iter()
            .map(|(p, d)| KeyInput { path: p.to_string(), mode: 0o100644, content: d.repeat(16) })
            .collect();
        let env: Vec<(String, Option<String>)> =
            env.iter().map(|(k, v)| (k.to_string(), Some(v.to_string()))).collect();
        KeyDerivation::new(&target, &env, &inputs)
    }

    fn record(key: &str, provenance: &str, created_at: u64, d: KeyDerivation) -> ActionRecord {
        ActionRecord {
            format: 1,
            target: "t".into(),
            key: key.into(),
            artifact_digest: String::new(),
            artifact_size: 0,
            files: vec![],
            build_duration_ms: 0,
            provenance: provenance.into(),
            toolchain: "rustc: 1.0\ncargo: 1.0".into(),
            created_at,
            derivation: Some(d),
        }
    }

    #[test]
    fn names_added_removed_and_changed_inputs_and_env() {
        let now = derivation(&[("a", "1"), ("b", "2"), ("new", "3")], &[("X", "2")]);
        let stored = record("old", "c1", 0, derivation(&[("a", "1"), ("b", "9"), ("gone", "4")], &[("X", "1")]));
        let current = Current { key: "k", toolchain: "rustc: 1.0\ncargo: 1.1", derivation: &now };
        let d = differences(&current, &stored);
        assert_eq!(
            d.inputs,
            InputChanges { added: vec!["new".into()], removed: vec!["gone".into()], changed: vec!["b".into()] }
        );
        assert_eq!(d.env, LineChanges { stored: vec!["X=1".into()], now: vec!["X=2".into()] });
        assert_eq!(d.toolchain, LineChanges { stored: vec!["cargo: 1.0".into()], now: vec!["cargo: 1.1".into()] });
        assert!(d.recipe.is_empty() && d.key_version.is_none());
    }

    #[test]
    fn ancestry_wins_over_overlap_and_the_same_key_over_all() {
        let now = derivation(&[("a", "1"), ("b", "2")], &[]);
        let records = vec![
            record("far", "c3", 5, derivation(&[("a", "1")], &[])),
            record("near", "c1", 1, derivation(&[("a", "9")], &[])),
            record("elsewhere", "zz", 9, derivation(&[("a", "1"), ("b", "2")], &[])),
        ];
        let ancestry: Vec<String> = ["c0", "c1", "c2", "c3"].iter().map(|s| s.to_string()).collect();
        let current = Current { key: "k", toolchain: "", derivation: &now };
        let (r, by) = closest(&current, &records, &ancestry).unwrap();
        assert_eq!((r.key.as_str(), by), ("near", ChosenBy::Ancestry { commits_back: 1 }));
        let (r, by) = closest(&current, &records, &[]).unwrap();
        assert_eq!((r.key.as_str(), by), ("elsewhere", ChosenBy::InputOverlap { shared_inputs: 2 }));
        let current = Current { key: "far", toolchain: "", derivation: &now };
        assert_eq!(closest(&current, &records, &ancestry).unwrap().1, ChosenBy::SameKey);
    }
}
