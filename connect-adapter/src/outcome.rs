//! How a handler's result becomes the `SDKResponse` the executor reads.
//!
//! `Ok(value)` is DONE with the value as JSON. An error is ERROR with a JSON
//! body `{"name","message"}` (what Inngest's executor extracts), `no_retry`
//! when the handler said so, and `retry_after` in whole seconds (rounded up).

use std::time::Duration;

use bytes::Bytes;
use connect_core::payload::ErrorBody;
use connect_core::worker::Reply;
use serde_json::Value;

/// What a handler returns.
pub type HandlerResult = Result<Value, HandlerError>;

/// Whether the executor should try again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retry {
    /// Retry while the function has attempts left.
    Default,
    /// Fail the run now, whatever attempts are left.
    Never,
    /// Retry, but not before this much time has passed.
    After(Duration),
}

/// A failed attempt. Any `std::error::Error` converts into one with `?`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HandlerError {
    pub name: String,
    pub message: String,
    pub retry: Retry,
}

impl HandlerError {
    /// A retryable error.
    pub fn new(message: impl Into<String>) -> Self {
        HandlerError { name: "Error".into(), message: message.into(), retry: Retry::Default }
    }

    /// An error that fails the run at once (Inngest's `NonRetriableError`).
    pub fn non_retriable(message: impl Into<String>) -> Self {
        HandlerError { name: "NonRetriableError".into(), message: message.into(), retry: Retry::Never }
    }

    /// Retry no sooner than `after` (Inngest's `RetryAfterError`).
    pub fn retry_after(message: impl Into<String>, after: Duration) -> Self {
        HandlerError { name: "RetryAfterError".into(), message: message.into(), retry: Retry::After(after) }
    }

    /// Set the error's name as it appears in the run's output.
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }
}

impl std::fmt::Display for HandlerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.name, self.message)
    }
}

impl<E: std::error::Error + Send + Sync + 'static> From<E> for HandlerError {
    fn from(e: E) -> Self {
        HandlerError::new(e.to_string())
    }
}

/// The reply for a handler's result.
pub fn reply_for(result: &HandlerResult) -> Reply {
    match result {
        Ok(value) => Reply::done(Bytes::from(serde_json::to_vec(value).unwrap_or_else(|_| b"null".to_vec()))),
        Err(e) => {
            let body = ErrorBody { name: e.name.clone(), message: e.message.clone(), stack: None };
            let body = Bytes::from(serde_json::to_vec(&body).unwrap_or_default());
            let mut reply = Reply::error(body, matches!(e.retry, Retry::Never));
            if let Retry::After(d) = e.retry {
                // Whole seconds on the wire, rounded up: "no sooner than" must hold.
                let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
                reply.retry_after = Some(secs.max(1).to_string());
            }
            reply
        }
    }
}

/// The reply for a handler that panicked: a retryable error naming the panic.
pub fn reply_for_panic(panic: &(dyn std::any::Any + Send)) -> Reply {
    reply_for(&Err(HandlerError::new(crate::supervisor::panic_message(panic)).named("HandlerPanic")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use connect_core::wire::SdkResponseStatus;

    #[test]
    fn ok_is_done_with_json() {
        let r = reply_for(&Ok(serde_json::json!({"ok": true})));
        assert_eq!(r.status, SdkResponseStatus::Done);
        assert_eq!(&r.body[..], br#"{"ok":true}"#);
        assert!(!r.no_retry);
    }

    #[test]
    fn errors_carry_name_message_and_retry_rules() {
        let r = reply_for(&Err(HandlerError::non_retriable("bad input")));
        assert_eq!(r.status, SdkResponseStatus::Error);
        assert!(r.no_retry);
        let body: Value = serde_json::from_slice(&r.body).expect("json");
        assert_eq!(body["name"], "NonRetriableError");
        assert_eq!(body["message"], "bad input");
        let r = reply_for(&Err(HandlerError::retry_after("slow down", Duration::from_millis(2500))));
        assert_eq!(r.retry_after.as_deref(), Some("3"), "rounded up, never sooner than asked");
        assert!(!r.no_retry);
        let whole = |d| reply_for(&Err(HandlerError::retry_after("x", d))).retry_after;
        assert_eq!(whole(Duration::from_secs(2)).as_deref(), Some("2"));
        assert_eq!(whole(Duration::ZERO).as_deref(), Some("1"), "at least a second");
    }

    #[test]
    fn any_std_error_converts_with_question_mark() {
        fn parse(s: &str) -> Result<u32, HandlerError> {
            Ok(s.parse::<u32>()?)
        }
        let e = parse("x").expect_err("not a number");
        assert_eq!(e.retry, Retry::Default);
        assert!(e.message.contains("invalid digit"));
    }

    #[test]
    fn a_panic_becomes_a_retryable_error() {
        let r = reply_for_panic(&"boom");
        assert_eq!(r.status, SdkResponseStatus::Error);
        assert!(!r.no_retry);
        assert!(String::from_utf8_lossy(&r.body).contains("boom"));
    }
}
