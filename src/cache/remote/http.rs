//! The HTTP cache protocol that bazel-remote and plain WebDAV servers (nginx `dav_methods
//! PUT`) speak: `GET`/`PUT`/`HEAD` of `<prefix>/ac/<key>` and `<prefix>/cas/<sha256>`.
//! Auth is a bearer token (`TBUILD_REMOTE_TOKEN`) or basic auth from the URL's userinfo.

use std::path::Path;

use reqwest::header::CONTENT_LENGTH;
use reqwest::{RequestBuilder, StatusCode, Url};

use super::transfer::Net;

use super::transfer::{body, download, expect_success, send, status_error};
use super::{BoxFuture, Object, Payload, RemoteBackend, RemoteResult, Stored};

enum Auth {
    None,
    Bearer(String),
    Basic(String, String),
}

pub struct HttpBackend {
    net: Net,
    /// Ends with `/`, no userinfo.
    base: Url,
    auth: Auth,
}

impl HttpBackend {
    /// `token` (from `TBUILD_REMOTE_TOKEN`) wins over credentials in the URL.
    pub fn new(net: Net, url: &str, token: Option<String>) -> Result<HttpBackend, String> {
        let mut base = Url::parse(url).map_err(|e| format!("--remote {url:?} is not a valid URL: {e}"))?;
        if base.query().is_some() || base.fragment().is_some() {
            return Err(format!("--remote {url:?}: a remote URL takes no query string or fragment"));
        }
        let user = percent_decode(base.username());
        let password = base.password().map(percent_decode);
        let _ = base.set_username("");
        let _ = base.set_password(None);
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        let auth = match token.filter(|t| !t.is_empty()) {
            Some(token) => Auth::Bearer(token),
            None if !user.is_empty() || password.is_some() => Auth::Basic(user, password.unwrap_or_default()),
            None => Auth::None,
        };
        Ok(HttpBackend { net, base, auth })
    }

    /// The URL for messages: never the credentials.
    pub fn display_url(&self) -> String {
        self.base.as_str().trim_end_matches('/').to_string()
    }

    fn request(&self, method: reqwest::Method, object: &Object) -> RequestBuilder {
        let url = self.base.join(&object.path()).expect("object paths are plain");
        let client = if method == reqwest::Method::PUT { &self.net.uploads } else { &self.net.client };
        let request = client.request(method, url);
        match &self.auth {
            Auth::None => request,
            Auth::Bearer(token) => request.bearer_auth(token),
            Auth::Basic(user, password) => request.basic_auth(user, Some(password)),
        }
    }
}

impl RemoteBackend for HttpBackend {
    fn get<'a>(&'a self, object: &'a Object, dest: &'a Path, limit: u64) -> BoxFuture<'a, RemoteResult<bool>> {
        Box::pin(async move {
            let what = format!("GET {}", object.path());
            let response = send(&what, self.request(reqwest::Method::GET, object), self.net.timeout).await?;
            download(&what, response, dest, limit, self.net.timeout).await
        })
    }

    fn exists<'a>(&'a self, object: &'a Object) -> BoxFuture<'a, RemoteResult<bool>> {
        Box::pin(async move {
            let what = format!("HEAD {}", object.path());
            let request = self.request(reqwest::Method::HEAD, object).timeout(self.net.timeout);
            let response = send(&what, request, self.net.timeout).await?;
            match response.status() {
                status if status.is_success() => Ok(true),
                StatusCode::NOT_FOUND => Ok(false),
                _ => Err(status_error(&what, response).await),
            }
        })
    }

    fn put<'a>(&'a self, object: &'a Object, payload: &'a Payload) -> BoxFuture<'a, RemoteResult<Stored>> {
        Box::pin(async move {
            let what = format!("PUT {}", object.path());
            let (body, len) = body(&what, payload).await?;
            let request = self.request(reqwest::Method::PUT, object).header(CONTENT_LENGTH, len).body(body);
            let timeout = self.net.upload_timeout(len);
            let response = send(&what, request.timeout(timeout), timeout).await?;
            expect_success(&what, response).await?;
            Ok(Stored::Uploaded)
        })
    }
}

/// `%40` -> `@` in URL userinfo (passwords often hold such characters).
fn percent_decode(text: &str) -> String {
    percent_encoding::percent_decode_str(text).decode_utf8_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn credentials_leave_the_url_and_become_basic_auth() {
        let url = "https://ci:p%40ss@cache.example/tbuild";
        let net = Net::new(Duration::from_secs(1)).unwrap();
        let backend = HttpBackend::new(net.clone(), url, None).unwrap();
        assert_eq!(backend.display_url(), "https://cache.example/tbuild");
        assert!(matches!(&backend.auth, Auth::Basic(u, p) if u == "ci" && p == "p@ss"));
        let request = backend.request(reqwest::Method::GET, &Object::Record("ab".into())).build().unwrap();
        assert_eq!(request.url().as_str(), "https://cache.example/tbuild/ac/ab");
        let bearer = HttpBackend::new(net, url, Some("t".into())).unwrap();
        assert!(matches!(&bearer.auth, Auth::Bearer(t) if t == "t"), "a token wins over the URL's userinfo");
    }
}
