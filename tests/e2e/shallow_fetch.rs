//! Shallow first fetch over a real network transport: the fixture served by `git daemon` on
//! 127.0.0.1 (libgit2's local transport cannot fetch shallow, so a path would prove nothing).
//! A first `key --sha` fetches the one commit; `key --range` and `explain` deepen the mirror
//! and then agree with a full mirror of the same repository.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::*;

/// A `git daemon` serving the dirs under `base`, killed on drop.
struct Daemon {
    child: Child,
    port: u16,
}

impl Daemon {
    fn serve(base: &Path) -> Daemon {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        // git-daemon itself, not `git daemon`: killing the `git` wrapper would leave it running.
        let exec_path = String::from_utf8(Command::new("git").arg("--exec-path").output().unwrap().stdout).unwrap();
        let child = Command::new(Path::new(exec_path.trim()).join("git-daemon"))
            .args(["--reuseaddr", "--export-all", "--listen=127.0.0.1"])
            .arg(format!("--port={port}"))
            .arg(format!("--base-path={}", base.display()))
            .arg(base)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let daemon = Daemon { child, port };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "git daemon did not listen on port {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        daemon
    }

    fn url(&self, name: &str) -> String {
        format!("git://127.0.0.1:{}/{name}", self.port)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The fixture served over git://, with SHAs served on request (as GitHub does).
fn served(world: &World) -> Daemon {
    world.git(&["config", "uploadpack.allowAnySHA1InWant", "true"]);
    Daemon::serve(world.dir.path())
}

/// The one mirror a test's cache holds.
fn mirror(world: &World) -> PathBuf {
    let mirrors: Vec<PathBuf> = std::fs::read_dir(world.cache().join("repos"))
        .unwrap()
        .map(|e| e.unwrap().path().join("mirror.git"))
        .filter(|p| p.exists())
        .collect();
    assert_eq!(mirrors.len(), 1, "{mirrors:?}");
    mirrors.into_iter().next().unwrap()
}

fn commits_in(mirror: &Path) -> usize {
    git_in(mirror, &["rev-list", "--all", "--count"]).trim().parse().unwrap()
}

fn is_shallow(mirror: &Path) -> bool {
    git_in(mirror, &["rev-parse", "--is-shallow-repository"]).trim() == "true"
}

fn range(world: &World, repo: &str, extra: &[&str]) -> std::process::Output {
    let recipe = fixture_recipe();
    let mut args = vec!["key", "--repo", repo, "--recipe", recipe.to_str().unwrap(), "--range", "base..main", "--json"];
    args.extend_from_slice(extra);
    world.tbuild(&args)
}

#[test]
fn first_key_fetches_one_commit_and_key_range_deepens_to_the_full_answer() {
    let world = World::new();
    let daemon = served(&world);
    let url = daemon.url("repo");
    let sha = world.git(&["rev-parse", "ctl-only^{commit}"]).trim().to_string();
    let all_commits: usize = world.git(&["rev-list", "--all", "--count"]).trim().parse().unwrap();
    assert!(all_commits > 5, "the fixture has history: {all_commits}");

    let output = world.key_from(&url, &sha, &[]);
    assert_ok(&output);
    let shallow_keys = parse_keys(&output.stdout);
    let mirror = mirror(&world);
    assert!(is_shallow(&mirror), "a first fetch over git:// is shallow");
    assert_eq!(commits_in(&mirror), 1, "only the asked commit is fetched ({all_commits} in the repository)");
    let shallow_file = std::fs::read_to_string(mirror.join("shallow")).unwrap();
    assert_eq!(shallow_file.trim(), sha, "the shallow boundary is the asked commit");

    // The same keys as a full mirror (the local path) gives.
    let full = World::new();
    assert_eq!(shallow_keys, full.keys_of(&sha, BINARIES), "shallow and full keys agree");

    // A second commit asked of the shallow mirror comes at depth 1 too.
    let other = world.git(&["rev-parse", "secure-only^{commit}"]).trim().to_string();
    assert_ok(&world.key_from(&url, &other, &[]));
    assert!(is_shallow(&mirror));
    assert_eq!(commits_in(&mirror), 2, "two single commits");

    // --offline cannot deepen: a walk would stop at the boundary, so --range refuses.
    let offline = range(&world, &url, &["--offline"]);
    assert_eq!(offline.status.code(), Some(3), "{}", stderr(&offline));
    assert!(stderr(&offline).contains("is shallow"), "{}", stderr(&offline));

    // key --range deepens the mirror and reports what a full mirror reports.
    let deepened = range(&world, &url, &[]);
    assert_ok(&deepened);
    assert!(!is_shallow(&mirror), "key --range unshallowed the mirror");
    assert_eq!(commits_in(&mirror), all_commits, "the whole history is there now");
    let from_path = range(&world, world.repo().to_str().unwrap(), &[]);
    assert_ok(&from_path);
    let (a, b): (serde_json::Value, serde_json::Value) =
        (serde_json::from_slice(&deepened.stdout).unwrap(), serde_json::from_slice(&from_path.stdout).unwrap());
    assert_eq!(a["commits"], b["commits"], "the deepened mirror gives the full mirror's range");

    // A full mirror stays full: the next new commit is fetched with its history.
    let before = commits_in(&mirror);
    std::fs::write(world.repo().join("NOTES.md"), "after the deepening\n").unwrap();
    let new = world.commit_all("a commit after the deepening");
    assert_ok(&world.key_from(&url, &new, &[]));
    assert!(!is_shallow(&mirror), "a deepened mirror is not made shallow again");
    assert_eq!(commits_in(&mirror), before + 1);
}

#[test]
fn a_branch_name_is_fetched_shallow_and_explain_deepens() {
    let world = World::new();
    // No SHA on request here: names and tips only, as a strict server allows.
    let daemon = Daemon::serve(world.dir.path());
    let url = daemon.url("repo");
    let output = world.key_from(&url, "main", &[]);
    assert_ok(&output);
    let mirror = mirror(&world);
    assert!(is_shallow(&mirror));
    assert_eq!(commits_in(&mirror), 1, "only main's tip");
    assert_eq!(parse_keys(&output.stdout), world.keys("main"), "shallow and full keys agree");

    // A full SHA the server will not serve by itself: the branch and tag tips at depth 1
    // bring it, and the mirror stays shallow.
    let base = world.git(&["rev-parse", "base^{commit}"]).trim().to_string();
    let output = world.key_from(&url, &base, &[]);
    assert_ok(&output);
    assert_eq!(parse_keys(&output.stdout), world.keys("base"), "shallow and full keys agree");
    assert!(is_shallow(&mirror), "still shallow");

    // explain walks ancestors: it deepens.
    let recipe = fixture_recipe();
    let args = ["explain", "tasker-ctl", "--repo", &url, "--sha", "main", "--recipe", recipe.to_str().unwrap()];
    assert_ok(&world.tbuild(&args));
    assert!(!is_shallow(&mirror), "explain unshallowed the mirror");
}
