//! The config file (`src/config.rs`): it names the remote when no flag does, flags win, and a
//! malformed or missing one is a usage error that names the file.

use crate::support::*;

/// A remote URL on a port nothing listens on: using it gives one warning naming it.
fn closed_remote(path: &str) -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    format!("http://127.0.0.1:{port}/{path}")
}

#[test]
fn the_config_file_names_the_remote_and_flags_win() {
    let world = World::new();
    let from_config = closed_remote("from-config");
    let dir = world.dir.path().join("config-home/tbuild");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("config.toml"), format!("[remote]\nurl = \"{from_config}\"\n")).unwrap();

    // Found at $XDG_CONFIG_HOME/tbuild/config.toml (support points it into the world).
    let output = world.run_core("main", "out", "tasker-ctl");
    assert_ok(&output);
    let err = stderr(&output);
    assert!(err.contains(&format!("remote cache {from_config} is not usable")), "{err}");

    // A flag (or TBUILD_REMOTE) wins over the file. Another target: a local hit would not
    // ask the remote at all.
    let from_flag = closed_remote("from-flag");
    let output = world.core_with(
        "main",
        "out2",
        &["--recipe", fixture_recipe().to_str().unwrap(), "--targets", "tasker-server", "--remote", &from_flag],
    );
    assert_ok(&output);
    let err = stderr(&output);
    assert!(err.contains(&format!("remote cache {from_flag} is not usable")) && !err.contains("from-config"), "{err}");
}

#[test]
fn a_malformed_or_missing_config_file_is_a_usage_error_naming_it() {
    let world = World::new();
    let config = world.dir.path().join("tbuild.toml");
    std::fs::write(&config, "[remote]\nurll = \"http://typo\"\n").unwrap();
    let args = world.core_args("main", "out", "tasker-ctl");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let output = world.tbuild_env(&args, &[("TBUILD_CONFIG", config.to_str().unwrap())]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    let err = stderr(&output);
    assert!(
        err.contains("malformed config file") && err.contains(config.to_str().unwrap()) && err.contains("urll"),
        "{err}"
    );
    assert!(!world.out("out").exists(), "nothing ran");

    let missing = world.dir.path().join("nowhere.toml");
    let output = world.tbuild_env(&args, &[("TBUILD_CONFIG", missing.to_str().unwrap())]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("TBUILD_CONFIG names"), "{}", stderr(&output));
}
