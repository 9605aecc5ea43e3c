//! The remote cache tier against real servers on 127.0.0.1: two cache dirs share one
//! remote; run A builds and uploads, run B restores from the remote without building.

use std::collections::BTreeMap;
use std::process::Output;
use std::time::Instant;

use serde_json::Value;

use crate::remote_servers::*;
use crate::support::*;

/// `tbuild core` of `targets` with the cache dir `cache` (under the world's dir) and
/// `extra` arguments; no remote settings inherited from the environment.
fn run(world: &World, cache: &str, out: &str, targets: &str, extra: &[&str], env: &[(&str, &str)]) -> Output {
    let recipe = fixture_recipe();
    let mut args = vec!["--recipe", recipe.to_str().unwrap(), "--targets", targets, "--json"];
    args.extend_from_slice(extra);
    let args = world.core_args_with("main", out, &args);
    let cache_dir = world.dir.path().join(cache);
    let mut command = world.command(&args.iter().map(String::as_str).collect::<Vec<_>>(), env);
    for var in
        ["TBUILD_REMOTE", "TBUILD_SIGNING_KEY", "TBUILD_REMOTE_TOKEN", "TBUILD_S3_ENDPOINT", "TBUILD_REMOTE_REQUIRED"]
    {
        if !env.iter().any(|(k, _)| *k == var) {
            command.env_remove(var);
        }
    }
    command.env("TBUILD_CACHE_DIR", cache_dir).output().unwrap()
}

fn manifest(output: &Output) -> Value {
    assert_ok(output);
    serde_json::from_slice(&output.stdout).unwrap()
}

/// target -> "status/source" (`hit/remote`, `hit/local`, `built/build`).
fn outcomes(manifest: &Value) -> BTreeMap<String, String> {
    manifest["targets"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), format!("{}/{}", v["status"].as_str().unwrap(), v["source"].as_str().unwrap())))
        .collect()
}

fn all(targets: &str, outcome: &str) -> BTreeMap<String, String> {
    targets.split(',').map(|t| (t.to_string(), outcome.to_string())).collect()
}

fn warnings(output: &Output) -> Vec<String> {
    stderr(output).lines().filter(|l| l.contains("warning:")).map(String::from).collect()
}

/// Run A (cache-a) builds and uploads; run B (cache-b) restores everything from the
/// remote, builds nothing, and publishes the same bytes.
fn round_trip(world: &World, remote: &[&str], env: &[(&str, &str)]) {
    let a = run(world, "cache-a", "out-a", BINARIES, remote, env);
    assert_eq!(outcomes(&manifest(&a)), all(BINARIES, "built/build"), "{}", stderr(&a));
    assert!(stderr(&a).contains("3 uploaded"), "{}", stderr(&a));
    assert!(warnings(&a).is_empty(), "{}", stderr(&a));

    let b = run(world, "cache-b", "out-b", BINARIES, remote, env);
    assert_eq!(outcomes(&manifest(&b)), all(BINARIES, "hit/remote"), "{}", stderr(&b));
    assert!(!stderr(&b).contains(": build"), "run B must not build:\n{}", stderr(&b));
    assert!(stderr(&b).contains("3 restored"), "{}", stderr(&b));
    assert!(snapshot(&world.out("out-a")) == snapshot(&world.out("out-b")), "outputs differ");
    assert!(run_binary(&world.out("out-b").join("tasker-core-binaries/tasker-ctl")).starts_with("tasker-ctl"));

    // The remote hit was written into cache B: a third run is a local hit.
    let c = run(world, "cache-b", "out-c", BINARIES, remote, env);
    assert_eq!(outcomes(&manifest(&c)), all(BINARIES, "hit/local"), "{}", stderr(&c));
}

