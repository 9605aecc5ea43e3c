//! The built-in recipes for tasker-core, one per layout era of its history, and the
//! detection of a tree's era. The recipes are TOML files next to this module, in the format of
//! a user's `tbuild.toml`; the `workers/` ones are templates whose `{{NAME}}`s are filled from
//! the tree, because crate names moved within those eras (see `Vars`).
//!
//! Eras, newest first (from tasker-core's history on main):
//! - `crates/` (since 2026-03-07, c9b4d658): `crates/tasker-{rb,py,ts}`, napi-rs TypeScript.
//! - `workers/` + napi-rs (2026-02-17, 54f59be3, to 2026-03-07): core crates at the root,
//!   `workers/{ruby,python,typescript}`, root `tasker-ctl/`.
//! - `workers/` + cdylib (2025-10 to 2026-02-17): TypeScript (from 2025-12-28) loads
//!   `libtasker_ts.so` (earlier `libtasker_worker.so`) through koffi; Python from 2025-12-19;
//!   the CLI is `tasker-cli` in `tasker-client` until 2026-01-31, then a root `tasker-cli/`
//!   crate, renamed `tasker-ctl` on 2026-02-09; FFI crates `tasker-worker-{rb,py,ts}` until
//!   2026-02-08, then `tasker-{rb,py,ts}`.

use std::collections::BTreeMap;

use super::{Recipe, RecipeError, WorkspaceGraph};
use crate::source::Entry;

/// A layout era of tasker-core.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// `crates/tasker-*` (since 2026-03-07).
    Crates,
    /// `workers/*` with the napi-rs TypeScript worker (2026-02-17 to 2026-03-07).
    WorkersNapi,
    /// `workers/*` with a cdylib TypeScript worker, or none yet (2025-10 to 2026-02-17).
    WorkersCdylib,
}

impl Layout {
    pub const ALL: [Layout; 3] = [Layout::Crates, Layout::WorkersNapi, Layout::WorkersCdylib];
}

impl std::fmt::Display for Layout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Layout::Crates => "crates/",
            Layout::WorkersNapi => "workers/ + napi-rs",
            Layout::WorkersCdylib => "workers/ + cdylib",
        })
    }
}

/// Recognises the era from marker paths; `read` gives a file's content.
pub fn detect_layout(
    entries: &BTreeMap<String, Entry>,
    read: &dyn Fn(&str) -> Option<String>,
) -> Result<Layout, RecipeError> {
    let has = |path: &str| entries.contains_key(path);
    if !has("Cargo.toml") {
        return Err(RecipeError::UnknownLayout { reason: "there is no Cargo.toml at its root".into() });
    }
    if has("crates/tasker-orchestration/Cargo.toml") {
        return Ok(Layout::Crates);
    }
    if has("tasker-orchestration/Cargo.toml") && has("workers/ruby/Rakefile") {
        let napi = read("workers/typescript/package.json").is_some_and(|json| json.contains("\"napi\""));
        return Ok(if napi { Layout::WorkersNapi } else { Layout::WorkersCdylib });
    }
    Err(RecipeError::UnknownLayout {
        reason: "it has neither crates/tasker-orchestration nor tasker-orchestration/ with workers/ruby".into(),
    })
}

/// The built-in recipe for `layout`, its names filled in from the workspace.
pub fn recipe(
    layout: Layout,
    graph: &WorkspaceGraph,
    entries: &BTreeMap<String, Entry>,
) -> Result<Recipe, RecipeError> {
    let (name, template) = match layout {
        Layout::Crates => ("crates-layout.toml", include_str!("builtin/crates-layout.toml")),
        Layout::WorkersNapi => ("workers-napi.toml", include_str!("builtin/workers-napi.toml")),
        Layout::WorkersCdylib => ("workers-cdylib.toml", include_str!("builtin/workers-cdylib.toml")),
    };
    let mut text = template.to_string();
    if layout != Layout::Crates {
        for (var, value) in Vars::detect(graph, entries)?.pairs() {
            text = text.replace(&format!("{{{{{var}}}}}"), &value);
        }
    }
    let mut recipe = Recipe::parse(&text, &format!("built-in {name}"))?;
    // Early trees lack some workers (no Python before 2025-12-19, no TypeScript before
    // 2025-12-28): their targets are not part of that era.
    recipe.targets.retain(|t| t.packages.iter().all(|p| graph.packages.contains_key(p)));
    Ok(recipe)
}

