//! A small HTTP/1.1 server on 127.0.0.1 for the registry and GitHub tests: fixed responses
//! per path, optionally slow or failing the first requests, and a log of what was asked.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Clone, Default)]
struct Route {
    status: u16,
    body: Vec<u8>,
    delay: Duration,
    /// Answer 503 this many times before the real response.
    fail_first: u32,
}

#[derive(Clone, Debug)]
pub struct Request {
    pub path: String,
    /// Lowercased names.
    pub headers: HashMap<String, String>,
}

#[derive(Default)]
struct State {
    routes: HashMap<String, Route>,
    requests: Vec<Request>,
}

pub struct FakeServer {
    port: u16,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
}

impl FakeServer {
    pub fn start() -> FakeServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(State::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (state2, stop2) = (state.clone(), stop.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let state = state2.clone();
                std::thread::spawn(move || serve(stream, &state));
            }
        });
        FakeServer { port, state, stop }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Serves `body` with `status` at `path` (the path and query as requested).
    pub fn route(&self, path: &str, status: u16, body: impl Into<Vec<u8>>) {
        let route = Route { status, body: body.into(), ..Route::default() };
        self.state.lock().unwrap().routes.insert(path.to_string(), route);
    }

    /// Delays the answer at `path`.
    pub fn slow(&self, path: &str, delay: Duration) {
        self.state.lock().unwrap().routes.get_mut(path).expect("route first").delay = delay;
    }

    /// Answers 503 the first `times` requests at `path`.
    pub fn flaky(&self, path: &str, times: u32) {
        self.state.lock().unwrap().routes.get_mut(path).expect("route first").fail_first = times;
    }

    pub fn requests(&self) -> Vec<Request> {
        self.state.lock().unwrap().requests.clone()
    }

    pub fn hits(&self, path: &str) -> usize {
        self.requests().iter().filter(|r| r.path == path).count()
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so that it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn serve(stream: TcpStream, state: &Mutex<State>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() || request_line.is_empty() {
        return;
    }
    let path = request_line.split_whitespace().nth(1).unwrap_or("/").to_string();
    let mut headers = HashMap::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).is_err() || line.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_string());
        }
    }
    let route = {
        let mut state = state.lock().unwrap();
        state.requests.push(Request { path: path.clone(), headers });
        match state.routes.get_mut(&path) {
            Some(route) if route.fail_first > 0 => {
                route.fail_first -= 1;
                Route { status: 503, body: b"try again".to_vec(), ..Route::default() }
            }
            Some(route) => route.clone(),
            None => {
                Route { status: 404, body: b"{\"errors\":[{\"detail\":\"Not Found\"}]}".to_vec(), ..Route::default() }
            }
        }
    };
    std::thread::sleep(route.delay);
    let reason = match route.status {
        200 => "OK",
        404 => "Not Found",
        503 => "Service Unavailable",
        _ => "Status",
    };
    let head = format!(
        "HTTP/1.1 {} {reason}\r\nContent-Length: {}\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n",
        route.status,
        route.body.len()
    );
    let mut stream = stream;
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(&route.body);
    let _ = stream.flush();
}
