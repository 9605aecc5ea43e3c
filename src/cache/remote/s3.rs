//! Any S3-compatible object store (AWS, MinIO, R2, Ceph, moto): objects `<prefix>/ac/<key>`
//! and `<prefix>/cas/<sha256>` in one bucket, reached with SigV4-presigned URLs (rusty-s3)
//! sent by the shared client. Credentials come from the standard AWS environment variables;
//! a custom `--s3-endpoint` is addressed path-style (`<endpoint>/<bucket>/<key>`), which every
//! S3-compatible server accepts, AWS itself virtual-host style.

use std::path::Path;
use std::time::Duration;

use reqwest::header::CONTENT_LENGTH;
use reqwest::{StatusCode, Url};
use rusty_s3::{Bucket, Credentials, S3Action, UrlStyle};

use super::transfer::{Net, body, download, expect_success, send, status_error};
use super::{BoxFuture, Object, Payload, RemoteBackend, RemoteResult, Stored};

/// How long a presigned URL stays valid: longer than any single transfer, short enough
/// that a leaked log line is useless soon.
const PRESIGN: Duration = Duration::from_secs(3600);

pub struct S3Backend {
    net: Net,
    bucket: Bucket,
    credentials: Credentials,
    /// `""` or `some/prefix/`.
    prefix: String,
}

impl S3Backend {
    /// `rest` is what follows `s3://`: `bucket` or `bucket/prefix`; `env` reads the AWS
    /// environment variables.
    pub fn new(
        net: Net,
        rest: &str,
        endpoint: Option<&str>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<S3Backend, String> {
        let (name, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if name.is_empty() {
            return Err("--remote s3://BUCKET/PREFIX needs a bucket name".into());
        }
        let prefix = prefix.trim_matches('/');
        let prefix = if prefix.is_empty() { String::new() } else { format!("{prefix}/") };
        let var = |name: &str| env(name).filter(|v| !v.is_empty());
        let region = var("AWS_REGION").or_else(|| var("AWS_DEFAULT_REGION")).unwrap_or_else(|| "us-east-1".into());
        let (endpoint, style) = match endpoint.filter(|e| !e.is_empty()) {
            Some(endpoint) => (endpoint.to_string(), UrlStyle::Path),
            None => (format!("https://s3.{region}.amazonaws.com"), UrlStyle::VirtualHost),
        };
        let endpoint_url =
            Url::parse(&endpoint).map_err(|e| format!("--s3-endpoint {endpoint:?} is not a valid URL: {e}"))?;
        let bucket = Bucket::new(endpoint_url, style, name.to_string(), region)
            .map_err(|e| format!("cannot address bucket {name:?} at {endpoint}: {e}"))?;
        let (Some(key), Some(secret)) = (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY")) else {
            return Err(format!(
                "--remote s3://{rest} needs credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN for temporary ones)"
            ));
        };
        let credentials = match var("AWS_SESSION_TOKEN") {
            Some(token) => Credentials::new_with_token(key, secret, token),
            None => Credentials::new(key, secret),
        };
        Ok(S3Backend { net, bucket, credentials, prefix })
    }

    fn object_key(&self, object: &Object) -> String {
        format!("{}{}", self.prefix, object.path())
    }
}

impl RemoteBackend for S3Backend {
    fn get<'a>(&'a self, object: &'a Object, dest: &'a Path, limit: u64) -> BoxFuture<'a, RemoteResult<bool>> {
        Box::pin(async move {
            let what = format!("GET {}", object.path());
            let key = self.object_key(object);
            let url = self.bucket.get_object(Some(&self.credentials), &key).sign(PRESIGN);
            let response = send(&what, self.net.client.get(url), self.net.timeout).await?;
            if response.status() == StatusCode::FORBIDDEN {
                return match status_error(&what, response).await {
                    err if access_denied(&err) => Ok(false),
                    err => Err(err),
                };
            }
            download(&what, response, dest, limit, self.net.timeout).await
        })
    }

    fn exists<'a>(&'a self, object: &'a Object) -> BoxFuture<'a, RemoteResult<bool>> {
        Box::pin(async move {
            let what = format!("HEAD {}", object.path());
            let key = self.object_key(object);
            let url = self.bucket.head_object(Some(&self.credentials), &key).sign(PRESIGN);
            let response = send(&what, self.net.client.head(url).timeout(self.net.timeout), self.net.timeout).await?;
            match response.status() {
                status if status.is_success() => Ok(true),
                // A HEAD answer has no body to tell AccessDenied from bad credentials; the
                // PUT that follows will say.
                StatusCode::NOT_FOUND | StatusCode::FORBIDDEN => Ok(false),
                _ => Err(status_error(&what, response).await),
            }
        })
    }

    fn put<'a>(&'a self, object: &'a Object, payload: &'a Payload) -> BoxFuture<'a, RemoteResult<Stored>> {
        Box::pin(async move {
            let what = format!("PUT {}", object.path());
            let key = self.object_key(object);
            let url = self.bucket.put_object(Some(&self.credentials), &key).sign(PRESIGN);
            let (body, len) = body(&what, payload).await?;
            let timeout = self.net.upload_timeout(len);
            let request = self.net.uploads.put(url).header(CONTENT_LENGTH, len).body(body).timeout(timeout);
            let response = send(&what, request, timeout).await?;
            expect_success(&what, response).await?;
            Ok(Stored::Uploaded)
        })
    }
}

/// S3 answers a missing object with 403 AccessDenied instead of 404 when the credentials may
/// not list the bucket: that is a miss. Bad credentials have codes of their own
/// (InvalidAccessKeyId, SignatureDoesNotMatch) and stay errors.
fn access_denied(err: &super::RemoteError) -> bool {
    matches!(err, super::RemoteError::Status { status: 403, body, .. } if body.contains("<Code>AccessDenied</Code>"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::remote::RemoteError;

    fn forbidden(code: &str) -> RemoteError {
        let body = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?> <Error><Code>{code}</Code><Message>x</Message></Error>"
        );
        RemoteError::Status { what: "GET ac/k".into(), status: 403, body, retry_after: None }
    }

    #[test]
    fn access_denied_is_a_miss_but_bad_credentials_are_not() {
        assert!(access_denied(&forbidden("AccessDenied")));
        assert!(!access_denied(&forbidden("SignatureDoesNotMatch")));
        assert!(!access_denied(&forbidden("InvalidAccessKeyId")));
    }

    #[test]
    fn custom_endpoints_are_path_style_with_the_prefix() {
        let net = Net::new(Duration::from_secs(1)).unwrap();
        let endpoint = Some("http://127.0.0.1:9000");
        let missing = S3Backend::new(net.clone(), "bucket", endpoint, |_| None).err().unwrap();
        assert!(missing.contains("AWS_ACCESS_KEY_ID"), "{missing}");
        let env = |name: &str| name.starts_with("AWS_").then(|| "x".to_string());
        let backend = S3Backend::new(net, "bucket/ci/tasker/", endpoint, env).unwrap();
        assert_eq!(backend.object_key(&Object::Record("k".into())), "ci/tasker/ac/k");
        assert_eq!(backend.bucket.object_url("x").as_str(), "http://127.0.0.1:9000/bucket/x");
    }
}
