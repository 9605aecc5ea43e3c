//! A repository behind a real git server on 127.0.0.1 (`git daemon`, git:// protocol).

use std::process::{Child, Command, Stdio};

use crate::support::*;

/// `git daemon` serving the world's dir; killed on drop.
struct GitDaemon {
    child: Child,
    port: u16,
}

impl GitDaemon {
    fn start(world: &World) -> GitDaemon {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        // `git daemon` would fork git-daemon and leave it running when killed: run it directly.
        let exec_path = git_in(world.dir.path(), &["--exec-path"]);
        let child = Command::new(std::path::Path::new(exec_path.trim()).join("git-daemon"))
            .args(["--reuseaddr", "--export-all", "--listen=127.0.0.1"])
            .arg(format!("--port={port}"))
            .arg(format!("--base-path={}", world.dir.path().display()))
            .arg(world.repo())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Owned before anything can panic, so that Drop always reaps it.
        let daemon = GitDaemon { child, port };
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return daemon;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("git daemon did not start on port {port}");
    }

    fn url(&self) -> String {
        format!("git://127.0.0.1:{}/repo", self.port)
    }
}

impl Drop for GitDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn key(world: &World, repo: &str, rev: &str) -> std::process::Output {
    world.key_from(repo, rev, &[])
}

#[test]
fn a_commit_on_no_branch_is_fetched_by_its_sha() {
    let world = World::new();
    // A commit no branch or tag points at, like the head of a closed pull request.
    world.git(&["checkout", "-q", "-b", "pr"]);
    std::fs::write(world.repo().join("crates/tasker-ctl/src/extra.rs"), "pub fn x() {}\n").unwrap();
    let sha = world.commit_all("off-branch work");
    world.git(&["checkout", "-q", "main"]);
    world.git(&["branch", "-q", "-D", "pr"]);
    world.git(&["config", "uploadpack.allowAnySHA1InWant", "true"]);

    let daemon = GitDaemon::start(&world);
    let by_path = world.keys("main");
    let output = key(&world, &daemon.url(), "main");
    assert_ok(&output);
    assert_eq!(parse_keys(&output.stdout), by_path, "the same commit keys the same over git://");
    let output = key(&world, &daemon.url(), &sha);
    assert_ok(&output);
    let off_branch = parse_keys(&output.stdout);
    assert_ne!(off_branch["tasker-ctl"], by_path["tasker-ctl"]);
    assert_eq!(off_branch["tasker-server"], by_path["tasker-server"]);
}

#[test]
fn a_server_that_went_away_is_an_unreachable_source() {
    let world = World::new();
    let daemon = GitDaemon::start(&world);
    let url = daemon.url();
    assert_ok(&key(&world, &url, "main"));
    drop(daemon);
    let output = key(&world, &url, "main");
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    assert!(stderr(&output).contains(&format!("cannot fetch {url}")), "{}", stderr(&output));
    // What was mirrored stays usable offline.
    let sha = world.git(&["rev-parse", "main"]).trim().to_string();
    let offline = world.key_from(&url, &sha, &["--offline"]);
    assert_ok(&offline);
}
