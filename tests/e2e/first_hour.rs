//! The small traps of a newcomer's first hour: each mistake gets a message that names the
//! cause and the fix, with the README's exit code, and nothing is left behind.

use std::path::Path;

use crate::support::*;

/// The mirrors under the cache's `repos/` (a dir per repository, each `mirror.git`).
fn mirrors(cache: &Path) -> Vec<String> {
    let Ok(dirs) = std::fs::read_dir(cache.join("repos")) else { return Vec::new() };
    dirs.flatten()
        .filter(|d| d.path().join("mirror.git").exists())
        .map(|d| d.file_name().to_string_lossy().into_owned())
        .collect()
}

/// A URL nothing answers on: connecting to port 1 of the loopback is refused at once.
const DEAD_URL: &str = "http://127.0.0.1:1/tasker-core.git";

#[test]
fn a_local_repo_path_that_does_not_exist_is_named() {
    let world = World::new();
    let missing = world.dir.path().join("no-such-checkout");
    let output = world.tbuild(&["key", "--repo", missing.to_str().unwrap(), "--sha", "main"]);
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    let err = stderr(&output);
    assert!(err.contains(&format!("repository path {} does not exist", missing.display())), "{err}");
    assert!(err.contains("check --repo"), "names the fix: {err}");
    assert!(!err.contains("unsupported URL protocol"), "{err}");
    assert!(mirrors(&world.cache()).is_empty(), "no mirror is made for it");
}

