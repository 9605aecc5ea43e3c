//! `tbuild release download` and `core --prefer-release` against a fake GitHub API on
//! 127.0.0.1 serving a release the way api.github.com does.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};

use crate::fake_http::FakeServer;
use crate::support::{World, assert_ok, fixture_recipe, statuses, stderr};
use crate::upstream::tbuild_in;

const ASSETS: [(&str, &[u8]); 4] = [
    ("tasker-ctl", b"#!/bin/sh\necho tasker-ctl from the release\n"),
    ("tasker_rb.so", b"\x7fELF ruby extension"),
    ("tasker_py-0.1.8-cp310-abi3-manylinux_2_34_x86_64.whl", b"PK wheel"),
    ("tasker_ts.linux-x64-gnu.node", b"\x7fELF napi module"),
];

fn sha256(bytes: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    std::fs::write(&path, bytes).unwrap();
    let out = Command::new("sha256sum").arg(&path).output().unwrap();
    String::from_utf8(out.stdout).unwrap().split_whitespace().next().unwrap().to_string()
}

/// What the release's SHA256SUMS says.
#[derive(Clone, Copy, PartialEq)]
enum Sums {
    Right,
    /// A wrong digest for this asset.
    Wrong(&'static str),
    /// This asset is not listed.
    Unlisted(&'static str),
    /// The release has no checksum file.
    Absent,
}

/// A release `nightly` of o/r built from `commit`, with a SHA256SUMS as `sums` says.
fn github(commit: &str, sums_are: Sums) -> FakeServer {
    let server = FakeServer::start();
    let base = server.url();
    let mut assets = Vec::new();
    let mut sums = String::new();
    for (i, (name, bytes)) in ASSETS.iter().enumerate() {
        let path = format!("/repos/o/r/releases/assets/{}", i + 1);
        server.route(&path, 200, *bytes);
        assets.push(json!({"name": name, "url": format!("{base}{path}"), "size": bytes.len(),
            "browser_download_url": format!("https://github.com/o/r/releases/download/nightly/{name}")}));
        let hex = if sums_are == Sums::Wrong(name) { sha256(b"something else") } else { sha256(bytes) };
        if sums_are != Sums::Unlisted(name) {
            sums.push_str(&format!("{hex}  {name}\n"));
        }
    }
    if sums_are != Sums::Absent {
        server.route("/repos/o/r/releases/assets/99", 200, sums.into_bytes());
        assets.push(json!({"name": "SHA256SUMS", "url": format!("{base}/repos/o/r/releases/assets/99"), "size": 1}));
    }
    let release =
        json!({"id": 1, "tag_name": "nightly", "target_commitish": "main", "name": "Nightly", "assets": assets});
    server.route("/repos/o/r/releases/tags/nightly", 200, release.to_string());
    let tag = json!({"ref": "refs/tags/nightly", "object": {"sha": commit, "type": "commit", "url": ""}});
    server.route("/repos/o/r/git/ref/tags/nightly", 200, tag.to_string());
    server
}

const COMMIT: &str = "3f1c2d4e5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d";

fn download(dir: &Path, server: &FakeServer, extra: &[&str]) -> std::process::Output {
    let url = server.url();
    let mut args = vec!["release", "download", "--tag", "nightly", "--repo", "o/r", "--api-url", &url, "--out", "out"];
    args.extend_from_slice(extra);
    tbuild_in(dir, &args, &[("GITHUB_TOKEN", "test-token")])
}

#[test]
fn a_verified_release_is_laid_out_like_core_output() {
    let dir = tempfile::tempdir().unwrap();
    let server = github(COMMIT, Sums::Right);
    let output = download(dir.path(), &server, &["--json"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let out = dir.path().join("out");
    let ctl = out.join("tasker-core-binaries/tasker-ctl");
    assert_eq!(std::fs::read(&ctl).unwrap(), ASSETS[0].1);
    assert_eq!(std::fs::metadata(&ctl).unwrap().permissions().mode() & 0o777, 0o755);
    assert_eq!(std::fs::read(out.join("tasker-core-ruby/lib/tasker_core/tasker_rb.so")).unwrap(), ASSETS[1].1);
    assert!(out.join("tasker-core-python/wheels").join(ASSETS[2].0).is_file());
    assert!(out.join("tasker-core-typescript/tasker_ts.linux-x64-gnu.node").is_file());
    assert!(!out.join("other").exists(), "the checksum file is not an artifact");
    let manifest: Value = serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["sha"], COMMIT, "the tag's commit");
    assert_eq!(manifest["recipe"], "release nightly of o/r");
    assert_eq!(manifest["targets"]["tasker-core-binaries"]["source"], "release");
    let printed: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(printed, manifest, "--json prints the manifest");
    let file = &manifest["targets"]["tasker-core-binaries"]["files"][0];
    assert_eq!(file["digest"], blake3::hash(ASSETS[0].1).to_hex().as_str());
    for request in server.requests() {
        assert_eq!(request.headers["authorization"], "Bearer test-token", "{}", request.path);
        if request.path.contains("/assets/") {
            assert_eq!(request.headers["accept"], "application/octet-stream");
        }
    }
}

#[test]
fn a_checksum_mismatch_is_refused_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let good = github(COMMIT, Sums::Right);
    assert_ok(&download(dir.path(), &good, &[]));
    let before = crate::support::snapshot(&dir.path().join("out"));

    let bad = github(COMMIT, Sums::Wrong("tasker_rb.so"));
    let output = download(dir.path(), &bad, &[]);
    assert_eq!(output.status.code(), Some(11), "{}", stderr(&output));
    assert!(stderr(&output).contains("checksum mismatch for tasker_rb.so"), "{}", stderr(&output));
    assert_eq!(crate::support::snapshot(&dir.path().join("out")), before, "the previous out dir is untouched");
    let entries: Vec<String> =
        std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert_eq!(entries, ["out"], "no staging dir or partial download left behind");

    // Into a fresh dir: nothing at all.
    let fresh = tempfile::tempdir().unwrap();
    assert_eq!(download(fresh.path(), &bad, &[]).status.code(), Some(11));
    assert!(!fresh.path().join("out").exists());
}

#[test]
fn patterns_choose_the_assets_and_a_missing_release_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let server = github(COMMIT, Sums::Right);
    let output = download(dir.path(), &server, &["--pattern", "*.whl"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let out = dir.path().join("out");
    assert!(out.join("tasker-core-python/wheels").join(ASSETS[2].0).is_file());
    assert!(!out.join("tasker-core-binaries").exists());
    assert_eq!(server.hits("/repos/o/r/releases/assets/1"), 0, "unwanted assets are not downloaded");

    let none = download(dir.path(), &server, &["--pattern", "*.dmg"]);
    assert_eq!(none.status.code(), Some(11));
    assert!(stderr(&none).contains("no asset of release nightly matches '*.dmg'"), "{}", stderr(&none));
    let url = server.url();
    let missing =
        tbuild_in(dir.path(), &["release", "download", "--tag", "v9", "--repo", "o/r", "--api-url", &url], &[]);
    assert_eq!(missing.status.code(), Some(11));
    assert!(stderr(&missing).contains("release v9 not found in o/r"), "{}", stderr(&missing));
}

fn prefer_release(world: &World, server: &FakeServer, sha: &str, out: &str) -> std::process::Output {
    let recipe = fixture_recipe();
    let url = server.url();
    let extra = [
        "--recipe",
        recipe.to_str().unwrap(),
        "--targets",
        "tasker-ctl",
        "--json",
        "--prefer-release",
        "nightly",
        "--release-repo",
        "o/r",
        "--api-url",
        &url,
    ];
    world.core_with(sha, out, &extra)
}

#[test]
fn prefer_release_uses_a_release_of_the_same_commit_and_builds_otherwise() {
    let world = World::new();
    let head = world.git(&["rev-parse", "HEAD"]).trim().to_string();

    // Built from another commit: fall back to restoring or building.
    let other = github(COMMIT, Sums::Right);
    let output = prefer_release(&world, &other, &head, "built");
    assert_ok(&output);
    assert!(stderr(&output).contains(&format!("was built from {COMMIT}, not {head}")), "{}", stderr(&output));
    let manifest: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(statuses(&manifest)["tasker-ctl"], "built");
    assert_eq!(other.hits("/repos/o/r/releases/assets/1"), 0, "nothing downloaded");

    // Built from this commit (named by a short SHA): the release is the output.
    let same = github(&head, Sums::Right);
    let output = prefer_release(&world, &same, &head[..10], "released");
    assert_ok(&output);
    let manifest: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(manifest["recipe"], "release nightly of o/r");
    let ctl = world.out("released").join("tasker-core-binaries/tasker-ctl");
    assert_eq!(std::fs::read(ctl).unwrap(), ASSETS[0].1);

    // No such release: a warning, then the cache.
    let url = same.url();
    let recipe = fixture_recipe();
    let extra = [
        "--recipe",
        recipe.to_str().unwrap(),
        "--targets",
        "tasker-ctl",
        "--json",
        "--prefer-release",
        "v9",
        "--release-repo",
        "o/r",
        "--api-url",
        &url,
    ];
    let output = world.core_with(&head, "restored", &extra);
    assert_ok(&output);
    assert!(stderr(&output).contains("release v9 not found"), "{}", stderr(&output));
    assert_eq!(statuses(&serde_json::from_slice(&output.stdout).unwrap())["tasker-ctl"], "hit");
}

#[test]
fn an_unlisted_asset_is_refused_and_no_checksum_file_is_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let unlisted = github(COMMIT, Sums::Unlisted("tasker-ctl"));
    let output = download(dir.path(), &unlisted, &[]);
    assert_eq!(output.status.code(), Some(11), "{}", stderr(&output));
    assert!(stderr(&output).contains("tasker-ctl is not listed in the release's checksum file"), "{}", stderr(&output));
    assert!(!dir.path().join("out").exists());
    // Choosing only listed assets works.
    assert_ok(&download(dir.path(), &unlisted, &["--pattern", "*.so"]));

    let unverified = github(COMMIT, Sums::Absent);
    let fresh = tempfile::tempdir().unwrap();
    let output = download(fresh.path(), &unverified, &[]);
    assert_ok(&output);
    assert!(stderr(&output).contains("no checksum file: the assets are not verified"), "{}", stderr(&output));
    assert!(fresh.path().join("out/tasker-core-binaries/tasker-ctl").is_file());
}
