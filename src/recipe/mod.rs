//! Recipes: what targets a repository has and how each is built, as data.
//!
//! A recipe comes from `--recipe FILE`, else a `tbuild.toml` at the root of the tree, else the
//! built-in tasker-core recipe matching the tree's layout. The format is documented in the
//! README ("Recipe format"); [`Target::resolved`] fills in what each kind derives by default,
//! and the resolved form is what goes into a key.

mod builtin;
pub mod lock_slice;
mod manifest_graph;
mod workspace;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use builtin::{Layout, detect_layout};
pub use workspace::{GRAPH_VERSION, Skeleton, WorkspaceGraph, WorkspacePackage, workspace_graph};

use crate::source::Tree;

/// Environment variables whose values feed every cargo-backed key by default: they change
/// what rustc emits. Recipes add more with `key_env`.
pub const DEFAULT_KEY_ENV: &[&str] =
    &["RUSTFLAGS", "CARGO_ENCODED_RUSTFLAGS", "CARGO_BUILD_RUSTFLAGS", "CARGO_BUILD_TARGET"];

/// Inputs of every target, relative to the repository root.
pub const DEFAULT_GLOBAL_INPUTS: &[&str] =
    &["Cargo.toml", "Cargo.lock", ".cargo/**", "rust-toolchain", "rust-toolchain.toml"];

/// Paths inside each crate dir of a closure that do not feed a build, unless a target
/// overrides them with `crate_exclude`.
pub const DEFAULT_CRATE_EXCLUDE: &[&str] = &["tests/**", "benches/**", "examples/**", "**/*.md"];

/// A whole recipe (`tbuild.toml`). Every field may be left out (its empty value).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Recipe {
    /// A name for humans (`tbuild recipe` prints it).
    pub name: String,
    /// Globs (relative to the repository root) that feed every target's key.
    pub global_inputs: Vec<String>,
    /// Environment set for every target's commands (a target's own `env` wins).
    pub env: BTreeMap<String, String>,
    /// Variables read from tbuild's own environment whose values go into every key.
    pub key_env: Vec<String>,
    #[serde(rename = "target")]
    pub targets: Vec<Target>,
}

/// One target: a set of outputs built by one kind of tool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    pub name: String,
    pub kind: Kind,
    /// The folder of the artifact layout this target's outputs land in.
    pub artifact_dir: String,
    /// Where commands run and relative outputs are found, relative to the repository root.
    #[serde(default = "dot")]
    pub workdir: String,
    /// Shell commands (`sh -c`), run in order in `workdir`. The cargo kind derives one.
    #[serde(default)]
    pub commands: Vec<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Workspace packages whose path-dependency closure feeds the key (and, for the cargo
    /// kind, the `-p` arguments).
    #[serde(default)]
    pub packages: Vec<String>,
    /// cargo kind: binaries to build and ship.
    #[serde(default)]
    pub bins: Vec<String>,
    /// cargo kind: `--features`.
    #[serde(default)]
    pub features: Vec<String>,
    /// cargo kind: `dev` (the default, `target/debug`) or `release`.
    #[serde(default)]
    pub profile: Profile,
    /// Extra input globs, relative to the repository root.
    #[serde(default)]
    pub inputs: Vec<String>,
    /// Globs (relative to the repository root) removed from the inputs.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Globs relative to each crate dir removed from it; defaults to [`DEFAULT_CRATE_EXCLUDE`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crate_exclude: Option<Vec<String>>,
    /// Tools that must be on PATH besides the kind's own; their version feeds the key.
    /// The command kind has only these.
    #[serde(default)]
    pub tools: Vec<String>,
    /// What the build produces. The cargo kind derives one output per bin.
    #[serde(default, rename = "output")]
    pub outputs: Vec<Output>,
}

fn dot() -> String {
    ".".into()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Cargo,
    Rake,
    Maturin,
    Bun,
    Command,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    #[default]
    Dev,
    Release,
}

impl Profile {
    /// The directory under the cargo target dir.
    pub fn dir(self) -> &'static str {
        match self {
            Profile::Dev => "debug",
            Profile::Release => "release",
        }
    }
}

