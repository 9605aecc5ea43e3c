//! `tbuild cache export` / `import`: a commit's entries and source moved to an offline
//! machine as one file.

use std::path::Path;

use serde_json::Value;

use crate::support::*;

/// A git URL nothing listens on: any attempt to fetch from it fails.
fn unreachable_url() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    format!("git://127.0.0.1:{port}/tasker-core.git")
}

fn json(output: &std::process::Output) -> Value {
    assert_ok(output);
    serde_json::from_slice(&output.stdout).unwrap()
}

/// `tbuild ARGS` with another cache dir than the world's.
fn in_cache(world: &World, cache: &Path, args: &[&str]) -> std::process::Output {
    world.tbuild_env(args, &[("TBUILD_CACHE_DIR", cache.to_str().unwrap())])
}

fn core_args(repo: &str, sha: &str, out: &Path, targets: &str) -> Vec<String> {
    let recipe = fixture_recipe();
    ["core", "--repo", repo, "--sha", sha, "--recipe", recipe.to_str().unwrap(), "--targets", targets, "--out"]
        .iter()
        .map(|s| s.to_string())
        .chain([out.to_str().unwrap().to_string(), "--json".to_string()])
        .collect()
}

fn export(world: &World, sha: &str, targets: &str, bundle: &Path) -> Value {
    let recipe = fixture_recipe();
    let repo = world.repo();
    json(&world.tbuild(&[
        "cache",
        "export",
        "--repo",
        repo.to_str().unwrap(),
        "--sha",
        sha,
        "--recipe",
        recipe.to_str().unwrap(),
        "--targets",
        targets,
        "--with-source",
        "-o",
        bundle.to_str().unwrap(),
        "--json",
    ]))
}

#[test]
fn an_imported_bundle_makes_an_offline_machine_hit_every_target() {
    let world = World::new();
    let targets = "tasker-ctl,tasker-server";
    let sha = world.git(&["rev-parse", "main"]).trim().to_string();
    world.core_targets(&sha, "out", targets);
    let bundle = world.dir.path().join("main.tbundle");
    let exported = export(&world, &sha, targets, &bundle);
    assert_eq!(exported["entries"].as_array().unwrap().len(), 2);
    assert_eq!(exported["source"], true);

    // The offline machine: an empty cache, and a repository URL that cannot be reached.
    let url = unreachable_url();
    let offline = world.dir.path().join("offline-cache");
    let out = world.out("offline-out");
    let args = core_args(&url, &sha, &out, targets);
    // A remote cache on a closed port too: --offline must not even try it.
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let remote = format!("http://127.0.0.1:{closed_port}/cache");
    let mut run: Vec<&str> = args.iter().map(String::as_str).collect();
    run.extend(["--remote", &remote]);
    run.push("--offline");
    let refused = in_cache(&world, &offline, &run);
    assert_eq!(refused.status.code(), Some(3), "{}", stderr(&refused));
    for way_out in ["without --offline", "tbuild cache import", "--with-source"] {
        assert!(stderr(&refused).contains(way_out), "{way_out:?} in {}", stderr(&refused));
    }

    let imported =
        json(&in_cache(&world, &offline, &["cache", "import", bundle.to_str().unwrap(), "--repo", &url, "--json"]));
    assert_eq!(imported["added"].as_array().unwrap().len(), 2);
    assert_eq!(imported["present"].as_array().unwrap().len(), 0);
    let hit = in_cache(&world, &offline, &run);
    assert!(!stderr(&hit).contains("warning"), "no network was tried: {}", stderr(&hit));
    let manifest = json(&hit);
    assert_eq!(statuses(&manifest).values().collect::<Vec<_>>(), ["hit"; 2]);
    assert_eq!(snapshot(&out), snapshot(&world.out("out")), "the very bytes built on the first machine");

    // TBUILD_OFFLINE=1 does what --offline does; importing again adds nothing.
    run.pop();
    let env = [("TBUILD_CACHE_DIR", offline.to_str().unwrap()), ("TBUILD_OFFLINE", "1")];
    assert_eq!(statuses(&json(&world.tbuild_env(&run, &env))).values().collect::<Vec<_>>(), ["hit"; 2]);
    let again = json(&in_cache(&world, &offline, &["cache", "import", bundle.to_str().unwrap(), "--json"]));
    assert_eq!((again["added"].as_array().unwrap().len(), again["present"].as_array().unwrap().len()), (0, 2));

    // Without --repo the source goes to the mirror of the repository it was exported from,
    // which works offline after that repository is gone.
    let other = world.dir.path().join("other-cache");
    json(&in_cache(&world, &other, &["cache", "import", bundle.to_str().unwrap(), "--json"]));
    let repo = world.repo().to_str().unwrap().to_string();
    std::fs::rename(world.repo(), world.dir.path().join("gone")).unwrap();
    let args = core_args(&repo, &sha, &world.out("other-out"), targets);
    // A remote cache on a closed port too: --offline must not even try it.
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let remote = format!("http://127.0.0.1:{closed_port}/cache");
    let mut run: Vec<&str> = args.iter().map(String::as_str).collect();
    run.extend(["--remote", &remote]);
    run.push("--offline");
    assert_eq!(statuses(&json(&in_cache(&world, &other, &run))).values().collect::<Vec<_>>(), ["hit"; 2]);
}