/// The names that moved within the `workers/` eras, read off the workspace.
struct Vars {
    era: &'static str,
    cli_package: &'static str,
    cli_bin: &'static str,
    core_packages: String,
    features: &'static str,
    rb_package: &'static str,
    py_package: &'static str,
    ts_package: &'static str,
    ts_lib: &'static str,
    protoc: &'static str,
}

impl Vars {
    fn detect(graph: &WorkspaceGraph, entries: &BTreeMap<String, Entry>) -> Result<Vars, RecipeError> {
        let has = |package: &str| graph.packages.contains_key(package);
        let (cli_package, cli_bin, era) = if has("tasker-ctl") {
            ("tasker-ctl", "tasker-ctl", "2026-02-09 to 2026-02-17")
        } else if has("tasker-cli") {
            ("tasker-cli", "tasker-cli", "2026-01-31 to 2026-02-09")
        } else if has("tasker-client") && entries.contains_key("tasker-client/src/bin/tasker-cli.rs") {
            ("tasker-client", "tasker-cli", "2025-10 to 2026-01-31")
        } else {
            return Err(RecipeError::UnknownLayout {
                reason: "it has no tasker-ctl, tasker-cli or tasker-client CLI crate".into(),
            });
        };
        let pgmq = if has("tasker-pgmq") { "tasker-pgmq" } else { "pgmq-notify" };
        let mut core = vec!["tasker-shared", "tasker-orchestration", "tasker-worker", pgmq, "tasker-client"];
        if cli_package != "tasker-client" {
            core.push(cli_package);
        }
        let core_packages = core.iter().map(|p| format!("-p {p}")).collect::<Vec<_>>().join(" ");
        // CI built with --all-features until the tokio-console feature (2026-01-22) made
        // that panic; then with the test-services feature (plus benchmarks, briefly).
        let features = if !has("tasker-worker-ts") && !has("tasker-ts") {
            "--all-features"
        } else if cli_package == "tasker-client" {
            "--features benchmarks,test-services"
        } else {
            "--features test-services"
        };
        let renamed = has("tasker-rb");
        Ok(Vars {
            era,
            cli_package,
            cli_bin,
            core_packages,
            features,
            rb_package: if renamed { "tasker-rb" } else { "tasker-worker-rb" },
            py_package: if has("tasker-py") { "tasker-py" } else { "tasker-worker-py" },
            ts_package: if has("tasker-ts") { "tasker-ts" } else { "tasker-worker-ts" },
            ts_lib: if has("tasker-ts") { "tasker_ts" } else { "tasker_worker" },
            // tasker-shared compiles protos with tonic since 2026-01-29.
            protoc: if entries.contains_key("tasker-shared/build.rs") { "\"protoc\"" } else { "" },
        })
    }

