//! Running one handler and turning whatever happens into a reply. A missing
//! handler, a payload that is not JSON and a panic each fail only this request.

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};

use connect_core::wire::ExecutorRequest;
use connect_core::worker::Reply;
use futures_util::FutureExt;

use crate::supervisor::panic_message;
use crate::{CancelSignal, Ctx, HandlerError, HandlerResult, reply_for, reply_for_panic};

/// The handler's context, or the reply that fails the request.
fn prepare<F>(handler: Option<F>, request: ExecutorRequest, cancel: CancelSignal) -> Result<(F, Ctx), Reply> {
    let Some(handler) = handler else {
        let msg = format!("no handler for function {:?} on this worker", request.function_slug());
        return Err(reply_for(&Err(HandlerError::non_retriable(msg).named("FunctionNotFound"))));
    };
    match Ctx::new(request, cancel) {
        Ok(ctx) => Ok((handler, ctx)),
        Err(e) => {
            let msg = format!("request payload is not valid JSON: {e}");
            Err(reply_for(&Err(HandlerError::non_retriable(msg))))
        }
    }
}

/// The reply for what the handler did, logged when it failed (the run's
/// output says why too, but an operator reads logs): WARN for an error the
/// handler returned, ERROR for a panic.
fn finish(request_id: &str, function: &str, outcome: std::thread::Result<HandlerResult>) -> Reply {
    match outcome {
        Ok(result) => {
            if let Err(e) = &result {
                tracing::warn!(request_id, function, retry = ?e.retry, "handler failed: {}: {}", e.name, e.message);
            }
            reply_for(&result)
        }
        Err(panic) => {
            tracing::error!(request_id, function, "handler panicked: {}", panic_message(&*panic));
            reply_for_panic(&*panic)
        }
    }
}

/// Run an async handler; returns the request id and its reply.
pub async fn invoke_async<F, Fut>(
    handler: Option<F>,
    request: ExecutorRequest,
    cancel: CancelSignal,
) -> (String, Reply)
where
    F: FnOnce(Ctx) -> Fut,
    Fut: Future<Output = HandlerResult>,
{
    let request_id = request.request_id().to_owned();
    let function = request.function_slug().to_owned();
    let reply = match prepare(handler, request, cancel) {
        Ok((handler, ctx)) => {
            finish(&request_id, &function, AssertUnwindSafe(handler(ctx)).catch_unwind().await)
        }
        Err(reply) => reply,
    };
    (request_id, reply)
}

/// Run a blocking handler on the current thread; returns the request id and its reply.
pub fn invoke_blocking<F>(
    handler: Option<F>,
    request: ExecutorRequest,
    cancel: CancelSignal,
) -> (String, Reply)
where
    F: FnOnce(Ctx) -> HandlerResult,
{
    let request_id = request.request_id().to_owned();
    let function = request.function_slug().to_owned();
    let reply = match prepare(handler, request, cancel) {
        Ok((handler, ctx)) => finish(&request_id, &function, catch_unwind(AssertUnwindSafe(|| handler(ctx)))),
        Err(reply) => reply,
    };
    (request_id, reply)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use connect_core::wire::{GatewayExecutorRequestData, SdkResponseStatus};

    fn request(payload: &'static str) -> ExecutorRequest {
        let data = GatewayExecutorRequestData {
            request_id: "r1".into(),
            function_slug: "app-f".into(),
            request_payload: Bytes::from_static(payload.as_bytes()),
            ..Default::default()
        };
        ExecutorRequest::try_from(data).expect("fits")
    }

    const PAYLOAD: &str =
        r#"{"event":{"name":"e","data":{"n":2}},"events":[],"steps":{},"ctx":{"attempt":0},"version":-1}"#;

    #[test]
    fn a_blocking_handler_gets_the_event_and_its_value_is_the_reply() {
        let (id, reply) = invoke_blocking(
            Some(|ctx: Ctx| Ok(serde_json::json!(ctx.event().data["n"].as_i64().unwrap_or(0) * 2))),
            request(PAYLOAD),
            CancelSignal::new(),
        );
        assert_eq!(id, "r1");
        assert_eq!(reply.status, SdkResponseStatus::Done);
        assert_eq!(&reply.body[..], b"4");
    }

    #[test]
    fn a_missing_handler_fails_the_request_without_retry() {
        let (_, reply) =
            invoke_blocking(None::<fn(Ctx) -> HandlerResult>, request(PAYLOAD), CancelSignal::new());
        assert_eq!(reply.status, SdkResponseStatus::Error);
        assert!(reply.no_retry);
        assert!(String::from_utf8_lossy(&reply.body).contains("FunctionNotFound"));
    }

    #[test]
    fn a_payload_that_is_not_json_fails_only_that_request() {
        let (_, reply) = invoke_blocking(
            Some(|_: Ctx| Ok(serde_json::json!(1))),
            request("{not json"),
            CancelSignal::new(),
        );
        assert_eq!(reply.status, SdkResponseStatus::Error);
        assert!(reply.no_retry);
    }

    #[test]
    fn a_panicking_async_handler_becomes_a_retryable_error() {
        let fut =
            invoke_async(Some(|_: Ctx| async { panic!("kaboom") }), request(PAYLOAD), CancelSignal::new());
        let (_, reply) = futures_util::FutureExt::now_or_never(fut).expect("ready at once");
        assert_eq!(reply.status, SdkResponseStatus::Error);
        assert!(!reply.no_retry);
        assert!(String::from_utf8_lossy(&reply.body).contains("kaboom"));
    }
}
