//! HTTP plumbing shared by the backends, on top of the crate's HTTP layer ([`crate::http`]:
//! clients, failure classification, `Retry-After`): the remote's clients and timeouts,
//! streaming a response into a file with a size limit, and a file as a request body.

use std::path::Path;
use std::time::Duration;

use reqwest::{Client, RequestBuilder, Response, StatusCode};

use crate::http::{Timeouts, Transport};
use tokio::io::AsyncWriteExt;

use super::{Payload, RemoteError, RemoteResult};

/// Slowest upload rate still worth waiting for, to bound uploads (see [`Net::upload_timeout`]).
const SLOWEST_UPLOAD: u64 = 256 * 1024;

/// The HTTP clients every backend uses. The connect timeout bounds a dead host. `client`'s
/// read timeout bounds a server that accepts and never answers, or stalls mid-download,
/// without capping how long a large archive may take while it moves. reqwest counts that
/// timeout from the start of the request until the response headers, which for an upload
/// includes sending the body: uploads go through `uploads`, bounded per request instead.
#[derive(Clone)]
pub struct Net {
    pub client: Client,
    pub uploads: Client,
    pub timeout: Duration,
}

impl Net {
    pub fn new(timeout: Duration) -> reqwest::Result<Net> {
        let agent = concat!("tbuild/", env!("CARGO_PKG_VERSION"));
        let idle = Timeouts { connect: timeout, read: Some(timeout), total: None };
        let uploads = Timeouts { read: None, ..idle };
        Ok(Net { client: crate::http::client(agent, idle)?, uploads: crate::http::client(agent, uploads)?, timeout })
    }

    /// How long an upload of `size` bytes may take: the timeout, plus the time it takes at
    /// a rate slow enough that only a stuck server is slower.
    pub fn upload_timeout(&self, size: u64) -> Duration {
        self.timeout + Duration::from_secs(size / SLOWEST_UPLOAD)
    }
}

/// Sends `request`, turning transport failures into [`RemoteError`]s. Any status is returned.
pub async fn send(what: &str, request: RequestBuilder, timeout: Duration) -> RemoteResult<Response> {
    request.send().await.map_err(|e| transport_error(what, &e, timeout))
}

fn transport_error(what: &str, err: &reqwest::Error, timeout: Duration) -> RemoteError {
    match crate::http::transport(err) {
        Transport::Timeout => RemoteError::Timeout { what: what.into(), after: timeout },
        Transport::Failed(message) => RemoteError::Connect { what: what.into(), message },
    }
}

/// An error for a status the caller does not handle itself; a short body is kept, since
/// servers put the reason there (S3's XML error code, Twirp's `msg`).
pub async fn status_error(what: &str, response: Response) -> RemoteError {
    let status = response.status().as_u16();
    let retry_after = crate::http::retry_after(response.headers());
    let body = response.text().await.unwrap_or_default();
    let body: String = body.split_whitespace().collect::<Vec<_>>().join(" ").chars().take(200).collect();
    RemoteError::Status { what: what.into(), status, body, retry_after }
}

/// `GET`-like: streams a 2xx body into `dest`; `false` on 404.
pub async fn download(
    what: &str,
    response: Response,
    dest: &Path,
    limit: u64,
    timeout: Duration,
) -> RemoteResult<bool> {
    if response.status() == StatusCode::NOT_FOUND {
        return Ok(false);
    }
    if !response.status().is_success() {
        return Err(status_error(what, response).await);
    }
    if let Some(length) = response.content_length().filter(|len| *len > limit) {
        return Err(too_big(what, length, limit));
    }
    let local =
        |e: std::io::Error| RemoteError::Local { what: what.into(), message: format!("{}: {e}", dest.display()) };
    let mut file = tokio::fs::File::create(dest).await.map_err(local)?;
    let mut response = response;
    let mut written = 0u64;
    while let Some(chunk) = response.chunk().await.map_err(|e| transport_error(what, &e, timeout))? {
        written += chunk.len() as u64;
        if written > limit {
            return Err(too_big(what, written, limit));
        }
        file.write_all(&chunk).await.map_err(local)?;
    }
    file.flush().await.map_err(local)?;
    Ok(true)
}

fn too_big(what: &str, size: u64, limit: u64) -> RemoteError {
    RemoteError::Garbage { what: what.into(), reason: format!("{size} bytes or more, expected at most {limit}") }
}

/// A request body for `payload`, streamed from disk for files, with its length set (S3
/// and Azure refuse chunked uploads).
pub async fn body(what: &str, payload: &Payload) -> RemoteResult<(reqwest::Body, u64)> {
    match payload {
        Payload::Bytes(bytes) => Ok((reqwest::Body::from(bytes.clone()), bytes.len() as u64)),
        Payload::File { path, size } => {
            let file = tokio::fs::File::open(path)
                .await
                .map_err(|e| RemoteError::Local { what: what.into(), message: format!("{}: {e}", path.display()) })?;
            Ok((reqwest::Body::from(file), *size))
        }
    }
}

/// A 2xx is success; anything else is an error.
pub async fn expect_success(what: &str, response: Response) -> RemoteResult<()> {
    if response.status().is_success() { Ok(()) } else { Err(status_error(what, response).await) }
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpListener;

    use super::*;

    /// A server that takes 2 s to read a 1 MiB body, longer than the 1 s timeout: an upload
    /// that keeps moving must not be cut off by the timeout meant for silent servers.
    #[test]
    fn a_slow_upload_outlives_the_idle_timeout() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut length = 0;
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = value.trim().parse().unwrap();
                }
                if line == "\r\n" {
                    break;
                }
            }
            let mut body = vec![0u8; length];
            for chunk in body.chunks_mut(length / 8) {
                std::thread::sleep(Duration::from_millis(250));
                reader.read_exact(chunk).unwrap();
            }
            let mut stream = stream;
            stream.write_all(b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").unwrap();
            body.len()
        });
        let net = Net::new(Duration::from_secs(1)).unwrap();
        let payload = Payload::Bytes(vec![7u8; 1024 * 1024]);
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let status = runtime.block_on(async {
            let (body, len) = body("PUT x", &payload).await.unwrap();
            let request = net.uploads.put(format!("http://127.0.0.1:{port}/x")).body(body);
            let timeout = net.upload_timeout(len);
            send("PUT x", request.timeout(timeout), timeout).await.map(|r| r.status().as_u16())
        });
        assert_eq!(status.unwrap(), 201);
        assert_eq!(server.join().unwrap(), 1024 * 1024);
    }
}
