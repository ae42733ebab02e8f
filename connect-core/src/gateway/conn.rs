//! One worker socket as the gateway sees it.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use super::timers::TimerHandle;

/// A socket accepted by the gateway. Ids are never reused, so an output or
/// an input naming a closed connection is recognisably stale.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct ConnId(pub u64);

impl std::fmt::Display for ConnId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "conn#{}", self.0)
    }
}

/// Where a connection is in its life. See the transition table in `mod.rs`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// HELLO sent; only WORKER_CONNECT is acceptable, within the hello timeout.
    AwaitingConnect,
    /// READY sent to a worker that asked for a manual readiness ack; not routable
    /// and its heartbeats are not answered until WORKER_READY.
    AwaitingReady,
    /// Routable: executor requests may be forwarded.
    Ready,
    /// The worker sent WORKER_PAUSE: no new requests, everything else goes on.
    Paused,
    /// GATEWAY_CLOSING sent; closed 1001 at the drain deadline unless the worker closes first.
    Draining,
}

impl Phase {
    /// Inngest answers heartbeats only in its Ready and Draining phases (pause is a kind of draining there).
    pub fn answers_heartbeats(self) -> bool {
        matches!(self, Phase::Ready | Phase::Paused | Phase::Draining)
    }
}

#[derive(Debug)]
pub struct Conn {
    pub id: ConnId,
    pub phase: Phase,
    /// The gateway group this socket joined (drain starts a fresh one).
    pub group: u32,
    /// Set by WORKER_CONNECT.
    pub instance_id: String,
    /// The hello deadline, then the heartbeat check.
    pub timer: Option<TimerHandle>,
    pub drain_timer: Option<TimerHandle>,
    /// When READY was sent, then each heartbeat: the base of the next gap.
    pub last_heartbeat: Instant,
    /// Requests forwarded on this socket and not acked yet: Inngest matches an ack
    /// only against the socket that delivered the request.
    pub pending_acks: HashSet<String>,
}

impl Conn {
    pub fn new(id: ConnId, group: u32, now: Instant) -> Self {
        Conn {
            id,
            phase: Phase::AwaitingConnect,
            group,
            instance_id: String::new(),
            timer: None,
            drain_timer: None,
            last_heartbeat: now,
            pending_acks: HashSet::new(),
        }
    }

    /// Record a heartbeat, returning the gap since the previous one (or since READY).
    pub fn heartbeat(&mut self, now: Instant) -> Duration {
        let gap = now.saturating_duration_since(self.last_heartbeat);
        self.last_heartbeat = now;
        gap
    }
}
