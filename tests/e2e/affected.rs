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

/// The `run:` script of the `id: affected` step of the README's CI snippet: the YAML block
/// after `<!-- snippet: affected-ci -->` in README.md.
pub fn readme_snippet_run() -> String {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let (_, after) = readme.split_once("<!-- snippet: affected-ci -->").expect("the README marks its CI snippet");
    let block = after.split_once("```yaml\n").unwrap().1.split_once("```").unwrap().0;
    let steps = yaml_rust2::YamlLoader::load_from_str(block).expect("the snippet is YAML").remove(0);
    let step = steps.as_vec().unwrap().iter().find(|s| s["id"].as_str() == Some("affected")).expect("id: affected");
    step["run"].as_str().expect("a run script").to_string()
}

/// Runs the README snippet's script in `cwd` as the runner would for an event, with the
/// tbuild under test first on PATH; the jobs it selected (its `jobs=` output).
fn snippet_selects(dir: &Path, cwd: &Path, event: &str, base_ref: &str, before: &str) -> Vec<String> {
    let bin = dir.join("bin");
    if !bin.exists() {
        std::fs::create_dir_all(&bin).unwrap();
        std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_tbuild"), bin.join("tbuild")).unwrap();
    }
    let outputs = dir.join("github-output");
    std::fs::write(&outputs, "").unwrap();
    let mut paths = vec![bin];
    paths.extend(std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()));
    let output = std::process::Command::new("bash")
        .args(["-e", "-c", &readme_snippet_run()])
        .current_dir(cwd)
        .env("PATH", std::env::join_paths(paths).unwrap())
        .env("EVENT", event)
        .env("BASE_REF", base_ref)
        .env("BEFORE", before)
        .env("GITHUB_OUTPUT", &outputs)
        .env_remove("TBUILD_CONFIG")
        .env("XDG_CONFIG_HOME", dir.join("config-home"))
        .output()
        .unwrap();
    assert!(output.status.success(), "{event} {before}: {}", stderr(&output));
    let written = std::fs::read_to_string(&outputs).unwrap();
    let jobs = written.lines().find_map(|l| l.strip_prefix("jobs=")).unwrap_or_else(|| panic!("{written}"));
    let any = written.lines().find_map(|l| l.strip_prefix("any=")).unwrap();
    let jobs: Vec<String> = serde_json::from_str(jobs).unwrap();
    assert_eq!(any, (!jobs.is_empty()).to_string());
    jobs
}

#[test]
fn the_readme_ci_snippet_selects_the_jobs_of_the_design_docs_table_per_event() {
    let dir = contrib();
    let repo = dir.path().join("repo");
    let rev = |r: &str| git_in(&repo, &["rev-parse", r]).trim().to_string();
    // A push to main of a Python change: `before` is main's previous commit.
    let before = rev("HEAD");
    write(&repo, "python/pkg/a.py", "v2\n");
    commit(&repo, "python");
    assert_eq!(snippet_selects(dir.path(), &repo, "push", "", &before), ["python"]);
    // The same from a subdirectory of the checkout.
    let sub = repo.join("rails/tasker-contrib-rails");
    assert_eq!(snippet_selects(dir.path(), &sub, "push", "", &before), ["python"]);

    // A pull request from a branch with a Rails change, while main moved on with a Rust one:
    // only the branch's change counts (the merge base with origin/main).
    git_in(&repo, &["checkout", "-q", "-b", "feature"]);
    write(&repo, "rails/tasker-contrib-rails/lib/a.rb", "v2\n");
    commit(&repo, "rails");
    git_in(&repo, &["checkout", "-q", "main"]);
    write(&repo, "rust/pkg/src/lib.rs", "v2\n");
    commit(&repo, "rust on main");
    git_in(&repo, &["update-ref", "refs/remotes/origin/main", "main"]);
    git_in(&repo, &["checkout", "-q", "feature"]);
    assert_eq!(snippet_selects(dir.path(), &repo, "pull_request", "main", ""), ["rails"]);

    // The first push of the branch (`before` is forty zeros), a force push whose `before`
    // is gone, and a manual run (no `before`): every job of the table.
    let all = ["rails", "python", "typescript", "rust", "ops", "docs"];
    assert_eq!(snippet_selects(dir.path(), &repo, "push", "", &"0".repeat(40)), all);
    assert_eq!(snippet_selects(dir.path(), &repo, "push", "", &"1".repeat(40)), all);
    assert_eq!(snippet_selects(dir.path(), &repo, "workflow_dispatch", "", ""), all);
}

#[test]
fn affected_finds_the_repository_from_a_subdirectory() {
    let dir = contrib();
    let repo = dir.path().join("repo");
    git_in(&repo, &["checkout", "-q", "-b", "feature"]);
    write(&repo, "typescript/pkg/a.ts", "v2\n");
    commit(&repo, "typescript");
    let sub = repo.join("docs");
    let output = tbuild_in(dir.path(), &["affected", "--repo", sub.to_str().unwrap(), "--base", "main"], &[]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let selection: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(selected(&selection), ["typescript"]);
    assert_eq!(selection["changed"], serde_json::json!(["typescript/pkg/a.ts"]), "paths from the repository root");
    // A null base lists every file of the head's tree.
    let output = tbuild_in(dir.path(), &["affected", "--repo", sub.to_str().unwrap(), "--base", &"0".repeat(40)], &[]);
    let selection: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(selection["changed"].as_array().unwrap().len(), 7, "{selection}");
    assert_eq!(selection["merge_base"], "0".repeat(40));
    // Outside any repository: exit 3 naming the path.
    let outside = tempfile::tempdir().unwrap();
    let output =
        tbuild_in(dir.path(), &["affected", "--repo", outside.path().to_str().unwrap(), "--base", "main"], &[]);
    assert_eq!(output.status.code(), Some(3));
    assert!(stderr(&output).contains("is not in a git repository"), "{}", stderr(&output));
}
