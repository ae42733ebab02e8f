//! Everything that crosses the machine's boundary: ids, outputs, events, errors.

use std::fmt;
use std::time::Duration;

use bytes::Bytes;

use crate::wire::{ExecutorRequest, RequestId, SdkResponseStatus};

/// A connection generation. Every start attempt gets a new one; never reused,
/// so anything that names an old generation is recognisably stale.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

/// One HTTP call (start or flush). The adapter answers each with exactly one
/// [`Worker::handle_http_response`](super::Worker::handle_http_response).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HttpId(pub u64);

/// An HTTP call to make. Always a POST. `Debug` hides the `Authorization`
/// value (the hashed signing key authenticates as the app).
#[derive(Clone, PartialEq, Eq)]
pub struct HttpRequest {
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
    /// The adapter should give up after this long and answer `Err`. The machine
    /// also stops waiting at this deadline, so a late answer is ignored.
    pub timeout: Duration,
}

impl fmt::Debug for HttpRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let headers: Vec<(&str, &str)> = self
            .headers
            .iter()
            .map(|(k, v)| {
                let secret = k.eq_ignore_ascii_case("authorization");
                (k.as_str(), if secret { "<redacted>" } else { v.as_str() })
            })
            .collect();
        f.debug_struct("HttpRequest")
            .field("url", &self.url)
            .field("headers", &headers)
            .field("body", &self.body)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// The answer to an [`HttpRequest`] (any status; transport failures are `Err`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpResponse {
    pub status: u16,
    pub body: Bytes,
}

/// What the adapter must do next, in order.
#[derive(Clone, Debug, PartialEq)]
pub enum Output {
    /// Make this HTTP call and answer with `handle_http_response(id, ..)`.
    Http { id: HttpId, request: HttpRequest },
    /// Open a WebSocket offering `subprotocol`; answer with `handle_connected`
    /// or `handle_connect_failed` (within `timeout`).
    Connect { conn: ConnId, url: String, subprotocol: &'static str, timeout: Duration },
    /// Send one binary message on `conn`.
    Send { conn: ConnId, frame: Bytes },
    /// Close `conn` with this code and reason. The machine never writes to it
    /// again and ignores whatever still arrives from it. It may name a
    /// connection whose dial has not finished yet: abandon that dial.
    Close { conn: ConnId, code: u16, reason: String },
    /// Tell the app.
    Event(Event),
}

/// What the app hears about. Request ids are [`RequestId`]s: they share the
/// request's memory, so reporting one allocates nothing.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    StateChanged(ConnectionState),
    /// A connection became ACTIVE (each time). Adapters reset their crash counter on it.
    Ready {
        conn: ConnId,
        connection_id: String,
    },
    /// Run this function. Answer with [`Worker::reply`](super::Worker::reply).
    /// The payload shares the frame's memory; the request's strings share
    /// one buffer with the machine's own record of the request.
    Invocation(ExecutorRequest),
    /// The request's lease is gone (a NACK, or it expired locally): another
    /// worker may run it. Cancel the handler; a reply is still accepted and
    /// sent.
    LeaseLost {
        request_id: RequestId,
    },
    /// The machine gave up on a running request because it is stopping (the
    /// shutdown deadline passed, or a fatal error): cancel the handler. Its
    /// reply can no longer be sent; the gateway retries the run when the
    /// lease expires.
    Abandoned {
        request_id: RequestId,
    },
    /// The reply is durably stored by Inngest (WORKER_REPLY_ACK or a successful flush).
    ReplyAcked {
        request_id: RequestId,
    },
    /// The app's reply was too large for a gateway frame; a small
    /// non-retriable error reply naming the size (error name
    /// [`OUTPUT_TOO_LARGE`](super::OUTPUT_TOO_LARGE)) goes instead, and
    /// settles like any reply ([`Event::ReplyAcked`] or [`Event::ReplyFailed`]).
    ReplyReplaced {
        request_id: RequestId,
        error: String,
    },
    /// The reply can never be delivered (rejected by the flush endpoint,
    /// shutdown deadline, too large even as an error). Reported once, never
    /// re-queued.
    ReplyFailed {
        request_id: RequestId,
        error: String,
    },
    /// An error that cannot heal; the machine closes after it.
    Fatal(FatalError),
    /// The machine is done. Always the last event.
    Closed,
}

