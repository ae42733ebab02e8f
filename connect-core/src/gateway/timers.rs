//! The gateway's deadlines, ordered, each with the reason it exists.
//!
//! Every entity that has a deadline (a connection's hello deadline, its
//! heartbeat check, its drain deadline, a request's lease) keeps the
//! [`TimerHandle`] it was given, so that moving or cancelling the deadline is
//! an O(log n) remove-and-insert. `poll_timeout` is the first entry.

use std::collections::BTreeMap;
use std::time::Instant;

use super::ConnId;

/// Why the gateway wants to be woken. Shown by `poll_timeout`, so that a
/// spinning loop can be diagnosed from one log line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Timer {
    /// Outputs are queued: drain `poll_output` before sleeping.
    PendingOutput,
    /// A socket that has not sent WORKER_CONNECT by now is closed 1008 `connect_worker_hello_timeout`.
    Hello(ConnId),
    /// The once-per-interval check that closes a connection after too many missed heartbeats.
    HeartbeatCheck(ConnId),
    /// A draining connection still open by now is closed 1001 `connect_gateway_closing`.
    Drain(ConnId),
    /// A request lease (plus grace) runs out: the executor retries the attempt.
    Lease { request_id: String },
    /// A failed run's retry is due (the executor's only deadline).
    Retry,
}

/// Identifies one scheduled deadline; the sequence number keeps equal instants apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct TimerHandle(Instant, u64);

impl TimerHandle {
    pub fn at(self) -> Instant {
        self.0
    }
}

#[derive(Debug, Default)]
pub struct Timers {
    entries: BTreeMap<TimerHandle, Timer>,
    seq: u64,
}

impl Timers {
    pub fn schedule(&mut self, at: Instant, timer: Timer) -> TimerHandle {
        self.seq += 1;
        let handle = TimerHandle(at, self.seq);
        self.entries.insert(handle, timer);
        handle
    }

    pub fn cancel(&mut self, handle: Option<TimerHandle>) {
        if let Some(h) = handle {
            self.entries.remove(&h);
        }
    }

    pub fn next(&self) -> Option<(Instant, &Timer)> {
        self.entries.first_key_value().map(|(h, t)| (h.0, t))
    }

    /// Take the earliest deadline if it is due at `now`.
    pub fn pop_due(&mut self, now: Instant) -> Option<(TimerHandle, Timer)> {
        let entry = self.entries.first_entry()?;
        if entry.key().0 > now {
            return None;
        }
        let handle = *entry.key();
        Some((handle, entry.remove()))
    }
}
