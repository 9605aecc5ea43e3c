//! `tbuild upstream check` and `constraints` against a local server answering in each
//! registry's real format (tests/fixtures/registries, see its README).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use crate::fake_http::FakeServer;
use crate::support::stderr;

/// `tbuild ARGS` in `dir`, without inherited settings that would change the outcome.
pub fn tbuild_in(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tbuild"));
    cmd.args(args)
        .current_dir(dir)
        .env("TBUILD_CACHE_DIR", dir.join("cache"))
        .env("CI", "true")
        .env_remove("GITHUB_OUTPUT")
        .env_remove("GITHUB_STEP_SUMMARY")
        .env_remove("GITHUB_TOKEN")
        .env_remove("GITHUB_API_URL");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn fixture(path: &str) -> Vec<u8> {
    std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/registries").join(path)).unwrap()
}

/// A server answering as the four registries do for the fixture packages; the URL flags.
struct Registries {
    server: FakeServer,
}

impl Registries {
    fn start() -> Registries {
        let server = FakeServer::start();
        server.route("/crates/ta/sk/tasker-worker", 200, fixture("crates/tasker-worker"));
        server.route("/crates/ta/sk/tasker-cli", 200, fixture("crates/tasker-cli"));
        server.route("/crates/ra/nd/rand", 200, fixture("crates/rand"));
        server.route("/pypi/pypi/tasker-py/json", 200, fixture("pypi/tasker-py.json"));
        server.route("/pypi/pypi/maturin/json", 200, fixture("pypi/maturin-2025-12-30.json"));
        server.route("/gems/api/v1/versions/tasker-rb.json", 200, fixture("rubygems/tasker-rb.json"));
        server.route("/npm/uuid", 200, fixture("npm/uuid.json"));
        Registries { server }
    }

    fn flags(&self) -> Vec<String> {
        let base = self.server.url();
        ["crates=/crates", "pypi=/pypi", "rubygems=/gems", "npm=/npm"]
            .iter()
            .flat_map(|kv| {
                let (kind, path) = kv.split_once('=').unwrap();
                ["--registry-url".to_string(), format!("{kind}={base}{path}")]
            })
            .collect()
    }
}

struct Contrib {
    dir: tempfile::TempDir,
}

impl Contrib {
    fn new(versions: &str) -> Contrib {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join(".github")).unwrap();
        std::fs::write(dir.path().join(".github/upstream-versions.json"), versions).unwrap();
        Contrib { dir }
    }

    fn path(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    fn write(&self, rel: &str, text: &str) {
        let path = self.dir.path().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    fn run(&self, registries: &Registries, args: &[&str], env: &[(&str, &str)]) -> Output {
        let flags = registries.flags();
        let mut all: Vec<&str> = args.to_vec();
        all.extend(flags.iter().map(String::as_str));
        tbuild_in(self.dir.path(), &all, env)
    }
}

const PINS: &str = r#"{
  "_comment": "Tracks pinned upstream tasker-core versions for tasker-contrib packages",
  "_updated": "2026-02-12",
  "rust": {
    "tasker-worker": "0.1.3",
    "rand": "0.9.0"
  },
  "ruby": {
    "tasker-rb": "0.1.4"
  },
  "python": {
    "tasker-py": "0.1.7"
  },
  "typescript": {
    "uuid": "9.0.1"
  }
}
"#;

fn rows(output: &Output) -> Vec<Value> {
    let report: Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", String::from_utf8_lossy(&output.stdout), stderr(output)));
    report["packages"].as_array().unwrap().clone()
}

fn row<'a>(rows: &'a [Value], package: &str) -> &'a Value {
    rows.iter().find(|r| r["package"] == package).unwrap_or_else(|| panic!("no row for {package}"))
}

