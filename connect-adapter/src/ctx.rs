//! What a handler receives.

use bytes::Bytes;
use connect_core::payload::{Event, RequestPayload};
use connect_core::wire::ExecutorRequest;

use crate::CancelSignal;

/// One invocation of a function: the triggering event, the attempt, the run,
/// and a cancellation signal.
///
/// The JSON payload is parsed on the handler's side (never on the connection
/// thread), and the raw bytes are shared with the received frame, not copied.
#[derive(Debug)]
pub struct Ctx {
    request: ExecutorRequest,
    payload: RequestPayload,
    cancel: CancelSignal,
}

impl Ctx {
    /// Parse the request payload. An error here is the executor's fault and
    /// fails only this request.
    pub fn new(request: ExecutorRequest, cancel: CancelSignal) -> Result<Ctx, serde_json::Error> {
        let payload = serde_json::from_slice(request.request_payload())?;
        Ok(Ctx { request, payload, cancel })
    }

    /// The first (triggering) event.
    pub fn event(&self) -> &Event {
        &self.payload.event
    }

    /// Every event of the run (more than one for batched functions).
    pub fn events(&self) -> &[Event] {
        &self.payload.events
    }

    /// Zero-based attempt number.
    pub fn attempt(&self) -> u32 {
        self.payload.ctx.attempt
    }

    /// Total attempts allowed, when the executor says.
    pub fn max_attempts(&self) -> Option<u32> {
        self.payload.ctx.max_attempts
    }

    pub fn run_id(&self) -> &str {
        self.request.run_id()
    }

    pub fn request_id(&self) -> &str {
        self.request.request_id()
    }

    /// The function slug (`<app id>-<function id>`).
    pub fn function_slug(&self) -> &str {
        self.request.function_slug()
    }

    pub fn app_name(&self) -> &str {
        self.request.app_name()
    }

    /// Every field of the request as the gateway sent it (ids, step id,
    /// trace contexts, lease and job ids).
    pub fn request(&self) -> &ExecutorRequest {
        &self.request
    }

    /// The whole parsed payload (steps, ctx, version).
    pub fn payload(&self) -> &RequestPayload {
        &self.payload
    }

    /// The payload exactly as received; shares the frame's memory.
    pub fn raw_payload(&self) -> &Bytes {
        self.request.request_payload()
    }

    /// Fired when the lease is lost or the shutdown deadline passes.
    pub fn cancel_signal(&self) -> &CancelSignal {
        &self.cancel
    }

    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }
}
