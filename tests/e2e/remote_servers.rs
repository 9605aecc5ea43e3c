//! Servers for the remote cache tests, all on 127.0.0.1 and killed on drop: nginx with
//! WebDAV, moto's S3 server, azurite (Azure blob) behind a stand-in for the GitHub Actions
//! cache's Twirp service, and misbehaving servers (500s, hangs, dying mid-run).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};

/// A server binary that `scripts/install-toolchains.sh` installs; a missing one fails the
/// test with what to do (CI runs the script first), never skips it.
pub fn require(name: &str) -> PathBuf {
    let found = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/local/sbin")])
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file());
    found.unwrap_or_else(|| panic!("{name} is not installed: run scripts/install-toolchains.sh (CI does)"))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn wait_for_port(port: u16, what: &str, child: &mut Child) {
    for _ in 0..300 {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited with {status} before listening on {port}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{what} did not listen on port {port} within 15 s");
}

/// A child process killed and reaped on drop.
pub struct Process {
    child: Child,
    pub port: u16,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// nginx serving `<dir>/data` with `PUT` (WebDAV), as a remote cache at `/cache`.
pub struct Nginx {
    pub process: Process,
    pub data: PathBuf,
}

impl Nginx {
    pub fn start(dir: &Path) -> Nginx {
        let nginx = require("nginx");
        let port = free_port();
        let data = dir.join("data");
        std::fs::create_dir_all(data.join("cache")).unwrap();
        let conf = format!(
            "worker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\nevents {{ worker_connections 64; }}\n\
http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n  \
uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n  client_max_body_size 0;\n  server {{\n    listen 127.0.0.1:{port};\n    \
root {data};\n    location / {{ dav_methods PUT; create_full_put_path on; dav_access user:rw; }}\n  }}\n}}\n",
            d = dir.display(),
            data = data.display(),
        );
        std::fs::write(dir.join("nginx.conf"), conf).unwrap();
        // master_process off: one process, nothing left behind when it is killed.
        let mut child = Command::new(nginx)
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .arg("-p")
            .arg(dir)
            .args(["-g", "daemon off; master_process off;"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_for_port(port, "nginx", &mut child);
        Nginx { process: Process { child, port }, data }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/cache", self.process.port)
    }

    /// Files stored under `/cache/<kind>/`.
    pub fn objects(&self, kind: &str) -> Vec<PathBuf> {
        let dir = self.data.join("cache").join(kind);
        let mut found: Vec<PathBuf> =
            std::fs::read_dir(dir).map(|d| d.map(|e| e.unwrap().path()).collect()).unwrap_or_default();
        found.sort();
        found
    }
}

/// moto's S3 server with one bucket.
pub struct Moto {
    pub process: Process,
}

pub const S3_ENV: [(&str, &str); 3] =
    [("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"), ("AWS_REGION", "us-east-1")];

impl Moto {
    pub fn start(bucket: &str) -> Moto {
        let moto = require("moto_server");
        let port = free_port();
        let mut child = Command::new(moto)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_for_port(port, "moto_server", &mut child);
        let moto = Moto { process: Process { child, port } };
        let (status, body) = raw_request(port, "PUT", &format!("/{bucket}"), &[], b"");
        assert_eq!(status, 200, "creating bucket {bucket}: {body}");
        moto
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.process.port)
    }
}

/// One HTTP/1.1 request over a fresh connection; the status and body.
pub fn raw_request(port: u16, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    let status = response.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, response)
}

/// A parsed request of the mini server.
pub struct Request {
    pub method: String,
    pub path: String,
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
}

fn read_request(stream: &mut TcpStream) -> Option<Request> {
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next()?.to_string(), parts.next()?.to_string());
    let mut headers = HashMap::new();
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).ok()?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((k, v)) = header.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let len = headers.get("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
    let mut body = vec![0; len];
    reader.read_exact(&mut body).ok()?;
    Some(Request { method, path, headers, body })
}

fn respond(stream: &mut TcpStream, status: u16, content_type: &str, body: &[u8]) {
    let head = format!(
        "HTTP/1.1 {status} X\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(body);
}

/// How a misbehaving server misbehaves.
#[derive(Clone, Copy)]
pub enum Fault {
    /// Every request gets a 500.
    Errors,
    /// Accepts connections and never answers.
    Hangs,
    /// Answers 404 to the first N requests, then stops listening (a remote killed mid-run).
    DiesAfter(usize),
    /// Lookups miss (404); uploads get a 507 (a full disk).
    RefusesUploads,
}

/// A mini HTTP server on a thread; `requests` counts what it saw.
pub struct FaultyServer {
    pub port: u16,
    pub requests: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl FaultyServer {
    pub fn start(fault: Fault) -> FaultyServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        let (requests, stop) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicBool::new(false)));
        let (seen, stopped) = (requests.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut held = Vec::new();
            while !stopped.load(Ordering::SeqCst) {
                let Ok((mut stream, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                };
                stream.set_nonblocking(false).unwrap();
                let n = seen.fetch_add(1, Ordering::SeqCst);
                match fault {
                    Fault::Errors => {
                        let _ = read_request(&mut stream);
                        respond(&mut stream, 500, "text/plain", b"internal error");
                    }
                    Fault::Hangs => held.push(stream),
                    Fault::RefusesUploads => {
                        let put = read_request(&mut stream).is_some_and(|r| r.method == "PUT");
                        let (status, body): (u16, &[u8]) =
                            if put { (507, b"insufficient storage") } else { (404, b"") };
                        respond(&mut stream, status, "text/plain", body);
                    }
                    Fault::DiesAfter(limit) => {
                        let _ = read_request(&mut stream);
                        respond(&mut stream, 404, "text/plain", b"not found");
                        if n + 1 >= limit {
                            return; // drops the listener: connections are refused from now on
                        }
                    }
                }
            }
        });
        FaultyServer { port, requests, stop }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/cache", self.port)
    }
}

