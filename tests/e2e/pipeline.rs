//! scripts/pipeline.sh, the bleeding-edge workflow's steps run locally, on the fixture: every
//! phase of the three situations runs, each job's smoke test loads a real artifact, the
//! one-crate change rebuilds exactly the targets whose keys changed, the full hit builds
//! nothing, and the binaries stay executable through the tar hand-off.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::support::{fixture_recipe, parse_keys, stderr};

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/pipeline.sh")
}

/// `scripts/pipeline.sh ARGS` with the tbuild under test and nothing of the caller's setup.
fn pipeline(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new("bash");
    cmd.arg(script())
        .args(args)
        .current_dir(dir)
        .env("TBUILD", env!("CARGO_BIN_EXE_tbuild"))
        .env("CI", "true")
        .env("XDG_CONFIG_HOME", dir.join("config-home"))
        .env_remove("TBUILD_CONFIG")
        .env_remove("TBUILD_REMOTE")
        .env_remove("TBUILD_CORE_REPO")
        .env_remove("GITHUB_OUTPUT");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

/// report.tsv: situation -> [(phase, detail)] in order.
fn report(work: &Path) -> BTreeMap<String, Vec<(String, String)>> {
    let text = std::fs::read_to_string(work.join("report.tsv")).unwrap();
    let mut rows: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for line in text.lines().skip(1) {
        let cols: Vec<&str> = line.split('\t').collect();
        assert_eq!(cols.len(), 4, "{line}");
        let seconds: f64 = cols[2].parse().unwrap_or_else(|_| panic!("seconds in {line}"));
        assert!(seconds >= 0.0);
        rows.entry(cols[0].to_string()).or_default().push((cols[1].to_string(), cols[3].to_string()));
    }
    rows
}

fn keys(work: &Path, rev: &str) -> BTreeMap<String, String> {
    let recipe = fixture_recipe();
    let fixture = work.join("fixture");
    let args =
        ["key", "--repo", fixture.to_str().unwrap(), "--sha", rev, "--recipe", recipe.to_str().unwrap(), "--json"];
    let output = Command::new(env!("CARGO_BIN_EXE_tbuild"))
        .args(args)
        .env("TBUILD_CACHE_DIR", work.join("cache"))
        .env_remove("TBUILD_CONFIG")
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    parse_keys(&output.stdout)
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn the_pipeline_runs_every_phase_rebuilds_what_changed_and_hands_off_executables() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("work");
    let work_str = work.to_str().unwrap();
    let output = pipeline(dir.path(), &[], &[("PIPELINE_WORK", work_str)]);
    assert!(output.status.success(), "{}", stderr(&output));

    let rows = report(&work);
    let jobs = ["rails", "python", "typescript", "rust"];
    let mut phases = vec!["resolve".to_string(), "restore-build".into(), "pack".into()];
    for job in jobs {
        phases.extend([format!("handoff-{job}"), format!("smoke-{job}")]);
    }
    for situation in ["cold", "one-change", "full-hit"] {
        let got: Vec<&String> = rows[situation].iter().map(|(phase, _)| phase).collect();
        assert_eq!(got, phases.iter().collect::<Vec<_>>(), "{situation}: the workflow's steps, in its order");
    }
    let built = |situation: &str| -> String {
        let detail = &rows[situation].iter().find(|(p, _)| p == "restore-build").unwrap().1;
        detail.split(' ').find_map(|s| s.strip_prefix("built=")).unwrap_or("").to_string()
    };
    assert_eq!(built("cold"), "python,ruby,tasker-ctl,tasker-server,tasker-worker,typescript");
    assert_eq!(built("full-hit"), "", "a full hit builds nothing: {:?}", rows["full-hit"]);
    let (before, after) = (keys(&work, "secure-only"), keys(&work, "python-only"));
    let changed: Vec<&str> =
        before.iter().filter(|(target, key)| after[*target] != **key).map(|(target, _)| target.as_str()).collect();
    assert_eq!(changed, ["python"], "the fixture's one-crate change");
    assert_eq!(built("one-change"), changed.join(","), "only the targets whose keys changed rebuild");

    // Each job's smoke test loaded a real artifact of the commit it ran for.
    let smoke = |situation: &str, job: &str| {
        std::fs::read_to_string(work.join(situation).join("jobs").join(job).join("smoke.txt")).unwrap()
    };
    for situation in ["cold", "one-change", "full-hit"] {
        let python_marker = if situation == "cold" { "py-1 shared-2" } else { "py-2 shared-2" };
        for job in jobs {
            let text = smoke(situation, job);
            for bin in ["tasker-ctl ctl-2 shared-2", "tasker-server orch-1 shared-2", "tasker-worker worker-1 shared-2"]
            {
                assert!(text.contains(&format!("smoke binaries: {bin}")), "{situation} {job}: {text}");
            }
        }
        assert!(smoke(situation, "rails").contains("smoke ruby: rb-1 shared-2"));
        assert!(smoke(situation, "python").contains(&format!("smoke python: {python_marker}")));
        assert!(smoke(situation, "typescript").contains("smoke typescript: ts-1 shared-2"));

        // The hand-off: each tar arrived without its mode (as download-artifact gives it),
        // and every binary came out of it executable.
        for job in jobs {
            let job_dir = work.join(situation).join("jobs").join(job);
            for tar in std::fs::read_dir(job_dir.join("download")).unwrap() {
                assert_eq!(mode(&tar.unwrap().path()), 0o644);
            }
            let bins: Vec<PathBuf> = std::fs::read_dir(job_dir.join("artifacts/tasker-core-binaries"))
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect();
            assert_eq!(bins.len(), 3, "{bins:?}");
            for bin in bins {
                assert_eq!(mode(&bin) & 0o111, 0o111, "{} is executable after the hand-off", bin.display());
            }
        }
    }
    let rails: Vec<String> = std::fs::read_dir(work.join("cold/jobs/rails/artifacts"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(rails, ["tasker-core-binaries", "tasker-core-ruby"], "the folders the rails job downloads");

    // The smoke test notices a lost execute bit, which a hand-off without tar would cause.
    let artifacts = work.join("full-hit/jobs/rust/artifacts");
    let ctl = artifacts.join("tasker-core-binaries/tasker-ctl");
    std::fs::set_permissions(&ctl, std::fs::Permissions::from_mode(0o644)).unwrap();
    let lost = pipeline(dir.path(), &["smoke", "binaries", artifacts.to_str().unwrap()], &[]);
    assert_eq!(lost.status.code(), Some(1));
    assert!(
        stderr(&lost).contains("tasker-ctl is not executable (the execute bit was lost in the hand-off)"),
        "{}",
        stderr(&lost)
    );
    // And a binary that runs but fails fails the smoke test, whatever it printed.
    std::fs::write(&ctl, "#!/bin/sh\necho tasker-ctl\nexit 3\n").unwrap();
    std::fs::set_permissions(&ctl, std::fs::Permissions::from_mode(0o755)).unwrap();
    let failing = pipeline(dir.path(), &["smoke", "binaries", artifacts.to_str().unwrap()], &[]);
    assert_eq!(failing.status.code(), Some(1));
    assert!(stderr(&failing).contains("tasker-ctl --version failed (exit 3)"), "{}", stderr(&failing));
}

#[test]
fn resolve_turns_a_ref_into_a_commit_and_names_a_release_tag() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let made = Command::new("bash")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/make-fixture.sh"))
        .arg(&repo)
        .output()
        .unwrap();
    assert!(made.status.success());
    let git = |args: &[&str]| crate::support::git_in(&repo, args).trim().to_string();
    let repo_str = repo.to_str().unwrap();
    let outputs = dir.path().join("github-output");
    let resolve = |rev: &str| {
        pipeline(
            dir.path(),
            &["resolve"],
            &[("CORE_SHA", rev), ("CORE_REPO", repo_str), ("GITHUB_OUTPUT", outputs.to_str().unwrap())],
        )
    };

    let main = resolve("main");
    assert!(main.status.success(), "{}", stderr(&main));
    let expected = format!("sha={}\nrelease=\n", git(&["rev-parse", "main"]));
    assert_eq!(String::from_utf8_lossy(&main.stdout), expected);
    assert_eq!(std::fs::read_to_string(&outputs).unwrap(), expected, "the same lines in $GITHUB_OUTPUT");

    // A release tag (v*, annotated): its commit, and the tag for --prefer-release.
    git(&["-c", "user.name=t", "-c", "user.email=t@t.invalid", "tag", "-a", "-m", "release", "v0.5.0", "docs-only"]);
    let tagged = resolve("v0.5.0");
    let expected = format!("sha={}\nrelease=v0.5.0\n", git(&["rev-parse", "docs-only"]));
    assert_eq!(String::from_utf8_lossy(&tagged.stdout), expected);
    // A SHA passes through; tbuild resolves short ones itself.
    assert_eq!(String::from_utf8_lossy(&resolve("abc1234").stdout), "sha=abc1234\nrelease=\n");

    let unknown = resolve("no-such-branch");
    assert_eq!(unknown.status.code(), Some(1));
    assert!(stderr(&unknown).contains("has no branch or tag 'no-such-branch'"), "{}", stderr(&unknown));
}
