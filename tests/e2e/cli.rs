//! The command line as a user meets it, driving the binary: every subcommand refuses the
//! flags it does not read (a flag that parses is a flag that does something), `--format` and
//! its `--json` short form on every command that prints data, completion scripts and the man
//! page generated from the parser, `--version` naming its commit, and no colour codes where
//! no terminal is or under `NO_COLOR`.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output};

/// `tbuild ARGS` with a cache dir of its own and only the environment the test gives.
pub fn tbuild(args: &[&str], env: &[(&str, &str)]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tbuild"));
    cmd.args(args)
        .current_dir(dir.path())
        .env("TBUILD_CACHE_DIR", dir.path().join("cache"))
        .env("XDG_CONFIG_HOME", dir.path().join("config-home"))
        .env_remove("TBUILD_CONFIG")
        .env_remove("TBUILD_CORE_REPO")
        .env_remove("NO_COLOR")
        .env_remove("CLICOLOR_FORCE")
        .env_remove("GITHUB_OUTPUT");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// `tbuild PATH... --help`.
pub fn help(path: &[String]) -> String {
    let mut args: Vec<&str> = path.iter().map(String::as_str).collect();
    args.push("--help");
    let output = tbuild(&args, &[]);
    assert!(output.status.success(), "tbuild {args:?}: {}", stderr(&output));
    stdout(&output)
}

/// The names under `Commands:` in a help text (clap's own `help` left out).
fn subcommand_names(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|l| l.trim() != "Commands:")
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter(|l| l.starts_with("  ") && !l.starts_with("    "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_string)
        .collect()
}

/// Every command path with its help: `[]`, `["core"]`, `["cache"]`, `["cache", "gc"]`, ...
pub fn every_command() -> Vec<(Vec<String>, String)> {
    let mut found = Vec::new();
    let mut stack = vec![Vec::new()];
    while let Some(path) = stack.pop() {
        let text = help(&path);
        for name in subcommand_names(&text) {
            let mut sub = path.clone();
            sub.push(name);
            stack.push(sub);
        }
        found.push((path, text));
    }
    found
}

/// The `--long` flags a help text lists (flag lines are indented at most 6 columns; their
/// descriptions, more).
fn long_flags(help: &str) -> BTreeSet<String> {
    help.lines()
        .filter(|l| l.len() - l.trim_start().len() <= 6)
        .filter_map(|l| l.split_whitespace().find(|w| w.starts_with("--")))
        .map(|w| w.trim_end_matches(',').to_string())
        .filter(|w| w.len() > 2)
        .collect()
}

/// The commands with no subcommands of their own (what a user actually runs).
fn leaves() -> Vec<(Vec<String>, String)> {
    every_command().into_iter().filter(|(_, help)| subcommand_names(help).is_empty()).collect()
}

#[test]
fn every_subcommand_rejects_the_flags_it_does_not_use() {
    let leaves = leaves();
    assert!(leaves.len() >= 18, "found only {} commands: {leaves:?}", leaves.len());
    let all: BTreeSet<String> = leaves.iter().flat_map(|(_, help)| long_flags(help)).collect();
    for flag in ["--range", "--stats", "--fail-on-cache-miss", "--json", "--format", "--all"] {
        assert!(all.contains(flag), "{flag} is some command's flag: {all:?}");
    }
    for (path, help) in &leaves {
        let own = long_flags(help);
        for flag in all.difference(&own) {
            let mut args: Vec<&str> = path.iter().map(String::as_str).collect();
            args.push(flag);
            let output = tbuild(&args, &[]);
            assert_eq!(output.status.code(), Some(2), "tbuild {args:?} is refused: {}", stderr(&output));
            assert!(
                stderr(&output).contains(&format!("unexpected argument '{flag}'")),
                "{args:?}: {}",
                stderr(&output)
            );
        }
    }
}

#[test]
fn restore_and_recipe_no_longer_take_key_range_flags() {
    for args in [
        &["restore", "--sha", "main", "--range", "a..b"][..],
        &["restore", "--sha", "main", "--stats"],
        &["recipe", "--sha", "main", "--range", "a..b"],
        &["recipe", "--sha", "main", "--stats"],
    ] {
        let output = tbuild(args, &[]);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {}", stderr(&output));
        assert!(stderr(&output).contains("unexpected argument"), "{args:?}: {}", stderr(&output));
    }
    // key --range read only --json; --format github it ignored, and now refuses.
    let output = tbuild(&["key", "--range", "a..b", "--format", "github"], &[]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(stderr(&output).contains("with --range use text or json"), "{}", stderr(&output));
    // recipe prints TOML or JSON: `github` is a key format, not one of its own.
    let output = tbuild(&["recipe", "--sha", "main", "--format", "github"], &[]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(stderr(&output).contains("[possible values: toml, json]"), "{}", stderr(&output));
}

/// The commands whose output is data a script reads.
const PRINTING: &[&[&str]] = &[
    &["core"],
    &["key"],
    &["recipe"],
    &["restore"],
    &["explain"],
    &["affected"],
    &["upstream", "check"],
    &["upstream", "constraints"],
    &["release", "download"],
    &["cache", "export"],
    &["cache", "import"],
    &["cache", "dir"],
    &["cache", "ls"],
    &["cache", "du"],
    &["cache", "verify"],
    &["cache", "gc"],
    &["cache", "clean"],
];

/// `--format`'s `[default: X]` and `[possible values: a, b]` in a long help text.
fn format_default_and_values(help: &str) -> (String, Vec<String>) {
    let text = help.split_whitespace().collect::<Vec<_>>().join(" ");
    let entry = &text[text.find("--format <FORMAT>").expect("--format in help")..];
    let entry = &entry[..entry.find("--json").unwrap()];
    let values = if let Some(at) = entry.find("[possible values: ") {
        let list = &entry[at + "[possible values: ".len()..];
        list[..list.find(']').unwrap()].split(", ").map(str::to_string).collect()
    } else {
        // Long help lists them as `- name: doc` lines.
        entry.split(" - ").skip(1).filter_map(|item| Some(item.split_once(':')?.0.to_string())).collect()
    };
    let default = entry.split("[default: ").nth(1).and_then(|d| d.split(']').next()).expect("a default").to_string();
    (default, values)
}

#[test]
fn every_printing_command_takes_format_and_json_as_its_short_form() {
    for path in PRINTING {
        let path: Vec<String> = path.iter().map(|s| s.to_string()).collect();
        let text = help(&path);
        let flags = long_flags(&text);
        assert!(flags.contains("--format") && flags.contains("--json"), "{path:?}: {flags:?}");
        let (default, values) = format_default_and_values(&text);
        assert!(values.contains(&default), "{path:?}: --format defaults to {default:?}, not one of {values:?}");
        assert!(values.iter().any(|v| v == "json"), "{path:?}: {values:?}");
    }
    // Each command's own default (a generic FormatArgs once gave them all the first one's).
    let defaults: Vec<String> = [&["affected"][..], &["recipe"], &["upstream", "check"], &["key"]]
        .iter()
        .map(|path| format_default_and_values(&help(&path.iter().map(|s| s.to_string()).collect::<Vec<_>>())).0)
        .collect();
    assert_eq!(defaults, ["json", "toml", "table", "text"]);
    // Run without --format, the default parses: the command gets as far as its real error.
    let output = tbuild(&["affected", "--base", "HEAD", "--repo", "/nonexistent/tbuild-repo"], &[]);
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    // The two spellings print the same; together they are a usage error.
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let env = [("TBUILD_CACHE_DIR", cache.to_str().unwrap())];
    let short = tbuild(&["cache", "dir", "--json"], &env);
    let long = tbuild(&["cache", "dir", "--format", "json"], &env);
    assert!(short.status.success(), "{}", stderr(&short));
    assert_eq!(stdout(&short), stdout(&long));
    let parsed: serde_json::Value = serde_json::from_str(&stdout(&short)).unwrap();
    assert_eq!(parsed["dir"].as_str(), Some(cache.to_str().unwrap()));
    assert_eq!(stdout(&tbuild(&["cache", "dir"], &env)).trim(), cache.to_str().unwrap(), "text stays the plain path");
    let both = tbuild(&["cache", "dir", "--json", "--format", "text"], &env);
    assert_eq!(both.status.code(), Some(2), "{}", stderr(&both));

    // cache clean, which printed nothing on stdout before, reports what it removed.
    std::fs::create_dir_all(cache.join("v1/logs")).unwrap();
    std::fs::write(cache.join("v1/logs/a.log"), vec![b'x'; 1000]).unwrap();
    let clean = tbuild(&["cache", "clean", "--json"], &env);
    assert!(clean.status.success(), "{}", stderr(&clean));
    let report: serde_json::Value = serde_json::from_str(&stdout(&clean)).unwrap();
    assert!(report["freed_bytes"].as_u64().unwrap() >= 1000, "{report}");
    assert!(
        report["removed"].as_array().unwrap().iter().any(|r| r["path"].as_str().unwrap().ends_with("v1")),
        "{report}"
    );
    assert!(!cache.join("v1/logs/a.log").exists());
}

#[test]
fn completions_are_generated_for_bash_zsh_and_fish_and_bash_parses_its_script() {
    let dir = tempfile::tempdir().unwrap();
    for (shell, marker) in [("bash", "complete -F"), ("zsh", "#compdef tbuild"), ("fish", "complete -c tbuild")] {
        let output = tbuild(&["completions", shell], &[]);
        assert!(output.status.success(), "{shell}: {}", stderr(&output));
        let script = stdout(&output);
        assert!(script.contains(marker), "{shell} script:\n{script}");
        // Generated from the parser: a subcommand's own flags are in it.
        assert!(script.contains("fail-on-cache-miss") && script.contains("max-warm-size"), "{shell}");
        let path = dir.path().join(format!("tbuild.{shell}"));
        std::fs::write(&path, &script).unwrap();
        if shell == "bash" {
            let parsed = Command::new("bash").arg("-n").arg(&path).output().unwrap();
            assert!(parsed.status.success(), "bash -n: {}", stderr(&parsed));
        }
    }
    let unknown = tbuild(&["completions", "tcsh"], &[]);
    assert_eq!(unknown.status.code(), Some(2));
    // `bash -n` is live: a broken script is refused.
    let broken = dir.path().join("broken.bash");
    std::fs::write(&broken, "_tbuild() {\n  case x in\n}\n").unwrap();
    assert!(!Command::new("bash").arg("-n").arg(&broken).output().unwrap().status.success());
}

#[test]
fn man_prints_a_roff_page_with_every_subcommand() {
    let output = tbuild(&["man"], &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    let page = stdout(&output);
    assert!(page.starts_with(".ie") || page.contains(".TH tbuild 1"), "{}", &page[..page.len().min(300)]);
    for section in ["TBUILD CORE", "TBUILD RESTORE", "TBUILD CACHE GC", "TBUILD UPSTREAM CHECK", "TBUILD COMPLETIONS"] {
        assert!(page.contains(&format!(".SH \"{section}\"")), "no {section} section");
    }
    assert!(page.contains(r"fail\-on\-cache\-miss"), "subcommand options are in the page");
}

#[test]
fn version_names_the_commit_and_build_date() {
    let output = tbuild(&["--version"], &[]);
    assert!(output.status.success());
    let text = stdout(&output);
    // tbuild 0.1.0 (0123456789ab 2026-12-02)
    let inner = text.trim().strip_prefix(&format!("tbuild {} (", env!("CARGO_PKG_VERSION"))).expect(&text);
    let (commit, date) = inner.strip_suffix(')').and_then(|i| i.split_once(' ')).expect(&text);
    let date: Vec<&str> = date.split('-').collect();
    assert!(date.len() == 3 && date.iter().all(|p| p.parse::<u32>().is_ok()), "{text}");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let in_git =
        Command::new("git").args(["rev-parse", "HEAD"]).current_dir(root).output().is_ok_and(|o| o.status.success());
    if !in_git {
        assert_eq!(commit, "unknown", "{text}");
        return;
    }
    assert!(commit.len() == 12 && commit.bytes().all(|b| b.is_ascii_hexdigit()), "{text}");
    let exists = Command::new("git")
        .args(["cat-file", "-e", &format!("{commit}^{{commit}}")])
        .current_dir(root)
        .output()
        .unwrap();
    assert!(exists.status.success(), "{commit} is a commit of this repository");
}

/// `tbuild key --path DIR` over a dir holding a non-UTF-8 name: a diagnostic (tracing's
/// `WARN`) and then an error (no recipe matches), without network or fixture.
fn warn_then_fail(env: &[(&str, &str)]) -> String {
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(std::ffi::OsStr::from_bytes(b"bad\xff")), "").unwrap();
    let output = tbuild(&["-v", "key", "--path", dir.path().to_str().unwrap()], env);
    assert_eq!(output.status.code(), Some(4), "{}", stderr(&output));
    let text = stderr(&output);
    assert!(text.contains("WARN") && text.contains("error:"), "a diagnostic and an error: {text}");
    text
}

#[test]
fn no_colour_codes_off_a_terminal_or_under_no_color() {
    // Piped stderr: plain, diagnostics included (they were coloured whatever stderr was).
    let piped = warn_then_fail(&[]);
    assert!(!piped.contains('\x1b'), "escape codes off a terminal: {piped:?}");
    // The check is live: forced colour does write escape codes...
    let forced = warn_then_fail(&[("CLICOLOR_FORCE", "1")]);
    assert!(forced.contains('\x1b'), "CLICOLOR_FORCE colours: {forced:?}");
    // ...and NO_COLOR wins even over it.
    let no_color = warn_then_fail(&[("CLICOLOR_FORCE", "1"), ("NO_COLOR", "1")]);
    assert!(!no_color.contains('\x1b'), "NO_COLOR: {no_color:?}");
}