/// The connection states the Inngest SDKs expose.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConnectionState {
    /// Before the first connection became ACTIVE.
    Connecting,
    /// A connection is ready and routable.
    Active,
    /// Shutting down: WORKER_PAUSE sent (or to be sent), in-flight requests still running.
    Paused,
    /// A connection was lost (or is being drained) and a new one is being built.
    Reconnecting,
    /// Shutting down, nothing in flight: replies being acknowledged or flushed, sockets closing.
    Closing,
    /// Done; see [`Event::Closed`].
    Closed,
}

/// Why [`Worker::poll_timeout`](super::Worker::poll_timeout) wants to be woken: one log line explains a spin.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Timer {
    /// Outputs are queued: drain `poll_output` (the deadline is the last `now`).
    Output,
    /// The HTTP start call's deadline.
    StartCall,
    /// The WebSocket upgrade's deadline.
    WsConnect,
    /// Waiting for GATEWAY_HELLO.
    Hello,
    /// Waiting for GATEWAY_CONNECTION_READY.
    Ready,
    /// The next WORKER_HEARTBEAT (and the check for unanswered ones).
    Heartbeat,
    /// A lease extension is due (or a lease expires locally).
    LeaseExtension,
    /// A reply's WORKER_REPLY_ACK deadline.
    ReplyAck,
    /// An HTTP flush's deadline or its retry backoff.
    Flush,
    /// The wait before the next connection attempt.
    Backoff,
    /// The bound on keeping a draining connection while its replacement connects.
    DrainReplacement,
    /// The bound on a graceful shutdown.
    Shutdown,
}

/// A reply from the app to one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    pub status: SdkResponseStatus,
    /// JSON: the return value (DONE), opcodes (NOT_COMPLETED) or an error (ERROR).
    pub body: Bytes,
    /// Do not retry this attempt's failure.
    pub no_retry: bool,
    /// Seconds or a date, as Inngest reads it.
    pub retry_after: Option<String>,
    /// `request_version` echoed to the executor (JS sends 2).
    pub request_version: u32,
}

impl Reply {
    /// The function finished; `body` is the JSON of its return value.
    pub fn done(body: impl Into<Bytes>) -> Self {
        Reply::with_status(SdkResponseStatus::Done, body)
    }
    /// The function yielded opcodes (a JSON array).
    pub fn not_completed(body: impl Into<Bytes>) -> Self {
        Reply::with_status(SdkResponseStatus::NotCompleted, body)
    }
    /// The attempt failed; `body` is ideally `{"name","message","stack"}`.
    pub fn error(body: impl Into<Bytes>, no_retry: bool) -> Self {
        Reply { no_retry, ..Reply::with_status(SdkResponseStatus::Error, body) }
    }
    pub fn with_retry_after(mut self, retry_after: impl Into<String>) -> Self {
        self.retry_after = Some(retry_after.into());
        self
    }
    fn with_status(status: SdkResponseStatus, body: impl Into<Bytes>) -> Self {
        Reply { status, body: body.into(), no_retry: false, retry_after: None, request_version: 2 }
    }
}

/// Errors that reconnecting cannot fix. The rule is in [`super::machine`]'s docs.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FatalError {
    /// The start call answered 401/403 with every configured key in a row.
    #[error("the Connect API rejected the signing key (HTTP {status}){}", if *.tried_fallback { " and the fallback key" } else { "" })]
    Unauthorized { status: u16, tried_fallback: bool },
    /// The start call answered 401/403 and no signing key is configured (a
    /// worker in dev mode against a gateway that wants one).
    #[error(
        "the Connect API requires a signing key (HTTP {status}) and none is set: set INNGEST_SIGNING_KEY or .signing_key(...)"
    )]
    KeyRequired { status: u16 },
    /// The gateway could not sync the app (SYNC_FAILED): the function config is rejected.
    #[error("the gateway rejected the app sync: {code}: {message}")]
    SyncRejected { code: String, message: String },
    /// The gateway closed with a reason that names a config problem.
    #[error("the gateway refused the worker: close {code} {reason}")]
    Rejected { code: u16, reason: String },
}

/// Local misuse of a command. Never caused by the remote side.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// This request id was never delivered to this machine (or its durable state).
    #[error("no request with id {0:?} was ever delivered")]
    UnknownRequest(String),
    /// The machine is closed.
    #[error("the worker is closed")]
    Closed,
}

impl fmt::Display for ConnectionState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ConnectionState::Connecting => "CONNECTING",
            ConnectionState::Active => "ACTIVE",
            ConnectionState::Paused => "PAUSED",
            ConnectionState::Reconnecting => "RECONNECTING",
            ConnectionState::Closing => "CLOSING",
            ConnectionState::Closed => "CLOSED",
        })
    }
}
