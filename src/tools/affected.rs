//! Path-based job selection: the files a change touches, from the merge base of its base and
//! head to its head (what a pull request shows), matched against one glob list per CI job.
//!
//! Rule file (TOML), one `[[job]]` per CI job, in the order the outputs list them:
//!
//! ```toml
//! [[job]]
//! name = "rails"                  # the output's name: `rails=true`
//! paths = ["rails/**"]            # globs, `/`-separated, relative to the repository root
//! exclude = ["rails/**/*.md"]     # optional: paths that never select this job
//! ```
//!
//! Without a rule file the design doc's table applies: `rails/**`, `python/**`,
//! `typescript/**`, `rust/**`, `ops/**`, `docs/**`, each selecting the job of that name.
//!
//! The repository is discovered from the given path upwards, as git does, so the command works
//! from any subdirectory of a checkout. A base of forty zeros (git's null object id, what GitHub
//! sends as `github.event.before` on the first push of a branch) has no history to diff
//! against: every file of the head's tree counts as changed, so every job with a file runs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use globset::{GlobSet, GlobSetBuilder};
use serde::{Deserialize, Serialize};

/// The design doc's jobs, each selected by its top-level directory.
pub const DEFAULT_JOBS: [&str; 6] = ["rails", "python", "typescript", "rust", "ops", "docs"];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    #[serde(default)]
    job: Vec<JobRule>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct JobRule {
    name: String,
    paths: Vec<String>,
    #[serde(default)]
    exclude: Vec<String>,
}

/// A job and the globs that select it.
pub struct Rule {
    pub job: String,
    paths: GlobSet,
    exclude: GlobSet,
}

impl Rule {
    pub fn selects(&self, path: &str) -> bool {
        self.paths.is_match(path) && !self.exclude.is_match(path)
    }
}

pub fn default_rules() -> Vec<Rule> {
    DEFAULT_JOBS
        .iter()
        .map(|job| rule(job, &[format!("{job}/**")], &[]).expect("the default globs are valid"))
        .collect()
}

fn rule(job: &str, paths: &[String], exclude: &[String]) -> Result<Rule, String> {
    // `literal_separator`: `*` does not cross `/`, as in .gitignore; `**` does.
    let set = |globs: &[String]| -> Result<GlobSet, String> {
        let mut builder = GlobSetBuilder::new();
        for g in globs {
            let glob = globset::GlobBuilder::new(g).literal_separator(true).build();
            builder.add(glob.map_err(|e| format!("job {job}: bad glob '{g}': {e}"))?);
        }
        builder.build().map_err(|e| format!("job {job}: {e}"))
    };
    Ok(Rule { job: job.to_string(), paths: set(paths)?, exclude: set(exclude)? })
}

/// Reads a rule file.
pub fn load_rules(path: &Path) -> Result<Vec<Rule>, AffectedError> {
    let bad = |reason: String| AffectedError::Rules { path: path.into(), reason };
    let text = std::fs::read_to_string(path).map_err(|e| bad(format!("cannot read it: {e}")))?;
    let file: RuleFile = toml::from_str(&text).map_err(|e| bad(e.to_string()))?;
    let mut rules: Vec<Rule> = Vec::new();
    for job in file.job {
        let valid = !job.name.is_empty() && job.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !valid {
            return Err(bad(format!("job name '{}' must be letters, digits, - or _ (it names an output)", job.name)));
        }
        if rules.iter().any(|r| r.job == job.name) {
            return Err(bad(format!("job '{}' is defined twice", job.name)));
        }
        if job.paths.is_empty() {
            return Err(bad(format!("job '{}' has no paths", job.name)));
        }
        rules.push(rule(&job.name, &job.paths, &job.exclude).map_err(bad)?);
    }
    if rules.is_empty() {
        return Err(bad("it defines no [[job]]".into()));
    }
    Ok(rules)
}

/// What a change selects.
#[derive(Debug, Serialize)]
pub struct Selection {
    pub base: String,
    pub head: String,
    pub merge_base: String,
    /// Every path the change adds, modifies or deletes (both sides of a rename).
    pub changed: Vec<String>,
    /// job -> selected, in rule order.
    pub jobs: serde_json::Map<String, serde_json::Value>,
    /// job -> the changed paths that selected it.
    pub matched: BTreeMap<String, Vec<String>>,
}

/// Whether `rev` is git's null object id (any length of zeros from 40 on, as GitHub sends it).
pub fn is_null_rev(rev: &str) -> bool {
    rev.len() >= 40 && rev.bytes().all(|b| b == b'0')
}

