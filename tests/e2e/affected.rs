//! `tbuild affected` on a fixture history shaped like tasker-contrib.

use std::path::Path;

use serde_json::Value;

use crate::support::{git_in, stderr};
use crate::upstream::tbuild_in;

fn write(repo: &Path, rel: &str, text: &str) {
    let path = repo.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn commit(repo: &Path, message: &str) {
    git_in(repo, &["add", "-A"]);
    git_in(repo, &["-c", "user.name=t", "-c", "user.email=t@t.invalid", "commit", "-q", "-m", message]);
}

/// main with one file per area of the design doc's table.
fn contrib() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    git_in(&repo, &["init", "-q", "-b", "main"]);
    for area in ["rails/tasker-contrib-rails/lib/a.rb", "python/pkg/a.py", "typescript/pkg/a.ts", "rust/pkg/src/lib.rs"]
    {
        write(&repo, area, "v1\n");
    }
    write(&repo, "ops/compose.yml", "v1\n");
    write(&repo, "docs/guide.md", "v1\n");
    write(&repo, "README.md", "v1\n");
    commit(&repo, "initial");
    dir
}

fn affected(dir: &Path, args: &[&str]) -> Value {
    let repo = dir.join("repo");
    let mut all = vec!["affected", "--repo", repo.to_str().unwrap()];
    all.extend_from_slice(args);
    let output = tbuild_in(dir, &all, &[]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    serde_json::from_slice(&output.stdout).unwrap()
}

fn selected(selection: &Value) -> Vec<String> {
    let jobs = selection["jobs"].as_object().unwrap();
    jobs.iter().filter(|(_, v)| v.as_bool().unwrap()).map(|(k, _)| k.clone()).collect()
}

#[test]
fn a_docs_only_change_selects_only_docs() {
    let dir = contrib();
    let repo = dir.path().join("repo");
    git_in(&repo, &["checkout", "-q", "-b", "docs-fix"]);
    write(&repo, "docs/guide.md", "v2\n");
    write(&repo, "docs/new.md", "new\n");
    commit(&repo, "docs");
    let selection = affected(dir.path(), &["--base", "main", "--head", "docs-fix"]);
    assert_eq!(selected(&selection), ["docs"]);
    assert_eq!(selection["changed"], serde_json::json!(["docs/guide.md", "docs/new.md"]));
    // Every job of the design doc's table is listed, selected or not, in its order.
    let jobs: Vec<&String> = selection["jobs"].as_object().unwrap().keys().collect();
    assert_eq!(jobs, ["rails", "python", "typescript", "rust", "ops", "docs"]);
}

#[test]
fn a_change_in_two_language_dirs_selects_both() {
    let dir = contrib();
    let repo = dir.path().join("repo");
    git_in(&repo, &["checkout", "-q", "-b", "feature"]);
    write(&repo, "rails/tasker-contrib-rails/lib/a.rb", "v2\n");
    std::fs::remove_file(repo.join("python/pkg/a.py")).unwrap();
    commit(&repo, "rails and python");
    // HEAD is the default --head.
    let selection = affected(dir.path(), &["--base", "main"]);
    assert_eq!(selected(&selection), ["rails", "python"]);
    assert_eq!(selection["matched"]["python"], serde_json::json!(["python/pkg/a.py"]), "a deletion counts");
}

#[test]
fn the_diff_starts_at_the_merge_base_of_a_diverged_branch() {
    let dir = contrib();
    let repo = dir.path().join("repo");
    git_in(&repo, &["checkout", "-q", "-b", "feature"]);
    write(&repo, "typescript/pkg/a.ts", "v2\n");
    commit(&repo, "typescript on the branch");
    // main moves on after the branch point: its rust change is not the branch's.
    git_in(&repo, &["checkout", "-q", "main"]);
    write(&repo, "rust/pkg/src/lib.rs", "v2\n");
    commit(&repo, "rust on main");
    let fork_point = git_in(&repo, &["merge-base", "main", "feature"]).trim().to_string();
    let selection = affected(dir.path(), &["--base", "main", "--head", "feature"]);
    assert_eq!(selected(&selection), ["typescript"], "a two-dot diff would also select rust");
    assert_eq!(selection["merge_base"], fork_point.as_str());
    assert_eq!(selection["base"], git_in(&repo, &["rev-parse", "main"]).trim());
}

#[test]
fn github_outputs_and_a_rule_file() {
    let dir = contrib();
    let repo = dir.path().join("repo");
    git_in(&repo, &["checkout", "-q", "-b", "feature"]);
    write(&repo, "README.md", "v2\n");
    write(&repo, "rails/tasker-contrib-rails/CHANGELOG.md", "v2\n");
    commit(&repo, "readme and changelog");
    let rules = dir.path().join("rules.toml");
    std::fs::write(
        &rules,
        "[[job]]\nname = \"ruby\"\npaths = [\"rails/**\"]\nexclude = [\"**/*.md\"]\n\n\
[[job]]\nname = \"docs\"\npaths = [\"docs/**\", \"*.md\", \"**/*.md\"]\n",
    )
    .unwrap();
    let outputs = dir.path().join("outputs");
    let args = [
        "affected",
        "--repo",
        repo.to_str().unwrap(),
        "--base",
        "main",
        "--rules",
        rules.to_str().unwrap(),
        "--format",
        "github",
    ];
    let output = tbuild_in(dir.path(), &args, &[("GITHUB_OUTPUT", outputs.to_str().unwrap())]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let written = std::fs::read_to_string(outputs).unwrap();
    assert_eq!(written, "ruby=false\ndocs=true\nany=true\njobs=[\"docs\"]\n");

    std::fs::write(&rules, "[[job]]\nname = \"ruby\"\npaths = [\"rails/[\"]\n").unwrap();
    let bad = tbuild_in(dir.path(), &args, &[]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(stderr(&bad).contains("rules.toml") && stderr(&bad).contains("bad glob 'rails/['"), "{}", stderr(&bad));
    let unknown = tbuild_in(dir.path(), &["affected", "--repo", repo.to_str().unwrap(), "--base", "nope"], &[]);
    assert_eq!(unknown.status.code(), Some(3));
    assert!(stderr(&unknown).contains("unknown revision 'nope'"), "{}", stderr(&unknown));
}