impl Drop for FaultyServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

const AZURITE_ACCOUNT: &str = "devstoreaccount1";
/// Azurite's well-known development key (public, in Microsoft's docs).
const AZURITE_KEY: &str = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
const CONTAINER: &str = "actions-cache";

/// azurite's blob service plus a stand-in for the Actions cache's Twirp service that hands
/// out SAS URLs into it, as the real service hands out URLs into Azure.
pub struct ActionsCache {
    _azurite: Process,
    azurite_port: u16,
    pub port: u16,
    pub state: Arc<Mutex<TwirpState>>,
    stop: Arc<AtomicBool>,
}

pub const RUNTIME_TOKEN: &str = "test-runtime-token";

#[derive(Default)]
pub struct TwirpState {
    /// key -> (version, blob name, finalized)
    pub entries: HashMap<String, (String, String, bool)>,
    /// Answer 429 to this many CreateCacheEntry calls first.
    pub throttle_creates: usize,
    /// Lookups miss, as when another job's save is still in flight.
    pub hide_entries: bool,
    pub conflicts: usize,
    pub throttled: usize,
    pub unauthorized: usize,
}

impl ActionsCache {
    pub fn start(dir: &Path) -> ActionsCache {
        let azurite = require("azurite-blob");
        let azurite_port = free_port();
        let mut child = Command::new(azurite)
            .args(["--blobHost", "127.0.0.1", "--blobPort", &azurite_port.to_string()])
            .args(["--silent", "--skipApiVersionCheck", "--location"])
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_for_port(azurite_port, "azurite-blob", &mut child);
        let azurite = Process { child, port: azurite_port };
        let path = format!("/{AZURITE_ACCOUNT}/{CONTAINER}?restype=container&{}", account_sas());
        let (status, body) = raw_request(azurite_port, "PUT", &path, &[("x-ms-version", "2019-12-12")], b"");
        assert_eq!(status, 201, "creating the azurite container: {body}");

        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        let state = Arc::new(Mutex::new(TwirpState::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (shared, stopped) = (state.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stopped.load(Ordering::SeqCst) {
                let Ok((mut stream, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                };
                stream.set_nonblocking(false).unwrap();
                let Some(request) = read_request(&mut stream) else { continue };
                let (status, body) = twirp(&request, &shared, azurite_port);
                respond(&mut stream, status, "application/json", body.to_string().as_bytes());
            }
        });
        ActionsCache { _azurite: azurite, azurite_port, port, state, stop }
    }

    /// The environment the Actions runner gives a step (after the export action).
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("ACTIONS_RESULTS_URL", format!("http://127.0.0.1:{}/", self.port)),
            ("ACTIONS_RUNTIME_TOKEN", RUNTIME_TOKEN.to_string()),
            ("ACTIONS_CACHE_SERVICE_V2", "True".to_string()),
        ]
    }

    /// The bytes of the finalized entry `key`, read back from azurite.
    pub fn blob(&self, key: &str) -> Option<Vec<u8>> {
        let blob = self.state.lock().unwrap().entries.get(key).filter(|e| e.2).map(|e| e.1.clone())?;
        let path = format!("/{AZURITE_ACCOUNT}/{CONTAINER}/{blob}?{}", account_sas());
        let (status, response) = raw_request(self.azurite_port, "GET", &path, &[], b"");
        (status == 200).then(|| response.split_once("\r\n\r\n").unwrap().1.as_bytes().to_vec())
    }
}

