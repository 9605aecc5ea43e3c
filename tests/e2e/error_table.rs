//! The README's exit codes are the code's: the "Exit codes" table, the `exit` module of
//! `src/error.rs` and `tbuild --help` list the same codes, the error table uses no other, and
//! every code is asserted by at least one end-to-end test.

use std::collections::BTreeSet;
use std::path::Path;

use crate::support::*;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The leading number of each row of the first table after HEADING.
fn table_codes(readme: &str, heading: &str, column: usize) -> BTreeSet<i32> {
    let section = &readme[readme.find(heading).unwrap_or_else(|| panic!("no {heading:?} in README.md"))..];
    section
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .filter_map(|l| l.split('|').nth(column).and_then(|c| c.trim().parse().ok()))
        .collect()
}

/// `pub const NAME: i32 = N;` inside `pub mod exit` of src/error.rs.
fn source_codes() -> BTreeSet<i32> {
    let source = std::fs::read_to_string(root().join("src/error.rs")).unwrap();
    let module = &source[source.find("pub mod exit").expect("pub mod exit in src/error.rs")..];
    let module = &module[..module.find("\n}").unwrap()];
    module
        .lines()
        .filter_map(|l| {
            l.trim().strip_prefix("pub const ")?.split('=').nth(1)?.trim().trim_end_matches(';').parse().ok()
        })
        .collect()
}

/// The numbers that start each item of `Exit codes: 0 ok, 1 internal error, ...` in --help.
fn help_codes() -> BTreeSet<i32> {
    let world = World::new();
    let output = world.tbuild(&["--help"]);
    assert_ok(&output);
    let help = String::from_utf8(output.stdout).unwrap().split_whitespace().collect::<Vec<_>>().join(" ");
    let text = &help[help.find("Exit codes:").expect("--help lists the exit codes") + "Exit codes:".len()..];
    // The after_help text is the end of --help.
    text.split(", ").filter_map(|item| item.trim().split(' ').next()?.parse().ok()).collect()
}

#[test]
fn readme_exit_codes_match_the_code_and_the_help() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let documented = table_codes(&readme, "## Exit codes", 1);
    assert_eq!(documented, source_codes(), "README's exit code table vs src/error.rs `exit`");
    assert_eq!(documented, help_codes(), "README's exit code table vs `tbuild --help`");

    let in_error_table = table_codes(&readme, "### Every error, and what to do", 1);
    let without_ok: BTreeSet<i32> = documented.iter().copied().filter(|&c| c != 0).collect();
    assert_eq!(in_error_table, without_ok, "the error table has a row for every failing code, and no other");
}

#[test]
fn every_exit_code_is_asserted_by_an_end_to_end_test() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let mut tests = String::new();
    for entry in std::fs::read_dir(root().join("tests/e2e")).unwrap() {
        tests.push_str(&std::fs::read_to_string(entry.unwrap().path()).unwrap());
    }
    for code in table_codes(&readme, "## Exit codes", 1) {
        let asserted = tests.contains(&format!("code(), Some({code})"))
            || tests.contains(&format!("assert_fails(&output, {code},"))
            || (code == 0 && tests.contains("assert_ok("));
        assert!(asserted, "no end-to-end test asserts exit code {code}");
    }
}

/// Exit 1: the run's outputs are published, then the GitHub Actions output file cannot be
/// written (here it is a directory).
#[test]
fn an_unwritable_github_output_file_is_exit_1_after_publishing() {
    let world = World::new();
    let github_output = world.dir.path().join("github-output-is-a-dir");
    std::fs::create_dir(&github_output).unwrap();
    let args = world.core_args("main", "out", "tasker-ctl");
    let output = world.tbuild_env(
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
        &[("GITHUB_OUTPUT", github_output.to_str().unwrap())],
    );
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(stderr(&output).contains("cannot write the GitHub Actions file"), "{}", stderr(&output));
    assert!(world.out("out").join("tasker-core-binaries/tasker-ctl").exists(), "--out was published first");
}
