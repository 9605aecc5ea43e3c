//! The one HTTP layer: the remote cache's backends (`cache::remote::transfer`), the registry
//! lookups (`tools::upstream::registry`) and the GitHub release client (`tools::release`)
//! all set up their clients, classify their failures and pace their retries here. Each keeps
//! its own error enum (and so its exit code); what they share is how a failure is read:
//!
//! - a transport failure is a timeout or a connection problem, named by its innermost cause
//!   ([`transport`]); the whole chain is available as [`error_chain`];
//! - a status is worth retrying when the server says "later" (429) or failed (5xx)
//!   ([`retryable_status`]), after its `Retry-After` when it sends one ([`retry_after`]);
//! - retries back off exponentially with jitter, so runners that failed together do not
//!   retry together, and a server's `Retry-After` wins within a cap ([`Backoff`]).

use std::time::Duration;

use reqwest::header::{HeaderMap, RETRY_AFTER};

/// How long a request may take: `connect` bounds a dead host; `read` a server that goes
/// silent (between bytes, not in total, so a large body may take its time); `total` the
/// whole request, headers and body.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub connect: Duration,
    pub read: Option<Duration>,
    pub total: Option<Duration>,
}

/// A client that names itself `user_agent`, with `timeouts`.
pub fn client(user_agent: &str, timeouts: Timeouts) -> reqwest::Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder().user_agent(user_agent).connect_timeout(timeouts.connect);
    if let Some(read) = timeouts.read {
        builder = builder.read_timeout(read);
    }
    if let Some(total) = timeouts.total {
        builder = builder.timeout(total);
    }
    builder.build()
}

/// What a transport failure (no status) was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    /// A timeout of the client's.
    Timeout,
    /// Anything else, by its innermost cause ("connection refused"): reqwest's own message
    /// is "error sending request".
    Failed(String),
}

pub fn transport(err: &reqwest::Error) -> Transport {
    if err.is_timeout() {
        return Transport::Timeout;
    }
    let mut message = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        message = cause.to_string();
        source = cause.source();
    }
    Transport::Failed(message)
}

/// An error and its causes on one line ("error sending request: connection refused").
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Worth another attempt: the server said "later" (429) or failed (5xx).
pub fn retryable_status(status: u16) -> bool {
    status == 429 || status >= 500
}

/// A response's `Retry-After` in seconds (the HTTP-date form is not used by the servers
/// tbuild talks to, and is ignored).
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?;
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// Exponential backoff: `base`, twice that, ... up to `max`, each with up to 50% jitter; a
/// server's `Retry-After` replaces it, within `max`.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub base: Duration,
    pub max: Duration,
}

impl Backoff {
    /// The wait before attempt `attempt + 1` (`attempt` counts from 0).
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(wait) = retry_after {
            return wait.min(self.max);
        }
        let base = self.base.saturating_mul(1 << attempt.min(6)).min(self.max);
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
        base + base.mul_f64(f64::from(nanos % 1000) / 2000.0)
    }
}

/// Runs `op` until it succeeds, fails for good (`retryable` says no) or has had `attempts`
/// tries, sleeping [`Backoff::delay`] between them (`wait` reads an error's `Retry-After`).
pub async fn retry<T, E, F, Fut>(
    attempts: u32,
    backoff: Backoff,
    mut op: F,
    retryable: impl Fn(&E) -> bool,
    wait: impl Fn(&E) -> Option<Duration>,
) -> Result<T, E>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
    E: std::fmt::Display,
{
    let mut attempt = 0;
    loop {
        match op().await {
            Err(err) if retryable(&err) && attempt + 1 < attempts => {
                let delay = backoff.delay(attempt, wait(&err));
                tracing::info!("{err}; retrying in {delay:?}");
                tokio::time::sleep(delay).await;
                attempt += 1;
            }
            result => return result,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_retry_after_wins_within_the_cap() {
        let backoff = Backoff { base: Duration::from_millis(100), max: Duration::from_secs(1) };
        for attempt in 0..3 {
            let base = Duration::from_millis(100 << attempt);
            let delay = backoff.delay(attempt, None);
            assert!(delay >= base && delay <= base.mul_f64(1.5), "attempt {attempt}: {delay:?}");
        }
        assert!(backoff.delay(20, None) <= Duration::from_millis(1500), "capped (plus jitter)");
        assert_eq!(backoff.delay(0, Some(Duration::from_millis(700))), Duration::from_millis(700));
        assert_eq!(backoff.delay(0, Some(Duration::from_secs(30))), Duration::from_secs(1));
    }

    #[test]
    fn only_later_and_server_failures_are_retryable() {
        assert!(retryable_status(429) && retryable_status(500) && retryable_status(503));
        assert!(!retryable_status(404) && !retryable_status(403) && !retryable_status(400));
    }

    #[test]
    fn retry_after_reads_seconds() {
        let mut headers = HeaderMap::new();
        assert_eq!(retry_after(&headers), None);
        headers.insert(RETRY_AFTER, " 3 ".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(3)));
        headers.insert(RETRY_AFTER, "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap());
        assert_eq!(retry_after(&headers), None);
    }

    #[test]
    fn retry_stops_at_success_at_a_permanent_error_and_after_the_attempts() {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
        let fast = Backoff { base: Duration::from_millis(1), max: Duration::from_millis(5) };
        let run = |fail_times: u32, permanent: bool| {
            let mut calls = 0;
            let result: Result<u32, String> = runtime.block_on(retry(
                3,
                fast,
                || {
                    calls += 1;
                    let n = calls;
                    async move { if n <= fail_times { Err(format!("failure {n}")) } else { Ok(n) } }
                },
                |_| !permanent,
                |_| None,
            ));
            (result, calls)
        };
        assert_eq!(run(2, false), (Ok(3), 3), "two transient failures, then success");
        assert_eq!(run(5, false), (Err("failure 3".into()), 3), "gives up after the attempts");
        assert_eq!(run(5, true), (Err("failure 1".into()), 1), "a permanent error is not retried");
    }
}
