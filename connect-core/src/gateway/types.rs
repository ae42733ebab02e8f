//! What the gateway machine emits: outputs for the shell, events for the executor.

use std::time::Duration;

use bytes::Bytes;

use super::{ConnId, Phase};
use crate::payload::FunctionConfig;
use crate::wire::SdkResponse;

/// A close frame (code and reason) the gateway sends or received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CloseFrame {
    pub code: u16,
    pub reason: String,
}

impl CloseFrame {
    pub fn new(code: u16, reason: impl Into<String>) -> Self {
        CloseFrame { code, reason: reason.into() }
    }
}

/// Why a connection ended, as Inngest records it: a `WorkerDisconnectReason`
/// name (`WORKER_SHUTDOWN`, `UNEXPECTED`, `GATEWAY_DRAINING`,
/// `CONSECUTIVE_HEARTBEATS_MISSED`, `MESSAGE_TOO_LARGE`), the worker's own
/// close reason, or the syscode the gateway closed with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Disconnect {
    pub reason: String,
    /// The close frame sent (`by_gateway`) or received; `None` if the socket just dropped.
    pub close: Option<CloseFrame>,
    pub by_gateway: bool,
}

/// One app of a connected worker, with its parsed functions.
#[derive(Clone, Debug, PartialEq)]
pub struct AppInfo {
    pub name: String,
    pub version: Option<String>,
    pub functions: Vec<FunctionConfig>,
}

/// What a worker said in an accepted WORKER_CONNECT.
#[derive(Clone, Debug, PartialEq)]
pub struct WorkerInfo {
    /// The worker's own connection id (a ULID from the start call).
    pub connection_id: String,
    pub instance_id: String,
    /// The gateway group the socket joined.
    pub group: String,
    pub apps: Vec<AppInfo>,
    /// `None` or 0: unlimited.
    pub max_worker_concurrency: Option<u64>,
    pub sdk_language: String,
    pub sdk_version: String,
    pub manual_readiness_ack: bool,
}

/// What the gateway tells the executor (and the logs).
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// WORKER_CONNECT was accepted and READY sent.
    Connected {
        conn: ConnId,
        worker: Box<WorkerInfo>,
    },
    /// The connection is routable: at once, or on WORKER_READY for a manual readiness ack.
    Ready {
        conn: ConnId,
    },
    /// A heartbeat, with the gap since the previous one (the first: since READY was sent).
    Heartbeat {
        conn: ConnId,
        gap: Duration,
    },
    RequestAcked {
        conn: ConnId,
        request_id: String,
    },
    LeaseExtended {
        conn: ConnId,
        request_id: String,
        lease_id: String,
    },
    LeaseNacked {
        conn: ConnId,
        request_id: String,
    },
    /// A lease ran out (plus grace). `acked: false` means the request was never acked.
    LeaseExpired {
        request_id: String,
        acked: bool,
    },
    /// A WORKER_REPLY (`conn` is set) or an HTTP flush (`conn` is `None`).
    Replied {
        conn: Option<ConnId>,
        response: Box<SdkResponse>,
    },
    /// WORKER_PAUSE. `released`: requests forwarded here and never acked; their
    /// leases are dropped and the executor should route them elsewhere.
    Paused {
        conn: ConnId,
        released: Vec<String>,
    },
    /// GATEWAY_CLOSING was sent.
    Draining {
        conn: ConnId,
    },
    /// The connection is gone. `released` as for `Paused`.
    Disconnected {
        conn: ConnId,
        disconnect: Disconnect,
        released: Vec<String>,
    },
}

/// What the shell must do, in order.
#[derive(Clone, Debug, PartialEq)]
pub enum Output {
    Send {
        conn: ConnId,
        frame: Bytes,
    },
    /// Close the socket with this frame, or drop it without one (`None`).
    Close {
        conn: ConnId,
        frame: Option<CloseFrame>,
    },
    Event(Event),
}

/// Local misuse of [`Gateway::forward`](super::Gateway::forward).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ForwardError {
    #[error("{0} is not open")]
    UnknownConn(ConnId),
    #[error("{conn} is {phase:?}, not Ready")]
    NotRoutable { conn: ConnId, phase: Phase },
    #[error("request {0} already holds a live lease")]
    AlreadyLeased(String),
    #[error("request frame is too large: {0}")]
    TooLarge(String),
}