/// One output: a path or glob (relative to the target's workdir, or starting with
/// `${CARGO_TARGET_DIR}`) whose matches land in `<artifact_dir>/<dest>/`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Output {
    pub path: String,
    #[serde(default)]
    pub dest: String,
}

impl Recipe {
    pub fn parse(text: &str, origin: &str) -> Result<Recipe, RecipeError> {
        let recipe: Recipe = toml::from_str(text)
            .map_err(|e| RecipeError::Malformed { origin: origin.into(), message: e.to_string() })?;
        recipe.validate(origin)?;
        Ok(recipe)
    }

    fn validate(&self, origin: &str) -> Result<(), RecipeError> {
        let invalid = |message: String| Err(RecipeError::Malformed { origin: origin.into(), message });
        if self.targets.is_empty() {
            return invalid("it declares no [[target]]".into());
        }
        let mut names = std::collections::BTreeSet::new();
        for target in &self.targets {
            // The name becomes one path component (logs/<name>/, the staging dir of --out):
            // `.` and `..` would name another directory.
            let plain = target.name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
            if target.name.is_empty() || !plain || target.name == "." || target.name == ".." {
                return invalid(format!(
                    "target name {:?} must be non-empty, use only letters, digits, '-', '_' and '.', and not be `.` or `..`",
                    target.name
                ));
            }
            if !names.insert(&target.name) {
                return invalid(format!("target {:?} is declared twice", target.name));
            }
            for (what, path) in [("artifact_dir", &target.artifact_dir), ("workdir", &target.workdir)] {
                if path.starts_with('/')
                    || path.split('/').any(|c| c == "..")
                    || (what == "artifact_dir" && path.is_empty())
                {
                    return invalid(format!(
                        "target {:?}: {what} {path:?} must be a relative path inside the repository",
                        target.name
                    ));
                }
            }
            match target.kind {
                Kind::Cargo if target.packages.is_empty() => {
                    return invalid(format!("target {:?}: the cargo kind needs `packages`", target.name));
                }
                Kind::Cargo if target.bins.is_empty() && target.outputs.is_empty() => {
                    return invalid(format!(
                        "target {:?}: the cargo kind needs `bins` or [[target.output]]",
                        target.name
                    ));
                }
                Kind::Cargo => {}
                _ if target.commands.is_empty() => {
                    return invalid(format!("target {:?}: the {:?} kind needs `commands`", target.name, target.kind));
                }
                _ if target.outputs.is_empty() => {
                    return invalid(format!("target {:?} declares no [[target.output]]", target.name));
                }
                _ => {}
            }
            for output in &target.outputs {
                if output.dest.starts_with('/') || output.dest.split('/').any(|c| c == "..") {
                    return invalid(format!(
                        "target {:?}: output dest {:?} must stay inside the artifact dir",
                        target.name, output.dest
                    ));
                }
            }
        }
        Ok(())
    }

    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("recipes serialise")
    }

    /// Keeps only the targets named in `only` (all when empty).
    pub fn select(mut self, only: &[String]) -> Result<Recipe, RecipeError> {
        if only.is_empty() {
            return Ok(self);
        }
        for name in only {
            if !self.targets.iter().any(|t| &t.name == name) {
                let available = self.targets.iter().map(|t| t.name.as_str()).collect::<Vec<_>>().join(", ");
                return Err(RecipeError::UnknownTarget { name: name.clone(), available });
            }
        }
        self.targets.retain(|t| only.contains(&t.name));
        Ok(self)
    }
}

impl Target {
    /// The target with everything its kind derives filled in and the recipe-wide settings
    /// merged in: the exact description that feeds its key.
    pub fn resolved(&self, recipe: &Recipe) -> Target {
        let mut target = self.clone();
        let mut env = recipe.env.clone();
        env.extend(self.env.clone());
        target.env = env;
        if target.kind == Kind::Cargo {
            if target.commands.is_empty() {
                target.commands = vec![cargo_command(&target)];
            }
            if target.outputs.is_empty() {
                target.outputs = target
                    .bins
                    .iter()
                    .map(|bin| Output {
                        path: format!("${{CARGO_TARGET_DIR}}/{}/{bin}", target.profile.dir()),
                        dest: String::new(),
                    })
                    .collect();
            }
        }
        if target.crate_exclude.is_none() {
            target.crate_exclude = Some(DEFAULT_CRATE_EXCLUDE.iter().map(|s| s.to_string()).collect());
        }
        target
    }

