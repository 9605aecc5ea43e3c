//! The workflows, the root action.yml and the cache-env JavaScript action: parsed as YAML and
//! checked against what CI-ARCHITECTURE.md and the README say they do; the JavaScript
//! action run with node against a temporary $GITHUB_ENV.

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

fn workflow_files() -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(root().join(".github/workflows"))
        .unwrap()
        .map(|e| format!(".github/workflows/{}", e.unwrap().file_name().to_string_lossy()))
        .filter(|name| name.ends_with(".yml") || name.ends_with(".yaml"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_workflow_and_action_is_well_formed() {
    let workflows = workflow_files();
    assert_eq!(
        workflows,
        [".github/workflows/bleeding-edge.yml", ".github/workflows/ci.yml", ".github/workflows/upstream-check.yml"]
    );
    for rel in &workflows {
        let doc = load(rel);
        assert!(doc["name"].as_str().is_some(), "{rel}: name");
        assert!(doc["on"].as_hash().is_some(), "{rel}: `on:` is a mapping of triggers (YAML 1.2: not a boolean)");
        for (name, job) in doc["jobs"].as_hash().expect("jobs") {
            let name = str_of(name, "job name");
            assert_eq!(job["runs-on"].as_str(), Some("ubuntu-latest"), "{rel}: {name}: runs-on");
            for step in steps(job) {
                check_step(rel, step);
            }
        }
    }
    for rel in ["action.yml", ".github/actions/cache-env/action.yml"] {
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
    if let Some(local) = uses(step).strip_prefix("./") {
        assert!(root().join(local).join("action.yml").is_file(), "{rel}: {local}/action.yml exists");
    }
    assert!(!run(step).contains("${{ inputs."), "{rel}: inputs reach scripts through env, not the script text");
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

#[test]
fn bleeding_edge_has_the_design_docs_triggers_steps_and_artifacts() {
    let doc = load(".github/workflows/bleeding-edge.yml");
    let on = &doc["on"];
    let types: Vec<&str> =
        on["repository_dispatch"]["types"].as_vec().unwrap().iter().map(|t| str_of(t, "type")).collect();
    assert_eq!(types, ["tasker-core-updated"], "dispatched by tasker-core's ci-success.yml");
    assert!(on["workflow_dispatch"]["inputs"]["sha"].as_hash().is_some(), "manual dispatch takes a sha");
    let crons: Vec<&str> = on["schedule"].as_vec().unwrap().iter().map(|s| str_of(&s["cron"], "cron")).collect();
    assert_eq!(crons, ["0 4 * * *"], "nightly at 04:00 UTC");
    let core_sha = str_of(&doc["env"]["CORE_SHA"], "CORE_SHA");
    assert!(core_sha.contains("github.event.client_payload.ref") && core_sha.contains("inputs.sha"), "{core_sha}");
    assert_eq!(doc["env"]["TBUILD_REMOTE"].as_str(), Some("gha"));

    let jobs = doc["jobs"].as_hash().unwrap();
    assert_eq!(jobs.len(), 1);
    let steps = steps(jobs.values().next().unwrap());
    let cache_env = position(steps, "exposing the cache service", |s| uses(s) == "./.github/actions/cache-env");
    let core = position(steps, "running tbuild core", |s| run(s).contains("tbuild core"));
    let command = run(&steps[core]);
    for part in ["--sha \"$CORE_SHA\"", "--remote gha", "--out tasker-core-artifacts"] {
        assert!(command.contains(part), "tbuild core step has {part}: {command}");
    }
    assert!(cache_env < core, "the credentials are exported before tbuild runs");

    let uploads: Vec<(usize, &str, &str)> = steps
        .iter()
        .enumerate()
        .filter(|(_, s)| uses(s).starts_with("actions/upload-artifact@"))
        .map(|(i, s)| (i, str_of(&s["with"]["name"], "artifact name"), str_of(&s["with"]["path"], "artifact path")))
        .filter(|(_, name, _)| name.starts_with("tasker-core-"))
        .collect();
    let names: Vec<&str> = uploads.iter().map(|(_, name, _)| *name).collect();
    assert_eq!(names, ["tasker-core-binaries", "tasker-core-ruby", "tasker-core-python", "tasker-core-typescript"]);
    for (index, name, path) in uploads {
        assert!(index > core, "{name} is uploaded after the build");
        assert_eq!(path, format!("tasker-core-artifacts/{name}"));
    }
}

#[test]
fn upstream_check_runs_daily_at_six_and_on_demand() {
    let doc = load(".github/workflows/upstream-check.yml");
    let on = &doc["on"];
    let crons: Vec<&str> = on["schedule"].as_vec().unwrap().iter().map(|s| str_of(&s["cron"], "cron")).collect();
    assert_eq!(crons, ["0 6 * * *"], "daily at 06:00 UTC");
    assert!(!on["workflow_dispatch"].is_badvalue(), "manual runs");
    let steps = steps(&doc["jobs"]["check"]);
    let check = position(steps, "the check", |s| run(s).contains("tbuild upstream check"));
    assert!(run(&steps[check]).contains("--format github"), "outputs and step summary for the later steps");
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
