//! The failure policy: a remote cache is an optimisation, so a remote that is down, slow or
//! confused never fails a build. Each operation is retried with exponential backoff (and
//! jitter, honouring `Retry-After`) while its errors are transient; an operation that still
//! fails prints one warning for the whole run and counts towards a circuit breaker that
//! stops using the remote after [`TRIP_AFTER`] failed operations in a row. With
//! `--remote-required` the first failed operation is an error instead.

use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use super::RemoteError;
use crate::cache::Warn;

/// Attempts per operation while its errors are retryable.
const MAX_ATTEMPTS: u32 = 4;
const BASE_DELAY: Duration = Duration::from_millis(250);
const MAX_DELAY: Duration = Duration::from_secs(10);
/// Failed operations in a row after which the remote is skipped for the rest of the run.
pub const TRIP_AFTER: u32 = 3;

pub struct Policy {
    remote: String,
    required: bool,
    warn: Warn,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    failures_in_a_row: u32,
    failures: u32,
    disabled: bool,
    warned: bool,
}

impl Policy {
    pub fn new(remote: String, required: bool, warn: Warn) -> Policy {
        Policy { remote, required, warn, state: Mutex::new(State::default()) }
    }

    /// Whether the breaker has tripped.
    /// A warning about this remote that is not a failure (the run goes on as usual).
    pub fn warn(&self, message: &str) {
        (self.warn)(&format!("remote cache {}: {message}", self.remote));
    }

    pub fn disabled(&self) -> bool {
        self.state.lock().expect("policy lock").disabled
    }

    /// Failed operations in this run.
    pub fn failures(&self) -> u32 {
        self.state.lock().expect("policy lock").failures
    }

    /// Runs `op` under the policy: `Ok(Some(value))` on success, `Ok(None)` when the remote
    /// is (or has just been) given up on, `Err` only with `--remote-required`.
    pub async fn run<T, F, Fut>(&self, mut op: F) -> Result<Option<T>, RemoteError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, RemoteError>>,
    {
        if self.disabled() {
            return Ok(None);
        }
        let mut attempt = 0;
        loop {
            match op().await {
                Ok(value) => {
                    self.state.lock().expect("policy lock").failures_in_a_row = 0;
                    return Ok(Some(value));
                }
                Err(err) if err.retryable() && attempt + 1 < MAX_ATTEMPTS && !self.disabled() => {
                    tracing::debug!("remote {}: {err}; retrying", self.remote);
                    tokio::time::sleep(backoff(attempt, err.retry_after())).await;
                    attempt += 1;
                }
                Err(err) => return self.failed(err),
            }
        }
    }

    fn failed<T>(&self, err: RemoteError) -> Result<Option<T>, RemoteError> {
        if self.required {
            return Err(err);
        }
        let mut state = self.state.lock().expect("policy lock");
        state.failures += 1;
        state.failures_in_a_row += 1;
        if state.failures_in_a_row >= TRIP_AFTER {
            state.disabled = true;
        }
        if !state.warned {
            state.warned = true;
            (self.warn)(&format!(
                "remote cache {} is not usable ({err}); continuing with the local cache \
(the remote is skipped for the rest of the run after {TRIP_AFTER} failures in a row)",
                self.remote
            ));
        } else {
            tracing::info!("remote {}: {err}", self.remote);
        }
        Ok(None)
    }
}

/// 250 ms, 500 ms, 1 s, ... with jitter; a server's `Retry-After` wins, within [`MAX_DELAY`]
/// (see [`crate::http::Backoff`]).
fn backoff(attempt: u32, retry_after: Option<Duration>) -> Duration {
    crate::http::Backoff { base: BASE_DELAY, max: MAX_DELAY }.delay(attempt, retry_after)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(required: bool) -> Policy {
        Policy::new("test".into(), required, std::sync::Arc::new(|_: &str| {}))
    }

    fn status(code: u16) -> RemoteError {
        RemoteError::Status { what: "GET x".into(), status: code, body: String::new(), retry_after: None }
    }

    fn block_on<F: Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(f)
    }

    #[test]
    fn transient_errors_are_retried_then_succeed() {
        let policy = policy(false);
        let mut calls = 0;
        let result = block_on(policy.run(|| {
            calls += 1;
            let outcome = if calls < 3 { Err(status(503)) } else { Ok(calls) };
            async move { outcome }
        }));
        assert_eq!(result.unwrap(), Some(3));
        assert_eq!(policy.failures(), 0);
    }

    #[test]
    fn permanent_errors_are_not_retried_and_trip_the_breaker() {
        let policy = policy(false);
        let mut calls = 0;
        for _ in 0..TRIP_AFTER {
            let result: Result<Option<()>, _> = block_on(policy.run(|| {
                calls += 1;
                async { Err(status(403)) }
            }));
            assert!(result.unwrap().is_none());
        }
        assert_eq!(calls, TRIP_AFTER, "a 403 is not retried");
        assert!(policy.disabled());
        let result: Result<Option<()>, _> = block_on(policy.run(|| {
            calls += 1;
            async { Ok(()) }
        }));
        assert!(result.unwrap().is_none(), "a tripped breaker skips the remote");
        assert_eq!(calls, TRIP_AFTER);
    }

    #[test]
    fn required_turns_the_first_failure_into_an_error() {
        let policy = policy(true);
        let result: Result<Option<()>, _> = block_on(
            policy.run(|| async { Err(RemoteError::Timeout { what: "GET x".into(), after: Duration::from_secs(1) }) }),
        );
        assert!(matches!(result, Err(RemoteError::Timeout { .. })));
    }

    #[test]
    fn backoff_grows_and_respects_retry_after() {
        assert!(backoff(0, None) >= BASE_DELAY && backoff(0, None) <= BASE_DELAY * 3 / 2);
        assert!(backoff(2, None) >= BASE_DELAY * 4);
        assert_eq!(backoff(0, Some(Duration::from_secs(2))), Duration::from_secs(2));
        assert_eq!(backoff(0, Some(Duration::from_secs(600))), MAX_DELAY);
    }
}