    /// Environment variables whose values feed this target's key.
    pub fn key_env(&self, recipe: &Recipe) -> Vec<String> {
        let mut names: Vec<String> = recipe.key_env.clone();
        if self.kind != Kind::Command || !self.packages.is_empty() {
            names.extend(DEFAULT_KEY_ENV.iter().map(|s| s.to_string()));
        }
        names.sort();
        names.dedup();
        names
    }
}

fn cargo_command(target: &Target) -> String {
    let mut cmd = String::from("cargo build");
    for package in &target.packages {
        cmd.push_str(&format!(" -p {package}"));
    }
    for bin in &target.bins {
        cmd.push_str(&format!(" --bin {bin}"));
    }
    if !target.features.is_empty() {
        cmd.push_str(&format!(" --features {}", target.features.join(",")));
    }
    if target.profile == Profile::Release {
        cmd.push_str(" --release");
    }
    cmd
}

/// Where a recipe came from, for messages and `tbuild recipe`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecipeSource {
    File(PathBuf),
    InTree,
    BuiltIn(Layout),
}

impl std::fmt::Display for RecipeSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RecipeSource::File(path) => write!(f, "{}", path.display()),
            RecipeSource::InTree => write!(f, "the repository's tbuild.toml"),
            RecipeSource::BuiltIn(layout) => write!(f, "the built-in tasker-core recipe ({layout} layout)"),
        }
    }
}

/// What [`find_recipe`] found: a recipe, or the layout whose built-in recipe applies.
pub enum Found {
    Recipe(Recipe, RecipeSource),
    BuiltIn(Layout),
}

/// Looks for the recipe of `tree`: `--recipe FILE`, else `tbuild.toml` at its root, else the
/// layout of tasker-core it has (its built-in recipe is [`builtin_recipe`]).
pub fn find_recipe(tree: &Tree, recipe_file: Option<&Path>) -> Result<Found, RecipeError> {
    if let Some(path) = recipe_file {
        check_recipe_file(path)?;
        let text = std::fs::read_to_string(path)
            .map_err(|e| RecipeError::Malformed { origin: path.display().to_string(), message: e.to_string() })?;
        return Ok(Found::Recipe(Recipe::parse(&text, &path.display().to_string())?, RecipeSource::File(path.into())));
    }
    if tree.entries().contains_key("tbuild.toml") {
        let malformed = |message: String| RecipeError::Malformed { origin: "tbuild.toml".into(), message };
        let bytes = tree.read("tbuild.toml").map_err(|e| malformed(e.to_string()))?;
        let text = String::from_utf8(bytes).map_err(|_| malformed("not UTF-8".into()))?;
        return Ok(Found::Recipe(Recipe::parse(&text, "tbuild.toml in the repository")?, RecipeSource::InTree));
    }
    let read = |path: &str| tree.read(path).ok().and_then(|bytes| String::from_utf8(bytes).ok());
    Ok(Found::BuiltIn(detect_layout(tree.entries(), &read)?))
}

/// Refuses a `--recipe` file that does not exist, before any fetch or build is spent on a
/// run that would fail on it.
pub fn check_recipe_file(path: &Path) -> Result<(), RecipeError> {
    match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(RecipeError::MissingFile { path: path.into(), cwd: std::env::current_dir().unwrap_or_default() })
        }
        Ok(meta) if meta.is_dir() => Err(RecipeError::Malformed {
            origin: path.display().to_string(),
            message: "it is a directory; --recipe takes a TOML file".into(),
        }),
        _ => Ok(()),
    }
}

/// The built-in recipe of `layout`, with names read off the tree's workspace `graph`.
pub fn builtin_recipe(layout: Layout, graph: &WorkspaceGraph, tree: &Tree) -> Result<Recipe, RecipeError> {
    builtin::recipe(layout, graph, tree.entries())
}