#[test]
fn http_webdav_remote_shares_artifacts_between_cache_dirs() {
    let world = World::new();
    let nginx = Nginx::start(&world.dir.path().join("nginx"));
    let url = nginx.url();
    round_trip(&world, &["--remote", &url], &[]);
    // The remote layout: one record per key, one archive per sha256.
    let keys = world.keys("main");
    let records: Vec<String> =
        nginx.objects("ac").iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
    assert_eq!(
        records,
        keys.values().cloned().collect::<std::collections::BTreeSet<_>>().into_iter().collect::<Vec<_>>()
    );
    let record: Value = serde_json::from_slice(&std::fs::read(&nginx.objects("ac")[0]).unwrap()).unwrap();
    assert_eq!(record["format"], 2, "remote format 2: signatures cover the whole record");
    let sha = record["archive_sha256"].as_str().unwrap();
    assert!(nginx.data.join("cache/cas").join(sha).is_file());
}

#[test]
fn s3_remote_shares_artifacts_between_cache_dirs() {
    let world = World::new();
    let moto = Moto::start("tbuild-cache");
    let endpoint = moto.endpoint();
    round_trip(&world, &["--remote", "s3://tbuild-cache/ci/tasker", "--s3-endpoint", &endpoint], &S3_ENV);
    let (status, listing) =
        raw_request(moto.process.port, "GET", "/tbuild-cache?list-type=2&prefix=ci/tasker/ac/", &[], b"");
    assert_eq!(status, 200);
    assert_eq!(listing.matches("<Key>ci/tasker/ac/").count(), 3, "{listing}");
}

#[test]
fn s3_remote_without_credentials_is_a_usage_error() {
    let world = World::new();
    let output = run(
        &world,
        "cache-a",
        "out-a",
        "tasker-ctl",
        &["--remote", "s3://bucket"],
        &[("AWS_ACCESS_KEY_ID", ""), ("AWS_SECRET_ACCESS_KEY", "")],
    );
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(stderr(&output).contains("AWS_ACCESS_KEY_ID"), "{}", stderr(&output));
}

#[test]
fn gha_remote_round_trip_second_writer_and_rate_limit() {
    let world = World::new();
    let service = ActionsCache::start(&world.dir.path().join("azurite"));
    let env_owned = service.env();
    let env: Vec<(&str, &str)> = env_owned.iter().map(|(k, v)| (*k, v.as_str())).collect();
    // The first two creates are throttled: the policy retries them with backoff.
    service.state.lock().unwrap().throttle_creates = 2;
    round_trip(&world, &["--remote", "gha"], &env);
    {
        let state = service.state.lock().unwrap();
        assert_eq!(state.throttled, 2);
        assert_eq!(state.unauthorized, 0);
        assert_eq!(state.entries.len(), 6, "a record and an archive per target");
        assert!(state.entries.values().all(|e| e.2), "every entry finalized");
    }
    let keys = world.keys("main");
    let record: Value =
        serde_json::from_slice(&service.blob(&format!("tbuild-ac-{}", keys["tasker-ctl"])).unwrap()).unwrap();
    assert_eq!(record["record"]["target"], "tasker-ctl");

    // A second writer (lookups miss while another job's save is in flight): 409 means
    // someone else saved it, which is fine.
    service.state.lock().unwrap().hide_entries = true;
    let second = run(&world, "cache-c", "out-c", "tasker-ctl", &["--remote", "gha"], &env);
    assert_eq!(outcomes(&manifest(&second)), all("tasker-ctl", "built/build"));
    assert!(warnings(&second).is_empty(), "{}", stderr(&second));
    assert!(stderr(&second).contains("0 uploaded, 1 already there"), "{}", stderr(&second));
    assert!(service.state.lock().unwrap().conflicts >= 1);
}

#[test]
fn gha_remote_needs_the_runner_environment() {
    let world = World::new();
    let output = run(
        &world,
        "cache-a",
        "out-a",
        "tasker-ctl",
        &["--remote", "gha"],
        &[("ACTIONS_RESULTS_URL", ""), ("ACTIONS_RUNTIME_TOKEN", "")],
    );
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(stderr(&output).contains("ACTIONS_RUNTIME_TOKEN"), "{}", stderr(&output));
}