#[test]
fn each_registry_is_read_in_its_own_format_and_lag_classified() {
    let (registries, contrib) = (Registries::start(), Contrib::new(PINS));
    let output = contrib.run(&registries, &["upstream", "check", "--format", "json"], &[]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let rows = rows(&output);
    let summary = |p: &str| {
        let r = row(&rows, p);
        (r["latest"].as_str().unwrap().to_string(), r["severity"].as_str().unwrap().to_string())
    };
    // 0.1.3 -> 0.1.8: five patches.
    assert_eq!(summary("tasker-worker"), ("0.1.8".into(), "notice".into()));
    // rand's 0.10.0 release candidates are skipped: 0.9.0 -> 0.9.2.
    assert_eq!(summary("rand"), ("0.9.2".into(), "notice".into()));
    // 0.2.0.rc1 is a pre-release; 0.1.8 is listed for two platforms.
    assert_eq!(summary("tasker-rb"), ("0.1.8".into(), "notice".into()));
    assert_eq!(summary("tasker-py"), ("0.1.8".into(), "info".into()));
    // 11.0.0-0 is skipped; 9 -> 10 is a major.
    assert_eq!(summary("uuid"), ("10.0.0".into(), "critical".into()));
    assert_eq!(row(&rows, "uuid")["lag"]["update"], "major");
    // Rows keep the file's order.
    let order: Vec<&str> = rows.iter().map(|r| r["package"].as_str().unwrap()).collect();
    assert_eq!(order, ["tasker-worker", "rand", "tasker-rb", "tasker-py", "uuid"]);
    for request in registries.server.requests() {
        let agent = &request.headers["user-agent"];
        assert!(agent.starts_with("tbuild/") && agent.contains("(+https://"), "{agent}");
    }
}

#[test]
fn a_missing_package_is_an_error_row_never_a_skip() {
    let pins = r#"{"python": {"tasker-core-py": "0.5.0", "tasker-py": "0.1.8"}}"#;
    let (registries, contrib) = (Registries::start(), Contrib::new(pins));
    let output = contrib.run(&registries, &["upstream", "check", "--format", "json"], &[]);
    assert_eq!(output.status.code(), Some(11), "{}", stderr(&output));
    assert!(stderr(&output).contains("1 of 2 lookups failed"), "{}", stderr(&output));
    let rows = rows(&output);
    assert_eq!(row(&rows, "tasker-core-py")["error"]["kind"], "not-found");
    assert_eq!(row(&rows, "tasker-py")["latest"], "0.1.8");
    // The table says so too.
    let table = contrib.run(&registries, &["upstream", "check"], &[]);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(
        text.contains("tasker-core-py") && text.contains("FAILED") && text.contains("not found in the registry"),
        "{text}"
    );
}

#[test]
fn a_timeout_is_reported_and_the_other_packages_still_are() {
    let (registries, contrib) = (Registries::start(), Contrib::new(PINS));
    registries.server.slow("/npm/uuid", std::time::Duration::from_secs(4));
    let args = ["upstream", "check", "--format", "json", "--timeout", "1", "--retries", "0"];
    let output = contrib.run(&registries, &args, &[]);
    assert_eq!(output.status.code(), Some(11), "{}", stderr(&output));
    let rows = rows(&output);
    assert_eq!(row(&rows, "uuid")["error"]["kind"], "timeout");
    assert!(row(&rows, "uuid")["error"]["message"].as_str().unwrap().contains("timed out"));
    for package in ["tasker-worker", "rand", "tasker-rb", "tasker-py"] {
        assert!(row(&rows, package)["latest"].is_string(), "{package} still looked up");
    }
}

#[test]
fn a_server_error_is_retried() {
    let (registries, contrib) = (Registries::start(), Contrib::new(r#"{"python": {"tasker-py": "0.1.8"}}"#));
    registries.server.flaky("/pypi/pypi/tasker-py/json", 2);
    let output = contrib.run(&registries, &["upstream", "check", "--format", "json"], &[]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(registries.server.hits("/pypi/pypi/tasker-py/json"), 3);
    assert_eq!(row(&rows(&output), "tasker-py")["severity"], "info");
}

#[test]
fn fail_on_sets_the_exit_code_by_the_worst_severity() {
    let registries = Registries::start();
    let contrib = Contrib::new(PINS);
    let code =
        |threshold: &str| contrib.run(&registries, &["upstream", "check", "--fail-on", threshold], &[]).status.code();
    assert_eq!(code("critical"), Some(10), "uuid is a major behind");
    let only_patches = Contrib::new(r#"{"rust": {"tasker-worker": "0.1.3"}, "python": {"tasker-py": "0.1.7"}}"#);
    let code = |threshold: &str| only_patches.run(&registries, &["upstream", "check", "--fail-on", threshold], &[]);
    assert_eq!(code("warning").status.code(), Some(0));
    let failed = code("notice");
    assert_eq!(failed.status.code(), Some(10));
    assert!(stderr(&failed).contains("1 package(s) at or above --fail-on notice"), "{}", stderr(&failed));
}

#[test]
fn a_yanked_pin_is_flagged() {
    let (registries, contrib) = (Registries::start(), Contrib::new(r#"{"rust": {"tasker-cli": "1.0.11"}}"#));
    let output = contrib.run(&registries, &["upstream", "check", "--format", "json"], &[]);
    let rows = rows(&output);
    let r = row(&rows, "tasker-cli");
    // 1.0.10 and 1.0.11 are yanked: the latest stable is older than the pin.
    assert_eq!((r["latest"].as_str(), r["severity"].as_str()), (Some("1.0.9"), Some("error")));
    assert_eq!(r["flags"][0], "pinned-yanked");
}

#[test]
fn update_rewrites_the_pins_and_keeps_everything_else() {
    let (registries, contrib) = (Registries::start(), Contrib::new(PINS));
    let output = contrib.run(&registries, &["upstream", "check", "--update"], &[]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let path = contrib.path().join(".github/upstream-versions.json");
    let text = std::fs::read_to_string(&path).unwrap();
    let doc: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(doc["rust"]["tasker-worker"], "0.1.8");
    assert_eq!(doc["rust"]["rand"], "0.9.2");
    assert_eq!(doc["ruby"]["tasker-rb"], "0.1.8");
    assert_eq!(doc["typescript"]["uuid"], "10.0.0");
    assert_eq!(doc["_comment"], "Tracks pinned upstream tasker-core versions for tasker-contrib packages");
    assert_ne!(doc["_updated"], "2026-02-12");
    // Key order as it was.
    let positions: Vec<usize> = ["_comment", "_updated", "\"rust\"", "\"ruby\"", "\"python\"", "\"typescript\""]
        .iter()
        .map(|k| text.find(k).unwrap())
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{text}");
    let leftovers: Vec<_> = std::fs::read_dir(contrib.path().join(".github")).unwrap().collect();
    assert_eq!(leftovers.len(), 1, "no temp file left");
    // Now nothing is behind.
    let again = contrib.run(&registries, &["upstream", "check", "--fail-on", "notice"], &[]);
    assert_eq!(again.status.code(), Some(0), "{}", String::from_utf8_lossy(&again.stdout));
}

#[test]
fn github_format_writes_outputs_summary_and_annotations() {
    let (registries, contrib) = (Registries::start(), Contrib::new(PINS));
    let (outputs, summary) = (contrib.path().join("outputs"), contrib.path().join("summary.md"));
    let env = [("GITHUB_OUTPUT", outputs.to_str().unwrap()), ("GITHUB_STEP_SUMMARY", summary.to_str().unwrap())];
    let output = contrib.run(&registries, &["upstream", "check", "--format", "github"], &env);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let outputs = std::fs::read_to_string(outputs).unwrap();
    assert!(outputs.contains("updates-available=true\n"), "{outputs}");
    assert!(outputs.contains("worst-severity=critical\n"), "{outputs}");
    assert!(outputs.contains("failed=0\n"), "{outputs}");
    let delimiter = outputs.lines().find_map(|l| l.strip_prefix("body<<")).unwrap();
    assert!(outputs.trim_end().ends_with(delimiter), "the multi-line output is closed");
    let summary = std::fs::read_to_string(summary).unwrap();
    assert!(
        summary.contains("| `uuid` | typescript | 9.0.1 → 10.0.0 | **critical** | major | Migration required |"),
        "{summary}"
    );
    assert!(
        summary.contains("| `tasker-worker` | rust | 0.1.3 → 0.1.8 | **notice** | patch | Consider updating |"),
        "{summary}"
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("::error title=upstream critical::uuid 9.0.1 -> 10.0.0"), "{stdout}");
    // Markdown alone is the same body.
    let md = contrib.run(&registries, &["upstream", "check", "--format", "markdown"], &[]);
    assert!(outputs.contains(String::from_utf8_lossy(&md.stdout).trim_end()));
}

#[test]
fn a_bad_versions_file_is_a_usage_error_naming_it() {
    let contrib = Contrib::new(r#"{"go": {"tasker": "1.0.0"}}"#);
    let output = tbuild_in(&contrib.path(), &["upstream", "check"], &[]);
    assert_eq!(output.status.code(), Some(2));
    let err = stderr(&output);
    assert!(err.contains("upstream-versions.json") && err.contains("unknown ecosystem \"go\""), "{err}");
    let missing = tbuild_in(&contrib.path(), &["upstream", "check", "--versions", "nope.json"], &[]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(stderr(&missing).contains("nope.json: cannot read it"), "{}", stderr(&missing));
    let registries = Registries::start();
    let bad_flag = contrib.run(&registries, &["upstream", "check", "--registry-url", "maven=http://x"], &[]);
    assert!(stderr(&bad_flag).contains("unknown registry 'maven'"), "{}", stderr(&bad_flag));
}

const CONTRIB_PINS: &str = r#"{
  "rust": {"tasker-worker": "0.1.3"},
  "ruby": {"tasker-rb": "0.1.4"},
  "python": {"tasker-py": "0.1.3"},
  "typescript": {"uuid": "9.0.1"}
}"#;

/// A contrib checkout shaped like tasker-contrib, one package per language.
fn contrib_with_manifests(python_constraint: &str) -> Contrib {
    let contrib = Contrib::new(CONTRIB_PINS);
    contrib.write(
        "rails/tasker-contrib-rails/tasker-contrib-rails.gemspec",
        "# frozen_string_literal: true\n\nGem::Specification.new do |spec|\n  spec.name = 'tasker-contrib-rails'\n  \
spec.version = '0.1.0'\n  spec.required_ruby_version = '>= 3.4.0'\n\n  spec.add_dependency 'rails', '>= 7.1'\n  \
spec.add_dependency 'tasker-rb', '~> 0.1.4'\n  spec.add_development_dependency 'rspec', '~> 3.13'\nend\n",
    );
    contrib.write(
        "python/tasker-contrib-fastapi/pyproject.toml",
        &format!(
            "[project]\nname = \"tasker-contrib-fastapi\"\nversion = \"0.1.0\"\nrequires-python = \">=3.11\"\n\
dependencies = [\n    \"fastapi>=0.115.0\",\n    \"{python_constraint}\",\n]\n\n[project.optional-dependencies]\n\
dev = [\"pytest>=8.0.0\"]\n\n[build-system]\nrequires = [\"hatchling\"]\nbuild-backend = \"hatchling.build\"\n"
        ),
    );
    contrib.write(
        "typescript/tasker-contrib-bun/package.json",
        "{\n  \"name\": \"@tasker-systems/tasker-contrib-bun\",\n  \"version\": \"0.1.0\",\n  \"type\": \"module\",\n  \
\"peerDependencies\": {\n    \"uuid\": \">=9.0.0 <10.0.0\"\n  },\n  \"devDependencies\": {\n    \"typescript\": \"^5.7.0\"\n  }\n}\n",
    );
    contrib.write(
        "rust/tasker-contrib-axum/Cargo.toml",
        "[package]\nname = \"tasker-contrib-axum\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[dependencies]\n\
axum = \"0.8\"\ntasker-worker = \"=0.1.3\"\n\n[dev-dependencies]\ntasker-worker = { version = \"0.1\", features = [\"test\"] }\n",
    );
    // Ignored like git would: a vendored copy must not count.
    contrib.write(".gitignore", "node_modules/\n");
    contrib.write(
        "typescript/tasker-contrib-bun/node_modules/uuid/package.json",
        "{\"dependencies\": {\"uuid\": \"1.0.0\"}}",
    );
    contrib
}

fn constraint_rows(output: &Output) -> Vec<Value> {
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", String::from_utf8_lossy(&output.stdout), stderr(output)))
}

#[test]
fn constraints_of_four_ecosystems_against_the_pinned_and_latest_versions() {
    let registries = Registries::start();
    let contrib = contrib_with_manifests("tasker-py>=0.1.2,<0.1.5");
    let dir = contrib.path();
    let output = contrib.run(&registries, &["upstream", "constraints", dir.to_str().unwrap(), "--format", "json"], &[]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let rows = constraint_rows(&output);
    let verdict = |manifest: &str, section: &str| {
        let r = rows
            .iter()
            .find(|r| r["manifest"].as_str().unwrap().starts_with(manifest) && r["section"] == section)
            .unwrap();
        (r["requirement"].as_str().unwrap().to_string(), r["admits_pinned"].as_bool(), r["admits_latest"].as_bool())
    };
    // ~> 0.1.4 admits 0.1.4 and 0.1.8 (latest).
    assert_eq!(verdict("rails/", "add_dependency"), ("~> 0.1.4".into(), Some(true), Some(true)));
    // <0.1.5 admits 0.1.3 but not 0.1.8.
    assert_eq!(verdict("python/", "project.dependencies"), (">=0.1.2,<0.1.5".into(), Some(true), Some(false)));
    // <10.0.0 admits 9.0.1 but not 10.0.0.
    assert_eq!(verdict("typescript/", "peerDependencies"), (">=9.0.0 <10.0.0".into(), Some(true), Some(false)));
    // Cargo: =0.1.3 is exact; 0.1 is ^0.1.
    assert_eq!(verdict("rust/", "dependencies"), ("=0.1.3".into(), Some(true), Some(false)));
    assert_eq!(verdict("rust/", "dev-dependencies"), ("0.1".into(), Some(true), Some(true)));
    assert_eq!(rows.len(), 5, "rails, rspec, fastapi, typescript, axum and node_modules are not counted: {rows:?}");
}

#[test]
fn a_constraint_refusing_its_pin_fails_the_check() {
    let registries = Registries::start();
    let contrib = contrib_with_manifests("tasker-py~=0.1.5");
    let output = contrib.run(&registries, &["upstream", "constraints", "--offline"], &[]);
    assert_eq!(output.status.code(), Some(10), "{}", stderr(&output));
    let table = String::from_utf8_lossy(&output.stdout);
    let line = table.lines().find(|l| l.contains("pyproject.toml")).unwrap();
    assert!(line.contains("~=0.1.5") && line.contains("0.1.3") && line.contains("NO"), "{table}");
    assert!(stderr(&output).contains("1 constraint(s) refuse the pinned version"), "{}", stderr(&output));
    assert!(registries.server.requests().is_empty(), "--offline asks no registry");
}