#[derive(Debug, thiserror::Error)]
pub enum RecipeError {
    #[error("malformed recipe {origin}: {message}")]
    Malformed { origin: String, message: String },
    #[error("recipe file {} does not exist: check --recipe (a relative path is from the current dir, {})", path.display(), cwd.display())]
    MissingFile { path: PathBuf, cwd: PathBuf },
    #[error(
        "no built-in recipe matches this tree ({reason}); write a tbuild.toml at the repository root or pass --recipe FILE (see the README's \"Recipe format\")"
    )]
    UnknownLayout { reason: String },
    #[error("no target named {name:?}; this recipe has: {available}")]
    UnknownTarget { name: String, available: String },
    #[error("target {target:?} names package {package:?}, which is not in the cargo workspace (members: {members})")]
    UnknownPackage { target: String, package: String, members: String },
    #[error("cannot read the cargo workspace: {message}")]
    Workspace { message: String },
    #[error("invalid glob {glob:?}: {message}")]
    Glob { glob: String, message: String },
}

/// A one-target cargo recipe, the starting point of the tests here and in `key`.
#[cfg(test)]
pub(crate) const MINIMAL: &str = r#"
    name = "demo"
    [[target]]
    name = "ctl"
    kind = "cargo"
    artifact_dir = "bins"
    packages = ["tasker-ctl"]
    bins = ["tasker-ctl"]
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cargo_targets_derive_command_and_outputs() {
        let recipe = Recipe::parse(MINIMAL, "test").unwrap();
        let target = recipe.targets[0].resolved(&recipe);
        assert_eq!(target.commands, vec!["cargo build -p tasker-ctl --bin tasker-ctl"]);
        assert_eq!(
            target.outputs,
            vec![Output { path: "${CARGO_TARGET_DIR}/debug/tasker-ctl".into(), dest: String::new() }]
        );
        assert_eq!(target.crate_exclude.as_deref().unwrap().len(), DEFAULT_CRATE_EXCLUDE.len());
    }

    #[test]
    fn malformed_recipes_name_the_problem() {
        let cases = [
            ("[[target]]\nname = \"a\"\nkind = \"gradle\"\nartifact_dir = \"x\"", "unknown variant `gradle`"),
            ("[[target]]\nname = \"a\"\nkind = \"cargo\"\nartifact_dir = \"x\"\nbins = [\"a\"]", "needs `packages`"),
            ("[[target]]\nname = \"a\"\nkind = \"rake\"\nartifact_dir = \"x\"", "needs `commands`"),
            ("[[target]]\nname = \"a b\"\nkind = \"cargo\"\nartifact_dir = \"x\"", "target name"),
            (
                "[[target]]\nname = \"..\"\nkind = \"command\"\nartifact_dir = \"x\"\ncommands=[\"true\"]",
                "not be `.` or `..`",
            ),
            (
                "[[target]]\nname = \".\"\nkind = \"command\"\nartifact_dir = \"x\"\ncommands=[\"true\"]",
                "not be `.` or `..`",
            ),
            (
                "[[target]]\nname = \"a\"\nkind = \"command\"\nartifact_dir = \"../x\"\ncommands=[\"true\"]",
                "relative path",
            ),
            ("name = \"x\"", "no [[target]]"),
            (
                "[[target]]\nname = \"a\"\nkind = \"cargo\"\nartifact_dir = \"x\"\npackages=[\"p\"]\nbins=[\"b\"]\ncolour = 1",
                "unknown field `colour`",
            ),
            ("[[target", "TOML parse error"),
        ];
        for (text, expect) in cases {
            let err = Recipe::parse(text, "t.toml").unwrap_err().to_string();
            assert!(err.contains(expect), "{text:?}: {err}");
            assert!(err.contains("t.toml"), "{err}");
        }
    }

    #[test]
    fn selecting_an_unknown_target_lists_the_known_ones() {
        let recipe = Recipe::parse(MINIMAL, "test").unwrap();
        let err = recipe.select(&["nope".into()]).unwrap_err().to_string();
        assert!(err.contains("\"nope\"") && err.contains("ctl"), "{err}");
    }
}