#[test]
fn tampered_remote_archive_is_refused_rebuilt_and_repaired() {
    let world = World::new();
    let nginx = Nginx::start(&world.dir.path().join("nginx"));
    let remote = ["--remote", &nginx.url()];
    manifest(&run(&world, "cache-a", "out-a", "tasker-ctl", &remote, &[]));
    let archive = &nginx.objects("cas")[0];
    let mut bytes = std::fs::read(archive).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(archive, &bytes).unwrap();

    // The same machine again without its artifact cache (its build dirs stay, so the rebuild
    // gives the same bytes, under the same sha256 as the tampered object).
    std::fs::remove_dir_all(world.dir.path().join("cache-a/v1")).unwrap();
    let b = run(&world, "cache-a", "out-b", "tasker-ctl", &remote, &[]);
    assert_eq!(outcomes(&manifest(&b)), all("tasker-ctl", "built/build"), "{}", stderr(&b));
    let err = stderr(&b);
    assert!(err.contains("cache entry of tasker-ctl is corrupt") && err.contains("archive digest is sha256"), "{err}");
    assert!(err.contains("1 refused") && err.contains("1 uploaded"), "{err}");
    assert_eq!(err.matches("warning:").count(), 1, "reported once: {err}");
    assert!(snapshot(&world.out("out-a")) == snapshot(&world.out("out-b")), "the rebuild gives the same bytes");

    // Run B uploaded the archive again although the remote had an object by that name.
    let c = run(&world, "cache-c", "out-c", "tasker-ctl", &remote, &[]);
    assert_eq!(outcomes(&manifest(&c)), all("tasker-ctl", "hit/remote"), "{}", stderr(&c));
    assert!(snapshot(&world.out("out-b")) == snapshot(&world.out("out-c")), "outputs differ");
}

#[test]
fn signed_remote_refuses_unsigned_and_wrongly_signed_entries() {
    let world = World::new();
    let nginx = Nginx::start(&world.dir.path().join("nginx"));
    let remote = ["--remote", &nginx.url()];
    // An unsigned entry (uploaded without a key) is refused by a reader with a key...
    manifest(&run(&world, "cache-a", "out-a", "tasker-ctl", &remote, &[]));
    let right = [("TBUILD_SIGNING_KEY", "right key")];
    let b = run(&world, "cache-b", "out-b", "tasker-ctl", &remote, &right);
    assert_eq!(outcomes(&manifest(&b)), all("tasker-ctl", "built/build"), "{}", stderr(&b));
    assert!(stderr(&b).contains("it is not signed, and TBUILD_SIGNING_KEY is set"), "{}", stderr(&b));
    // ...which then uploads a signed one: the same key takes it, another key refuses it.
    let record: Value = serde_json::from_slice(&std::fs::read(&nginx.objects("ac")[0]).unwrap()).unwrap();
    assert!(record["signature"].as_str().unwrap().starts_with("hmac-sha256:"), "{record}");
    let c = run(&world, "cache-c", "out-c", "tasker-ctl", &remote, &right);
    assert_eq!(outcomes(&manifest(&c)), all("tasker-ctl", "hit/remote"), "{}", stderr(&c));
    let d = run(&world, "cache-d", "out-d", "tasker-ctl", &remote, &[("TBUILD_SIGNING_KEY", "wrong key")]);
    assert_eq!(outcomes(&manifest(&d)), all("tasker-ctl", "built/build"), "{}", stderr(&d));
    assert!(stderr(&d).contains("its signature does not match TBUILD_SIGNING_KEY"), "{}", stderr(&d));
    assert!(stderr(&d).contains("1 refused"), "{}", stderr(&d));
}

#[test]
fn read_only_remote_restores_but_never_uploads() {
    let world = World::new();
    let nginx = Nginx::start(&world.dir.path().join("nginx"));
    let remote = ["--remote", &nginx.url(), "--remote-read-only"];
    let a = run(&world, "cache-a", "out-a", "tasker-ctl", &remote, &[]);
    assert_eq!(outcomes(&manifest(&a)), all("tasker-ctl", "built/build"));
    assert!(nginx.objects("ac").is_empty() && nginx.objects("cas").is_empty());
    assert!(stderr(&a).contains("read-only (no uploads)"), "{}", stderr(&a));
}

