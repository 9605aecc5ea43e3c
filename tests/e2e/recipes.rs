//! `tbuild recipe`: the built-in recipe that matches each layout era of tasker-core, on the
//! fixture's era branches.

use crate::support::*;

fn recipe(world: &World, rev: &str) -> std::process::Output {
    world.tbuild(&["recipe", "--repo", world.repo().to_str().unwrap(), "--sha", rev])
}

/// Target names of a printed recipe, in order; the printed TOML must parse back as a recipe.
fn targets(stdout: &str) -> Vec<String> {
    let recipe = tbuild::recipe::Recipe::parse(stdout, "tbuild recipe output").unwrap();
    recipe.targets.into_iter().map(|t| t.name).collect()
}

#[test]
fn each_layout_era_gets_its_builtin_recipe() {
    let world = World::new();
    let cases: [(&str, &str, &[&str], &[&str]); 6] = [
        (
            "main",
            "(crates/ layout)",
            &["tasker-server", "tasker-worker", "tasker-ctl", "ruby", "python", "typescript"],
            &["workdir = \"crates/tasker-ts\"", "bun run build:napi", "tasker_ts.*.node"],
        ),
        (
            "era-workers-napi",
            "(workers/ + napi-rs layout)",
            &["tasker-server", "tasker-worker", "tasker-ctl", "ruby", "python", "typescript"],
            &["workdir = \"workers/typescript\"", "bun run build:napi", "-p tasker-ctl --bin tasker-ctl"],
        ),
        (
            "era-workers-koffi",
            "(workers/ + cdylib layout)",
            &["tasker-server", "tasker-worker", "tasker-ctl", "ruby", "python", "typescript"],
            &["cargo build -p tasker-ts", "${CARGO_TARGET_DIR}/debug/libtasker_ts.so", "--features test-services"],
        ),
        (
            "era-workers-cli",
            "(workers/ + cdylib layout)",
            &["tasker-server", "tasker-worker", "tasker-cli", "ruby", "python", "typescript"],
            &["packages = [\"tasker-worker-rb\"]", "libtasker_worker.so", "-p tasker-cli --bin tasker-cli"],
        ),
        (
            "era-workers-python",
            "(workers/ + cdylib layout)",
            &["tasker-server", "tasker-worker", "tasker-cli", "ruby", "python"],
            &[
                "--all-features",
                "-p pgmq-notify",
                "packages = [\"tasker-worker-py\"]",
                "packages = [\"tasker-client\"]",
            ],
        ),
        (
            "era-workers-early",
            "(workers/ + cdylib layout)",
            &["tasker-server", "tasker-worker", "tasker-cli", "ruby"],
            &["--all-features", "workdir = \"workers/ruby\""],
        ),
    ];
    for (rev, layout, want_targets, needles) in cases {
        let output = recipe(&world, rev);
        assert_ok(&output);
        let stdout = String::from_utf8(output.stdout).unwrap();
        assert!(stdout.contains(layout), "{rev}: {stdout}");
        assert_eq!(targets(&stdout), want_targets, "{rev}");
        for needle in needles {
            assert!(stdout.contains(needle), "{rev}: expected {needle:?} in\n{stdout}");
        }
    }
}

#[test]
fn an_unknown_layout_asks_for_a_tbuild_toml() {
    let world = World::new();
    let output = recipe(&world, "era-unknown");
    assert_eq!(output.status.code(), Some(4));
    let err = stderr(&output);
    assert!(err.contains("no built-in recipe matches") && err.contains("write a tbuild.toml"), "{err}");
}

#[test]
fn a_tbuild_toml_in_the_tree_wins_over_the_builtin_recipe() {
    let world = World::new();
    std::fs::copy(fixture_recipe(), world.repo().join("tbuild.toml")).unwrap();
    let sha = world.commit_all("bring our own recipe");
    let output = recipe(&world, &sha);
    assert_ok(&output);
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(stdout.starts_with("# recipe: the repository's tbuild.toml"), "{stdout}");
    assert!(stdout.contains("rake compile") && !stdout.contains("bundle exec"), "{stdout}");
}