/// Diffs merge-base(base, head)..head in the repository that contains `repo` and applies the
/// rules; a null `base` (see the module doc) diffs the empty tree against head.
pub fn select(repo: &Path, base: &str, head: &str, rules: &[Rule]) -> Result<Selection, AffectedError> {
    let git = |what: String| move |e: git2::Error| AffectedError::Git { reason: format!("{what}: {}", e.message()) };
    let repository =
        git2::Repository::discover(repo).map_err(git(format!("{} is not in a git repository", repo.display())))?;
    let commit = |rev: &str| -> Result<git2::Commit<'_>, AffectedError> {
        let object = repository.revparse_single(rev).map_err(git(format!("unknown revision '{rev}'")))?;
        object.peel_to_commit().map_err(git(format!("'{rev}' is not a commit")))
    };
    let head_commit = commit(head)?;
    let (base_id, merge_base, old_tree) = if is_null_rev(base) {
        (base.to_string(), base.to_string(), None)
    } else {
        let base_commit = commit(base)?;
        let merge_base = repository
            .merge_base(base_commit.id(), head_commit.id())
            .map_err(git(format!("'{base}' and '{head}' have no common ancestor")))?;
        let tree =
            repository.find_commit(merge_base).and_then(|c| c.tree()).map_err(git("reading the merge base".into()))?;
        (base_commit.id().to_string(), merge_base.to_string(), Some(tree))
    };
    let new_tree = head_commit.tree().map_err(git(format!("reading {head}")))?;
    let diff = repository.diff_tree_to_tree(old_tree.as_ref(), Some(&new_tree), None).map_err(git("diffing".into()))?;
    let mut changed = std::collections::BTreeSet::new();
    for delta in diff.deltas() {
        for file in [delta.old_file(), delta.new_file()] {
            if let Some(path) = file.path() {
                changed.insert(path.to_string_lossy().replace('\\', "/"));
            }
        }
    }
    let changed: Vec<String> = changed.into_iter().collect();
    let mut jobs = serde_json::Map::new();
    let mut matched = BTreeMap::new();
    for rule in rules {
        let hits: Vec<String> = changed.iter().filter(|p| rule.selects(p)).cloned().collect();
        jobs.insert(rule.job.clone(), serde_json::Value::Bool(!hits.is_empty()));
        if !hits.is_empty() {
            matched.insert(rule.job.clone(), hits);
        }
    }
    Ok(Selection { base: base_id, head: head_commit.id().to_string(), merge_base, changed, jobs, matched })
}

impl Selection {
    /// `$GITHUB_OUTPUT` lines: `<job>=true|false` per job, `any=`, and `jobs=` (a JSON list
    /// of the selected jobs, for a matrix).
    pub fn github_outputs(&self) -> String {
        let mut out = String::new();
        let selected: Vec<&String> =
            self.jobs.iter().filter(|(_, v)| v.as_bool() == Some(true)).map(|(k, _)| k).collect();
        for (job, value) in &self.jobs {
            out.push_str(&format!("{job}={value}\n"));
        }
        out.push_str(&format!("any={}\n", !selected.is_empty()));
        out.push_str(&format!("jobs={}\n", serde_json::to_string(&selected).expect("names serialise")));
        out
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AffectedError {
    #[error("{reason}")]
    Git { reason: String },
    #[error("rule file {path}: {reason}")]
    Rules { path: PathBuf, reason: String },
    #[error(transparent)]
    Output(#[from] crate::tools::github::GithubError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_rules_are_the_design_docs_table() {
        let rules = default_rules();
        let jobs = |path: &str| rules.iter().filter(|r| r.selects(path)).map(|r| r.job.as_str()).collect::<Vec<_>>();
        assert_eq!(jobs("rails/tasker-contrib-rails/lib/x.rb"), ["rails"]);
        assert_eq!(jobs("docs/guide.md"), ["docs"]);
        assert_eq!(jobs("python/pyproject.toml"), ["python"]);
        assert!(jobs("README.md").is_empty());
        assert!(jobs("railsish/x").is_empty(), "a prefix is not the directory");
    }

    #[test]
    fn the_null_rev_is_forty_zeros_or_more() {
        assert!(is_null_rev(&"0".repeat(40)) && is_null_rev(&"0".repeat(64)), "SHA-1 and SHA-256 repositories");
        assert!(!is_null_rev("0000000") && !is_null_rev(&format!("{}1", "0".repeat(39))) && !is_null_rev(""));
    }

    #[test]
    fn a_rule_file_with_excludes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rules.toml");
        let text = "[[job]]\nname = \"ruby\"\npaths = [\"rails/**\", \"Gemfile*\"]\nexclude = [\"rails/**/*.md\"]\n";
        std::fs::write(&path, text).unwrap();
        let rules = load_rules(&path).unwrap();
        assert!(rules[0].selects("rails/a/b.rb") && rules[0].selects("Gemfile.lock"));
        assert!(!rules[0].selects("rails/a/README.md"));
        assert!(!rules[0].selects("sub/Gemfile"), "`*` does not cross `/`");
        std::fs::write(&path, "[[job]]\nname = \"ruby\"\npath = [\"rails/**\"]\n").unwrap();
        let err = load_rules(&path).err().unwrap().to_string();
        assert!(err.contains("unknown field `path`"), "{err}");
        std::fs::write(&path, "[[job]]\nname = \"a b\"\npaths = [\"x/**\"]\n").unwrap();
        assert!(load_rules(&path).err().unwrap().to_string().contains("names an output"));
    }
}