/// A remote that fails in `fault`'s way: the build finishes locally with one warning.
fn survives(fault: Fault, expected: &str) -> Output {
    let world = World::new();
    let server = FaultyServer::start(fault);
    let started = Instant::now();
    let output = run(&world, "cache-a", "out-a", BINARIES, &["--remote", &server.url(), "--remote-timeout", "1"], &[]);
    let took = started.elapsed();
    assert_eq!(outcomes(&manifest(&output)), all(BINARIES, "built/build"), "{}", stderr(&output));
    let warned = warnings(&output);
    assert_eq!(warned.len(), 1, "exactly one warning:\n{}", stderr(&output));
    assert!(warned[0].contains(expected) && warned[0].contains("continuing with the local cache"), "{}", warned[0]);
    assert!(stderr(&output).contains("skipped after 3 failures in a row"), "{}", stderr(&output));
    // Three lookups at most before the breaker trips, each bounded by the 1 s timeout (plus
    // backoff for retryable errors); the builds themselves take the rest.
    assert!(took.as_secs() < 180, "took {took:?}");
    output
}

#[test]
fn remote_answering_500_never_fails_the_build() {
    survives(Fault::Errors, "HTTP 500");
}

#[test]
fn hanging_remote_times_out_and_is_skipped() {
    survives(Fault::Hangs, "no answer within 1 s");
}

#[test]
fn remote_killed_mid_run_is_skipped() {
    // One lookup is answered (a miss), then the server is gone.
    survives(Fault::DiesAfter(1), "GET ac/");
}

#[test]
fn remote_required_turns_a_failing_remote_into_exit_7() {
    let world = World::new();
    let server = FaultyServer::start(Fault::Errors);
    let output = run(&world, "cache-a", "out-a", "tasker-ctl", &["--remote", &server.url(), "--remote-required"], &[]);
    assert_eq!(output.status.code(), Some(7), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("--remote-required is set") && stderr(&output).contains("HTTP 500"),
        "{}",
        stderr(&output)
    );
    assert!(!world.out("out-a").exists(), "nothing published");
}

#[test]
fn offline_uses_no_remote() {
    let world = World::new();
    manifest(&run(&world, "cache-a", "out-a", "tasker-ctl", &[], &[]));
    let server = FaultyServer::start(Fault::Errors);
    let output = run(&world, "cache-a", "out-b", "tasker-ctl", &["--remote", &server.url(), "--offline"], &[]);
    assert_eq!(outcomes(&manifest(&output)), all("tasker-ctl", "hit/local"));
    assert_eq!(server.requests.load(std::sync::atomic::Ordering::SeqCst), 0);
}

#[test]
fn failed_uploads_warn_once_or_fail_with_remote_required() {
    let world = World::new();
    let server = FaultyServer::start(Fault::RefusesUploads);
    let remote = ["--remote", &server.url()];
    let output = run(&world, "cache-a", "out-a", BINARIES, &remote, &[]);
    assert_eq!(outcomes(&manifest(&output)), all(BINARIES, "built/build"));
    assert_eq!(warnings(&output).len(), 1, "{}", stderr(&output));
    assert!(warnings(&output)[0].contains("HTTP 507"), "{}", stderr(&output));
    assert!(stderr(&output).contains("0 uploaded, 0 already there, 3 not uploaded"), "{}", stderr(&output));

    let required =
        run(&world, "cache-b", "out-b", "tasker-ctl", &["--remote", &server.url(), "--remote-required"], &[]);
    assert_eq!(required.status.code(), Some(7), "{}", stderr(&required));
    assert!(stderr(&required).contains("--remote-required is set") && stderr(&required).contains("HTTP 507"));
    assert!(
        world.out("out-b").join("manifest.json").is_file(),
        "the build's outputs are published before the upload error"
    );
}
