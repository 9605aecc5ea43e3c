//! The built-in recipes for tasker-core, one per layout era of its history, and the
//! detection of a tree's era from the paths it holds. The recipes are TOML files next to
//! this module, in the same format as a user's `tbuild.toml`.

use std::collections::BTreeMap;

use super::{Recipe, RecipeError};
use crate::source::Entry;

/// A layout era of tasker-core.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// `crates/tasker-*` (since 2026-03-07).
    Crates,
}

impl Layout {
    pub const ALL: [Layout; 1] = [Layout::Crates];
}

impl std::fmt::Display for Layout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Layout::Crates => "crates/",
        })
    }
}

/// Recognises the era from marker paths. The order matters: newer layouts first.
pub fn detect_layout(entries: &BTreeMap<String, Entry>) -> Result<Layout, RecipeError> {
    let has = |path: &str| entries.contains_key(path);
    if !has("Cargo.toml") {
        return Err(RecipeError::UnknownLayout { reason: "there is no Cargo.toml at its root".into() });
    }
    if has("crates/tasker-orchestration/Cargo.toml") && has("crates/tasker-ctl/Cargo.toml") {
        return Ok(Layout::Crates);
    }
    Err(RecipeError::UnknownLayout {
        reason: "it has neither crates/tasker-orchestration nor any earlier tasker-core layout".into(),
    })
}

pub fn recipe(layout: Layout) -> Recipe {
    let (name, text) = match layout {
        Layout::Crates => ("crates-layout.toml", include_str!("builtin/crates-layout.toml")),
    };
    Recipe::parse(text, name).expect("built-in recipes are valid (checked by tests)")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(paths: &[&str]) -> BTreeMap<String, Entry> {
        paths.iter().map(|p| (p.to_string(), Entry::File { executable: false, blob: None })).collect()
    }

    #[test]
    fn every_builtin_recipe_parses() {
        for layout in Layout::ALL {
            assert!(!recipe(layout).targets.is_empty());
        }
    }

    #[test]
    fn layouts_are_detected_from_marker_paths() {
        let current = tree(&["Cargo.toml", "crates/tasker-orchestration/Cargo.toml", "crates/tasker-ctl/Cargo.toml"]);
        assert_eq!(detect_layout(&current).unwrap(), Layout::Crates);
        let err = detect_layout(&tree(&["Cargo.toml", "src/lib.rs"])).unwrap_err().to_string();
        assert!(err.contains("tbuild.toml"), "{err}");
        let err = detect_layout(&tree(&["package.json"])).unwrap_err().to_string();
        assert!(err.contains("no Cargo.toml"), "{err}");
    }
}
