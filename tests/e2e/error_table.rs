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

/// `NAME -> N` of every `pub const NAME: i32 = N;` in `pub mod exit` of src/error.rs.
fn source_constants() -> std::collections::BTreeMap<String, i32> {
    let source = std::fs::read_to_string(root().join("src/error.rs")).unwrap();
    let module = &source[source.find("pub mod exit").expect("pub mod exit in src/error.rs")..];
    let module = &module[..module.find("\n}").unwrap()];
    module
        .lines()
        .filter_map(|l| {
            let (name, value) = l.trim().strip_prefix("pub const ")?.split_once(": i32 =")?;
            Some((name.to_string(), value.trim().trim_end_matches(';').parse().ok()?))
        })
        .collect()
}

/// What a text says an exit code means, by the constant of src/error.rs it describes. A
/// phrase naming an exit code must contain a word of its own code's row, so `Exit 9 when a
/// package's severity...` (9 is CACHE_MISS, severity is LAG's) fails.
const MEANINGS: &[(&str, &[&str])] = &[
    ("OK", &["ok", "else 0", "cache-hit=false", "admits its pinned version"]),
    ("INTERNAL", &["internal"]),
    ("USAGE", &["usage", "bad versions file", "bad rule file"]),
    ("SOURCE", &["source", "unknown revision"]),
    ("RECIPE", &["recipe"]),
    ("TOOLCHAIN", &["toolchain"]),
    ("BUILD", &["build failed"]),
    ("CACHE", &["cache error", "corrupt", "a remote that fails"]),
    ("OUTPUT", &["--out refused", "output dir refused"]),
    ("CACHE_MISS", &["miss", "not in the cache"]),
    ("LAG", &["--fail-on", "severity", "constraint refuses", "constraint failed"]),
    ("REMOTE", &["registry", "github", "lookup failed", "release not found"]),
];

/// WORD occurs in TEXT as a whole word (`--fail-on` is not in `--fail-on-cache-miss`).
fn has_word(text: &str, word: &str) -> bool {
    let is_word = |c: char| c.is_alphanumeric() || c == '-' || c == '_';
    text.match_indices(word).any(|(at, _)| {
        !text[..at].chars().next_back().is_some_and(is_word)
            && !text[at + word.len()..].chars().next().is_some_and(is_word)
    })
}

/// The phrases of TEXT that name an exit code, each with its code: the items of an
/// `Exit codes: 0 ok, 2 ...` list, and any clause (`.` or `;` apart) with `exit N`, `exits N`,
/// `exit code N`, `exit code: N` or `exit code is N`, or an `else N when` continuing one.
fn exit_phrases(text: &str) -> Vec<(i32, String)> {
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut found = Vec::new();
    let (prose, list) = match text.find("Exit codes:") {
        Some(at) => (&text[..at], Some(&text[at + "Exit codes:".len()..])),
        None => (text.as_str(), None),
    };
    for item in list.into_iter().flat_map(|l| l.split(", ")) {
        if let Some(code) = item.split_whitespace().next().and_then(|n| n.parse().ok()) {
            found.push((code, item.to_lowercase()));
        }
    }
    for clause in prose.split(". ").flat_map(|s| s.split("; ")) {
        let lower = clause.to_lowercase();
        let words: Vec<&str> = lower.split_whitespace().collect();
        for (i, word) in words.iter().enumerate() {
            let after = |n: usize| words.get(i + n).map(|w| w.trim_matches(|c: char| !c.is_ascii_digit()));
            let code = match word.trim_start_matches('(') {
                "exit" | "exits" => match words.get(i + 1).copied() {
                    Some("code" | "code:") => after(2).filter(|n| !n.is_empty()).or(after(3)),
                    _ => after(1),
                },
                "else" => after(1),
                _ => None,
            };
            if let Some(code) = code.and_then(|n| n.parse().ok()) {
                found.push((code, lower.clone()));
            }
        }
    }
    found
}

fn check_meanings(place: &str, text: &str, constants: &std::collections::BTreeMap<String, i32>) -> usize {
    let phrases = exit_phrases(text);
    for (code, phrase) in &phrases {
        let named: BTreeSet<i32> = MEANINGS
            .iter()
            .filter(|(_, words)| words.iter().any(|w| has_word(phrase, w)))
            .map(|(name, _)| constants[*name])
            .collect();
        assert!(constants.values().any(|c| c == code), "{place}: exit {code} is not in src/error.rs: {phrase:?}");
        assert!(
            named.contains(code),
            "{place}: {phrase:?} names exit {code}, but its words describe the codes {named:?} of src/error.rs"
        );
    }
    phrases.len()
}

#[test]
fn exit_codes_in_every_help_text_and_the_upstream_readme_sections_match_src_error_rs() {
    let constants = source_constants();
    let names: BTreeSet<&str> = MEANINGS.iter().map(|(name, _)| *name).collect();
    assert_eq!(names, constants.keys().map(String::as_str).collect(), "a meaning for every exit constant");
    let mut checked = 0;
    for (path, help) in crate::cli::every_command() {
        checked += check_meanings(&format!("tbuild {} --help", path.join(" ")), &help, &constants);
    }
    assert!(checked >= 25, "only {checked} exit code phrases found in the help texts");

    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    for heading in ["### `tbuild upstream check`", "### `tbuild upstream constraints [DIR]`"] {
        let section = &readme[readme.find(heading).unwrap_or_else(|| panic!("no {heading:?} in README.md"))..];
        let section =
            &section[heading.len()..section[heading.len()..].find("\n#").map_or(section.len(), |e| e + heading.len())];
        assert!(check_meanings(heading, section, &constants) >= 1, "{heading} names its exit codes");
    }

    // The check is live: the old `--fail-on` help and README sentence are refused.
    let old = std::panic::catch_unwind(|| {
        check_meanings("old", "Exit 9 when a package's severity is at least this one.", &source_constants())
    });
    assert!(old.is_err(), "exit 9 for --fail-on is caught");
    let old = std::panic::catch_unwind(|| {
        check_meanings(
            "old",
            "Exit code: 10 when a lookup failed; else 9 when `--fail-on S` is given.",
            &source_constants(),
        )
    });
    assert!(old.is_err(), "the old README sentence is caught");
}