impl Drop for ActionsCache {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// An account SAS for azurite, valid for everything in the blob service (API 2019-12-12
/// string-to-sign: account, permissions, services, resource types, start, expiry, ip,
/// protocol, version).
fn account_sas() -> String {
    let (sp, ss, srt, se, sv) = ("racwdl", "b", "sco", "2099-01-01T00:00:00Z", "2019-12-12");
    let to_sign = format!("{AZURITE_ACCOUNT}\n{sp}\n{ss}\n{srt}\n\n{se}\n\n\n{sv}\n");
    let key = base64::engine::general_purpose::STANDARD.decode(AZURITE_KEY).unwrap();
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    mac.update(to_sign.as_bytes());
    let sig = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    let sig = sig.replace('+', "%2B").replace('/', "%2F").replace('=', "%3D");
    format!("sv={sv}&ss={ss}&srt={srt}&sp={sp}&se={}&sig={sig}", se.replace(':', "%3A"))
}

fn twirp_error(status: u16, code: &str, msg: &str) -> (u16, Value) {
    (status, json!({ "code": code, "msg": msg }))
}

/// The three methods of `github.actions.results.api.v1.CacheService`, JSON flavour.
fn twirp(request: &Request, state: &Mutex<TwirpState>, azurite_port: u16) -> (u16, Value) {
    let mut state = state.lock().unwrap();
    if request.headers.get("authorization").map(String::as_str) != Some(&format!("Bearer {RUNTIME_TOKEN}")) {
        state.unauthorized += 1;
        return twirp_error(401, "unauthenticated", "invalid token");
    }
    let Some(method) = request.path.strip_prefix("/twirp/github.actions.results.api.v1.CacheService/") else {
        return twirp_error(404, "bad_route", "no such service");
    };
    if request.method != "POST" || request.headers.get("content-type").map(String::as_str) != Some("application/json") {
        return twirp_error(400, "malformed", "Twirp JSON requests are POSTs of application/json");
    }
    let Ok(body) = serde_json::from_slice::<Value>(&request.body) else {
        return twirp_error(400, "malformed", "body is not JSON");
    };
    let (Some(key), Some(version)) = (body["key"].as_str(), body["version"].as_str()) else {
        return twirp_error(400, "invalid_argument", "key and version are required");
    };
    let blob_url =
        |blob: &str| format!("http://127.0.0.1:{azurite_port}/{AZURITE_ACCOUNT}/{CONTAINER}/{blob}?{}", account_sas());
    match method {
        "CreateCacheEntry" => {
            if state.throttle_creates > 0 {
                state.throttle_creates -= 1;
                state.throttled += 1;
                return twirp_error(429, "resource_exhausted", "too many cache uploads");
            }
            if state.entries.contains_key(key) {
                state.conflicts += 1;
                return twirp_error(
                    409,
                    "already_exists",
                    "cache entry with the same key, version, and scope already exists",
                );
            }
            let blob = format!("{:x}", md5_like(key));
            state.entries.insert(key.to_string(), (version.to_string(), blob.clone(), false));
            (200, json!({ "ok": true, "signed_upload_url": blob_url(&blob) }))
        }
        "FinalizeCacheEntryUpload" => {
            let size: Option<u64> = body["size_bytes"].as_str().and_then(|s| s.parse().ok());
            match state.entries.get_mut(key) {
                // The blob must have been uploaded, whole, before the entry is finalized.
                Some(entry) if entry.0 == version && size.is_some() && blob_size(azurite_port, &entry.1) == size => {
                    entry.2 = true;
                    (200, json!({ "ok": true, "entry_id": "42" }))
                }
                _ => twirp_error(404, "not_found", "no reserved entry with an uploaded blob of size_bytes"),
            }
        }
        "GetCacheEntryDownloadURL" => match state.entries.get(key) {
            Some((v, blob, true)) if v == version && !state.hide_entries => {
                (200, json!({ "ok": true, "signed_download_url": blob_url(blob), "matched_key": key }))
            }
            _ => (200, json!({ "ok": false })),
        },
        _ => twirp_error(404, "bad_route", "no such method"),
    }
}

/// The size of a blob in azurite, if it exists.
fn blob_size(azurite_port: u16, blob: &str) -> Option<u64> {
    let path = format!("/{AZURITE_ACCOUNT}/{CONTAINER}/{blob}?{}", account_sas());
    let (status, response) = raw_request(azurite_port, "HEAD", &path, &[("x-ms-version", "2019-12-12")], b"");
    let length = response
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_string()));
    if status == 200 { length?.parse().ok() } else { None }
}

/// A blob name per key (any stable, URL-safe name does).
fn md5_like(key: &str) -> u128 {
    let digest = blake3::hash(key.as_bytes());
    u128::from_le_bytes(digest.as_bytes()[..16].try_into().unwrap())
}