/// A recipe whose targets build in milliseconds (no cargo), for bundles of any content.
fn quick_recipe(world: &World) -> std::path::PathBuf {
    let recipe = world.dir.path().join("quick.toml");
    std::fs::write(
        &recipe,
        r#"
        [[target]]
        name = "ctl-source"
        kind = "command"
        artifact_dir = "ctl"
        packages = ["tasker-ctl"]
        commands = ["cp crates/tasker-ctl/src/main.rs ctl.rs"]
        [[target.output]]
        path = "ctl.rs"

        [[target]]
        name = "proto"
        kind = "command"
        artifact_dir = "proto"
        inputs = ["proto/**"]
        commands = ["cp proto/tasker.proto copy.proto"]
        [[target.output]]
        path = "copy.proto"
        "#,
    )
    .unwrap();
    recipe
}

#[test]
fn a_bundle_with_one_flipped_byte_is_refused_whole() {
    let world = World::new();
    let recipe = quick_recipe(&world);
    let recipe = recipe.to_str().unwrap();
    assert_ok(&world.core_with("main", "out", &["--recipe", recipe]));
    let bundle = world.dir.path().join("b.tbundle");
    let repo = world.repo();
    let args = ["cache", "export", "--repo", repo.to_str().unwrap(), "--sha", "main", "--recipe", recipe];
    let mut args = args.to_vec();
    args.extend(["--with-source", "-o", bundle.to_str().unwrap()]);
    assert_ok(&world.tbuild(&args));
    let good = std::fs::read(&bundle).unwrap();

    let len = good.len();
    // The first header, member data, the middle, the manifest's end, the digest member's
    // header and content, the tar's end blocks.
    for position in [0, 100, 700, len / 2, len - 2100, len - 2040, len - 1530, len - 1400, len - 1] {
        let mut bad = good.clone();
        bad[position] ^= 0x01;
        let file = world.dir.path().join("bad.tbundle");
        std::fs::write(&file, &bad).unwrap();
        let cache = world.dir.path().join(format!("cache-{position}"));
        let output = in_cache(&world, &cache, &["cache", "import", file.to_str().unwrap()]);
        assert_eq!(output.status.code(), Some(7), "byte {position}: {}", stderr(&output));
        assert!(stderr(&output).contains("nothing was imported"), "byte {position}: {}", stderr(&output));
        assert!(records(&cache).is_empty(), "byte {position}: no record imported");
        assert_eq!(files_under(&cache.join("v1/blobs")), 0, "byte {position}: no archive imported");
        assert_eq!(files_under(&cache.join("v1/tmp")), 0, "byte {position}: staging removed");
        assert!(!cache.join("repos").exists(), "byte {position}: no mirror touched");
    }
    let truncated = world.dir.path().join("short.tbundle");
    std::fs::write(&truncated, &good[..len - 512]).unwrap();
    let cache = world.dir.path().join("cache-short");
    assert_eq!(in_cache(&world, &cache, &["cache", "import", truncated.to_str().unwrap()]).status.code(), Some(7));

    let cache = world.dir.path().join("cache-good");
    let imported = json(&in_cache(&world, &cache, &["cache", "import", bundle.to_str().unwrap(), "--json"]));
    assert_eq!(imported["added"].as_array().unwrap().len(), 2, "the intact bundle imports");
    assert_eq!(records(&cache).len(), 2);
}

#[test]
fn exporting_a_target_that_is_not_cached_names_it() {
    let world = World::new();
    let recipe = quick_recipe(&world);
    let recipe = recipe.to_str().unwrap();
    assert_ok(&world.core_with("main", "out", &["--recipe", recipe, "--targets", "proto"]));
    let bundle = world.dir.path().join("b.tbundle");
    let repo = world.repo();
    let output = world.tbuild(&[
        "cache",
        "export",
        "--repo",
        repo.to_str().unwrap(),
        "--sha",
        "main",
        "--recipe",
        recipe,
        "-o",
        bundle.to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(7), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("ctl-source") && stderr(&output).contains("tbuild core --sha"),
        "{}",
        stderr(&output)
    );
    assert!(!bundle.exists(), "no bundle written");
}

fn files_under(dir: &Path) -> usize {
    walk(dir).len()
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return found };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() { found.extend(walk(&path)) } else { found.push(path) }
    }
    found
}
