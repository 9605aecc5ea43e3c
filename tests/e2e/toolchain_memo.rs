//! The toolchain memo: a warm run reuses tool fingerprints without running the tools, and a
//! tool upgraded in place, or a version manager's choice changed behind a shim, is probed
//! again and changes the key. Probes are observed through fake tools that log every run.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::support::*;

/// A file changed this recently is never trusted by the memo (`toolchain_memo::RACY`); the
/// tests wait this long once after installing their tools, so that later runs can hit.
const SETTLE: Duration = Duration::from_millis(2500);

fn executable(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
}

/// A tool that appends a line to `log` each time it runs and reports `version`.
fn logging_tool(path: &Path, name: &str, version: &str, log: &Path) {
    executable(path, &format!("#!/bin/sh\necho run >> '{}'\necho \"{name} {version}\"\n", log.display()));
}

fn probes(log: &Path) -> usize {
    std::fs::read_to_string(log).map(|s| s.lines().count()).unwrap_or(0)
}

/// A recipe of one `command` target that needs `tool` (no cargo, so nothing else is probed).
fn tool_recipe(world: &World, tool: &str) -> PathBuf {
    let recipe = world.dir.path().join(format!("{tool}.toml"));
    std::fs::write(
        &recipe,
        format!(
            r#"
            [[target]]
            name = "generated"
            kind = "command"
            artifact_dir = "generated"
            inputs = ["proto/**"]
            tools = ["{tool}"]
            commands = ["{tool} > generated.txt"]
            [[target.output]]
            path = "generated.txt"
            "#
        ),
    )
    .unwrap();
    recipe
}

fn key(world: &World, recipe: &Path, env: &[(&str, &str)]) -> String {
    let repo = world.repo();
    let args =
        ["key", "--repo", repo.to_str().unwrap(), "--sha", "main", "--recipe", recipe.to_str().unwrap(), "--json"];
    let output = world.tbuild_env(&args, env);
    assert_ok(&output);
    parse_keys(&output.stdout)["generated"].clone()
}

#[test]
fn a_tool_upgraded_in_place_is_probed_again_and_nothing_else_is() {
    let world = World::new();
    let bin = world.dir.path().join("bin");
    let log = world.dir.path().join("probes.log");
    let tool = bin.join("fake-tool");
    logging_tool(&tool, "fake-tool", "1.0", &log);
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let env = [("PATH", path.as_str())];
    let recipe = tool_recipe(&world, "fake-tool");
    std::thread::sleep(SETTLE);

    let first = key(&world, &recipe, &env);
    assert_eq!(probes(&log), 1);
    assert!(world.cache().join("v1/memo/toolchains.json").is_file(), "the memo is written to the cache");
    assert_eq!(key(&world, &recipe, &env), first);
    assert_eq!(probes(&log), 1, "a warm run takes the fingerprint from the memo");

    // Files next to the tool, the recipe and the repository change: no probe.
    std::fs::write(bin.join("unrelated"), "x").unwrap();
    let now = std::time::SystemTime::now();
    for touched in [&recipe, &world.repo().join("README.md"), &bin] {
        std::fs::File::open(touched).unwrap().set_modified(now).unwrap();
    }
    assert_eq!(key(&world, &recipe, &env), first);
    assert_eq!(probes(&log), 1, "a touch of an unrelated file does not probe again");

    // Upgraded in place: same path, new executable.
    logging_tool(&tool, "fake-tool", "2.0", &log);
    let upgraded = key(&world, &recipe, &env);
    assert_ne!(upgraded, first, "the new version must change the key");
    assert_eq!(probes(&log), 2);
    let memo = std::fs::read_to_string(world.cache().join("v1/memo/toolchains.json")).unwrap();
    assert!(memo.contains("fake-tool 1.0"), "{memo}");
}

#[test]
fn a_version_chosen_behind_a_shim_changes_the_key() {
    let world = World::new();
    let root = world.dir.path().join("pyenv");
    let log = world.dir.path().join("probes.log");
    // A pyenv-like shim: PYENV_VERSION, else $PYENV_ROOT/version, picks the real tool.
    executable(
        &root.join("shims/fakepy"),
        "#!/bin/sh\nv=${PYENV_VERSION:-$(cat \"$PYENV_ROOT/version\")}\nexec \"$PYENV_ROOT/versions/$v/bin/fakepy\" \"$@\"\n",
    );
    for version in ["1.0", "2.0"] {
        logging_tool(&root.join(format!("versions/{version}/bin/fakepy")), "fakepy", version, &log);
    }
    std::fs::write(root.join("version"), "1.0\n").unwrap();
    let path = format!("{}:{}", root.join("shims").display(), std::env::var("PATH").unwrap());
    let root_str = root.to_str().unwrap();
    let env = [("PATH", path.as_str()), ("PYENV_ROOT", root_str)];
    let recipe = tool_recipe(&world, "fakepy");
    std::thread::sleep(SETTLE);

    let first = key(&world, &recipe, &env);
    assert_eq!(key(&world, &recipe, &env), first);
    assert_eq!(probes(&log), 1, "the shim's choice is unchanged: no probe");

    std::fs::write(root.join("version"), "2.0\n").unwrap();
    let second = key(&world, &recipe, &env);
    assert_ne!(second, first, "a changed global version file must change the key");
    assert_eq!(probes(&log), 2);

    let pinned = [("PATH", path.as_str()), ("PYENV_ROOT", root_str), ("PYENV_VERSION", "1.0")];
    assert_eq!(key(&world, &recipe, &pinned), first, "PYENV_VERSION selects the old version again");
    assert_eq!(key(&world, &recipe, &env), second, "and the global file the new one, from the memo");
    assert_eq!(probes(&log), 3);
}