#[test]
fn a_cache_dir_that_is_a_file_is_named() {
    let world = World::new();
    let file = world.dir.path().join("a-file");
    std::fs::write(&file, "not a dir").unwrap();
    let output = world.tbuild(&["--cache-dir", file.to_str().unwrap(), "cache", "du"]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    let err = stderr(&output);
    assert!(err.contains(&format!("cache dir {} is not a directory", file.display())), "{err}");
    assert!(err.contains("point --cache-dir or TBUILD_CACHE_DIR at a directory"), "names the fix: {err}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "not a dir", "the file is left alone");
}

#[test]
fn a_missing_recipe_file_is_refused_before_any_fetch() {
    let world = World::new();
    let recipe = world.dir.path().join("no-such-recipe.toml");
    let out = world.out("out");
    let args = ["core", "--repo", DEAD_URL, "--sha", "main", "--recipe", recipe.to_str().unwrap(), "--out"];
    let output = world.tbuild(&[&args[..], &[out.to_str().unwrap()]].concat());
    assert_eq!(output.status.code(), Some(4), "{}", stderr(&output));
    let err = stderr(&output);
    assert!(err.contains(&format!("recipe file {} does not exist", recipe.display())), "{err}");
    assert!(err.contains("check --recipe"), "names the fix: {err}");
    assert!(!err.contains("cannot fetch"), "nothing was fetched: {err}");
    assert!(!world.cache().join("repos").exists(), "no mirror was started");
    assert!(!out.exists());
}

#[test]
fn a_failed_first_fetch_leaves_no_mirror_and_gc_removes_old_leftovers() {
    let world = World::new();
    let output = world.tbuild(&["key", "--repo", DEAD_URL, "--sha", "main"]);
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    assert!(stderr(&output).contains("cannot fetch"), "{}", stderr(&output));
    assert_eq!(mirrors(&world.cache()), Vec::<String>::new(), "the empty mirror is removed");

    // What an older tbuild left: an empty bare mirror. gc removes it, and keeps a real one.
    let leftover = world.cache().join("repos/old-000000000000/mirror.git");
    std::fs::create_dir_all(&leftover).unwrap();
    git_in(&leftover, &["init", "-q", "--bare"]);
    world.keys(world.git(&["rev-parse", "main"]).trim());
    assert_eq!(mirrors(&world.cache()).len(), 2);
    let output = world.tbuild(&["cache", "gc", "--json"]);
    assert_ok(&output);
    assert!(!leftover.exists(), "gc removed the empty mirror");
    assert_eq!(mirrors(&world.cache()).len(), 1, "the fixture's mirror stays");
    world.keys("main");
}

#[test]
fn target_names_may_have_spaces_after_commas() {
    let world = World::new();
    let recipe = fixture_recipe();
    let recipe = recipe.to_str().unwrap();
    let repo = world.repo();
    let args = ["key", "--repo", repo.to_str().unwrap(), "--sha", "main", "--recipe", recipe, "--json"];
    let output = world.tbuild(&[&args[..], &["--targets", "tasker-ctl, ruby"]].concat());
    assert_ok(&output);
    let keys = parse_keys(&output.stdout);
    assert_eq!(keys.keys().map(String::as_str).collect::<Vec<_>>(), ["ruby", "tasker-ctl"]);

    let output = world.tbuild(&[&args[..], &["--targets", "tasker-ctl,,ruby"]].concat());
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(stderr(&output).contains("an empty target name"), "{}", stderr(&output));
}

#[test]
fn offline_branch_names_warn_how_old_the_mirror_is() {
    let world = World::new();
    // A URL, not a path: --offline never fetches from it.
    let url = format!("file://{}", world.repo().display());
    let recipe = fixture_recipe();
    let args = ["key", "--repo", &url, "--sha", "main", "--recipe", recipe.to_str().unwrap(), "--targets", BINARIES];
    let online = world.tbuild(&args);
    assert_ok(&online);
    assert!(!stderr(&online).contains("--offline"), "{}", stderr(&online));

    let offline = world.tbuild(&[&args[..], &["--offline"]].concat());
    assert_ok(&offline);
    assert_eq!(offline.stdout, online.stdout, "the same keys, from the mirror");
    let err = stderr(&offline);
    let sha = world.git(&["rev-parse", "main"]);
    assert!(
        err.contains(&format!("warning: --offline: `main` is {} as the mirror last fetched it", &sha[..12])),
        "{err}"
    );
    assert!(err.contains(" s ago"), "the age of the fetch: {err}");
    assert!(err.contains("its commit") && err.contains("run without --offline"), "{err}");

    // A full SHA does not move: no warning.
    let pinned = ["key", "--repo", &url, "--sha", sha.trim(), "--recipe", recipe.to_str().unwrap(), "--offline"];
    let output = world.tbuild(&[&pinned[..], &["--targets", BINARIES]].concat());
    assert_ok(&output);
    assert!(!stderr(&output).contains("warning"), "{}", stderr(&output));
}

#[test]
fn offline_reads_a_local_repo_path_never_mirrored() {
    let world = World::new();
    let recipe = fixture_recipe();
    let repo = world.repo();
    let args = ["key", "--repo", repo.to_str().unwrap(), "--sha", "main", "--recipe", recipe.to_str().unwrap()];
    let output = world.tbuild(&[&args[..], &["--targets", BINARIES, "--json", "--offline"]].concat());
    assert_ok(&output);
    assert_eq!(parse_keys(&output.stdout), world.keys("main"), "the same keys as online");
    assert_eq!(mirrors(&world.cache()).len(), 1);
}

#[test]
fn a_size_without_a_unit_is_refused() {
    let world = World::new();
    let output = world.tbuild(&["cache", "gc", "--max-size", "5"]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    let err = stderr(&output);
    assert!(err.contains("size \"5\" needs a unit: 5GiB, 5MiB, or 5B if you mean bytes"), "{err}");
    assert_ok(&world.tbuild(&["cache", "gc", "--max-size", "5GiB"]));
}

#[test]
fn key_output_is_in_columns() {
    let world = World::new();
    let recipe = fixture_recipe();
    let repo = world.repo();
    let output =
        world.tbuild(&["key", "--repo", repo.to_str().unwrap(), "--sha", "main", "--recipe", recipe.to_str().unwrap()]);
    assert_ok(&output);
    let text = String::from_utf8(output.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 6, "{text}");
    // Names padded to the longest, then the key; the counts end every line at one column.
    let name_width = lines.iter().map(|l| l.split_whitespace().next().unwrap().len()).max().unwrap();
    for line in &lines {
        let key = line.split_whitespace().nth(1).unwrap();
        assert_eq!(line.find(key), Some(name_width + 2), "keys in one column:\n{text}");
    }
    assert!(lines.windows(2).all(|w| w[0].len() == w[1].len()), "counts right-aligned:\n{text}");
}

#[test]
fn core_help_lists_global_options_last_with_the_default_cache_dir() {
    let world = World::new();
    let output = world.tbuild(&["core", "--help"]);
    assert_ok(&output);
    let help = String::from_utf8(output.stdout).unwrap();
    let at = |needle: &str| help.find(needle).unwrap_or_else(|| panic!("no {needle:?} in:\n{help}"));
    let global = at("Global options:");
    for own in ["--sha <REV>", "--path <DIR>", "--repo <URL|PATH>", "--out <DIR>", "--targets <A,B>"] {
        assert!(at(own) < global, "{own} is listed before the global options:\n{help}");
    }
    for global_flag in ["-q, --quiet", "-v, --verbose", "--cache-dir <DIR>"] {
        assert!(at(global_flag) > global, "{global_flag} is under Global options:\n{help}");
    }
    assert!(help.contains("~/.cache/tbuild"), "the default cache dir is shown:\n{help}");
}

#[test]
fn the_error_table_quotes_what_clap_prints_for_sha_and_path() {
    let world = World::new();
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let table = &readme[readme.find("### Every error, and what to do").unwrap()..];
    for args in [&["core", "--sha", "main", "--path", "."][..], &["core"][..]] {
        let output = world.tbuild(args);
        assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
        let err = stderr(&output);
        let message = err.lines().next().unwrap().trim_start_matches("error: ").trim_end_matches(':');
        assert!(table.contains(message), "the error table quotes {message:?}");
    }
    assert!(!table.contains("give exactly one of --sha and --path"), "clap answers first; tbuild never prints it");
}