    fn pairs(&self) -> Vec<(&'static str, String)> {
        vec![
            ("ERA", self.era.into()),
            ("CLI_PACKAGE", self.cli_package.into()),
            ("CLI_BIN", self.cli_bin.into()),
            ("CORE_PACKAGES", self.core_packages.clone()),
            ("FEATURES", self.features.into()),
            ("RB_PACKAGE", self.rb_package.into()),
            ("PY_PACKAGE", self.py_package.into()),
            ("TS_PACKAGE", self.ts_package.into()),
            ("TS_LIB", self.ts_lib.into()),
            ("PROTOC", self.protoc.into()),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recipe::WorkspacePackage;

    fn tree(paths: &[&str]) -> BTreeMap<String, Entry> {
        paths.iter().map(|p| (p.to_string(), Entry::File { executable: false, blob: None })).collect()
    }

    fn graph(names: &[&str]) -> WorkspaceGraph {
        WorkspaceGraph {
            packages: names
                .iter()
                .map(|n| (n.to_string(), WorkspacePackage { dir: n.to_string(), path_deps: vec![] }))
                .collect(),
        }
    }

    const NONE: &dyn Fn(&str) -> Option<String> = &|_| None;

    #[test]
    fn every_builtin_recipe_parses_with_the_names_of_its_era() {
        let current =
            graph(&["tasker-orchestration", "tasker-worker", "tasker-ctl", "tasker-rb", "tasker-py", "tasker-ts"]);
        let r = recipe(Layout::Crates, &current, &tree(&[])).unwrap();
        let names: Vec<&str> = r.targets.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["tasker-server", "tasker-worker", "tasker-ctl", "ruby", "python", "typescript"]);

        let napi = recipe(Layout::WorkersNapi, &current, &tree(&["tasker-shared/build.rs"])).unwrap();
        assert!(napi.targets[2].commands[0].contains("--features test-services -p tasker-shared"));
        assert!(napi.targets[0].tools.contains(&"protoc".to_string()));

        let early = graph(&[
            "tasker-orchestration",
            "tasker-worker",
            "tasker-client",
            "pgmq-notify",
            "tasker-shared",
            "tasker-worker-rb",
        ]);
        let r = recipe(Layout::WorkersCdylib, &early, &tree(&["tasker-client/src/bin/tasker-cli.rs"])).unwrap();
        let names: Vec<&str> = r.targets.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["tasker-server", "tasker-worker", "tasker-cli", "ruby"]);
        assert_eq!(r.targets[2].packages, ["tasker-client"]);
        assert!(r.targets[0].commands[0].starts_with("cargo build --all-features -p tasker-shared"));
        assert!(r.targets[0].commands[0].contains("-p pgmq-notify"));
        assert!(r.targets[0].tools.is_empty());

        let koffi =
            graph(&["tasker-orchestration", "tasker-cli", "tasker-worker-rb", "tasker-worker-py", "tasker-worker-ts"]);
        let r = recipe(Layout::WorkersCdylib, &koffi, &tree(&[])).unwrap();
        let ts = r.targets.iter().find(|t| t.name == "typescript").unwrap();
        assert_eq!(ts.outputs[0].path, "${CARGO_TARGET_DIR}/debug/libtasker_worker.so");
        assert!(r.name.contains("2026-01-31 to 2026-02-09"));
    }

    #[test]
    fn layouts_are_detected_from_marker_paths() {
        let current = tree(&["Cargo.toml", "crates/tasker-orchestration/Cargo.toml"]);
        assert_eq!(detect_layout(&current, NONE).unwrap(), Layout::Crates);
        let workers = tree(&["Cargo.toml", "tasker-orchestration/Cargo.toml", "workers/ruby/Rakefile"]);
        assert_eq!(detect_layout(&workers, NONE).unwrap(), Layout::WorkersCdylib);
        let napi_json: &dyn Fn(&str) -> Option<String> = &|_| Some(r#"{"napi": {"binaryName": "tasker_ts"}}"#.into());
        assert_eq!(detect_layout(&workers, napi_json).unwrap(), Layout::WorkersNapi);
        let err = detect_layout(&tree(&["Cargo.toml", "src/lib.rs"]), NONE).unwrap_err().to_string();
        assert!(err.contains("tbuild.toml"), "{err}");
        let err = detect_layout(&tree(&["package.json"]), NONE).unwrap_err().to_string();
        assert!(err.contains("no Cargo.toml"), "{err}");
    }
}
