//! The durable part: requests in flight with their newest lease ids, and
//! replies not yet acknowledged. It outlives connections (a reply or lease
//! extension goes on whichever connection is usable) and can be moved to a
//! fresh machine with [`Durable`].
//!
//! This module keeps the data consistent (timer queues in step with the
//! entries); the decisions (what to send where) are made in `machine.rs`.

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

use bytes::Bytes;

use super::events::{ConnId, HttpId};
use super::frames::{LeaseId, ReqKey};
use super::timers::{TimerKey, TimerQueue};

/// One request this machine has seen.
#[derive(Debug)]
pub(crate) struct Entry {
    /// The connection that delivered it (the ACK went there).
    pub(crate) delivered_on: ConnId,
    /// Present while the lease is extended: until the reply is acknowledged
    /// or flushed, or the lease is lost.
    pub(crate) lease: Option<Lease>,
    pub(crate) reply: ReplyState,
}

#[derive(Debug)]
pub(crate) struct Lease {
    pub(crate) id: LeaseId,
    /// When the lease runs out if no extension succeeds (read from the lease ULID).
    pub(crate) expires: Instant,
    pub(crate) timer: TimerKey,
}

#[derive(Debug)]
pub(crate) enum ReplyState {
    /// The app is running it.
    Awaiting,
    /// Replied, not yet acknowledged.
    Pending(PendingReply),
    /// Acknowledged, flushed or failed: remembered only so it is not run twice.
    Done,
}

#[derive(Debug)]
pub(crate) struct PendingReply {
    /// The whole WORKER_REPLY frame; `frame[payload_at..]` is the SDKResponse (the flush body).
    pub(crate) frame: Bytes,
    pub(crate) payload_at: usize,
    /// The connection it was last sent on, if any.
    pub(crate) sent_on: Option<ConnId>,
    pub(crate) phase: ReplyPhase,
    pub(crate) timer: TimerKey,
    pub(crate) flush_failures: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ReplyPhase {
    /// Waiting for WORKER_REPLY_ACK until the timer.
    AwaitAck,
    /// An HTTP flush is in flight until the timer.
    Flushing(HttpId),
    /// Waiting until the timer to flush again.
    FlushWait,
}

/// The in-flight table and its two deadline queues.
#[derive(Debug, Default)]
pub(crate) struct Requests {
    map: HashMap<ReqKey, Entry>,
    pub(crate) lease_timers: TimerQueue<ReqKey>,
    pub(crate) reply_timers: TimerQueue<ReqKey>,
    /// Done entries in the order they finished, for bounded memory.
    finished: VecDeque<ReqKey>,
    /// Entries in `Awaiting` (handed to the app, no reply yet).
    running: usize,
    /// Entries with a pending reply.
    pending_replies: usize,
}

impl Requests {
    pub(crate) fn get(&self, id: &str) -> Option<&Entry> {
        self.map.get(id)
    }

    pub(crate) fn get_mut(&mut self, id: &str) -> Option<&mut Entry> {
        self.map.get_mut(id)
    }

    pub(crate) fn key(&self, id: &str) -> Option<ReqKey> {
        self.map.get_key_value(id).map(|(k, _)| k.clone())
    }

    pub(crate) fn running(&self) -> usize {
        self.running
    }

    pub(crate) fn pending_replies(&self) -> usize {
        self.pending_replies
    }

    /// Nothing running and no reply waiting: shutdown may complete.
    pub(crate) fn idle(&self) -> bool {
        self.running == 0 && self.pending_replies == 0
    }

    /// Start tracking a request handed to the app, with its first extension due at `extend_at`.
    pub(crate) fn insert(
        &mut self,
        key: ReqKey,
        conn: ConnId,
        lease: LeaseId,
        expires: Instant,
        extend_at: Instant,
    ) {
        let timer = self.lease_timers.insert(extend_at.min(expires), key.clone());
        let lease = Some(Lease { id: lease, expires, timer });
        self.running += 1;
        self.map.insert(key, Entry { delivered_on: conn, lease, reply: ReplyState::Awaiting });
    }

    /// Re-queue a lease's timer for `at`.
    pub(crate) fn reschedule_lease(&mut self, key: &ReqKey, at: Instant) {
        if let Some(lease) = self.map.get_mut(key.id()).and_then(|e| e.lease.as_mut()) {
            self.lease_timers.remove(lease.timer);
            lease.timer = self.lease_timers.insert(at.min(lease.expires), key.clone());
        }
    }

    /// Stop extending (lease lost, or the reply is settled).
    pub(crate) fn drop_lease(&mut self, id: &str) {
        if let Some(lease) = self.map.get_mut(id).and_then(|e| e.lease.take()) {
            self.lease_timers.remove(lease.timer);
        }
    }

    /// Store a reply for a request that had none (the caller sends it), due at `deadline`.
    pub(crate) fn set_pending(
        &mut self,
        key: &ReqKey,
        frame: Bytes,
        payload_at: usize,
        sent_on: Option<ConnId>,
        deadline: Instant,
    ) {
        let Some(entry) = self.map.get_mut(key.id()) else { return };
        match &entry.reply {
            ReplyState::Awaiting => self.running -= 1,
            ReplyState::Pending(old) => {
                self.reply_timers.remove(old.timer);
                self.pending_replies -= 1;
            }
            ReplyState::Done => {}
        }
        let timer = self.reply_timers.insert(deadline, key.clone());
        let phase = ReplyPhase::AwaitAck;
        entry.reply =
            ReplyState::Pending(PendingReply { frame, payload_at, sent_on, phase, timer, flush_failures: 0 });
        self.pending_replies += 1;
    }

    /// Move a pending reply to another phase with a new deadline.
    pub(crate) fn set_reply_phase(&mut self, key: &ReqKey, phase: ReplyPhase, deadline: Instant) {
        if let Some(Entry { reply: ReplyState::Pending(p), .. }) = self.map.get_mut(key.id()) {
            self.reply_timers.remove(p.timer);
            p.timer = self.reply_timers.insert(deadline, key.clone());
            p.phase = phase;
        }
    }

    /// The request is settled (reply acked, flushed or failed): stop
    /// extending, forget the reply, remember the id for a while.
    pub(crate) fn finish(&mut self, id: &str, memory: usize) {
        let Some(key) = self.key(id) else { return };
        self.drop_lease(id);
        let Some(entry) = self.map.get_mut(id) else { return };
        match std::mem::replace(&mut entry.reply, ReplyState::Done) {
            ReplyState::Awaiting => self.running -= 1,
            ReplyState::Pending(p) => {
                self.reply_timers.remove(p.timer);
                self.pending_replies -= 1;
            }
            ReplyState::Done => return,
        }
        self.finished.push_back(key);
        while self.finished.len() > memory {
            if let Some(old) = self.finished.pop_front() {
                self.map.remove(old.id());
            }
        }
    }

    /// Ids of requests with a pending reply, in no particular order.
    pub(crate) fn pending_keys(&self) -> impl Iterator<Item = (&ReqKey, &PendingReply)> {
        self.map.iter().filter_map(|(k, e)| match &e.reply {
            ReplyState::Pending(p) => Some((k, p)),
            _ => None,
        })
    }

    pub(crate) fn awaiting_keys(&self) -> impl Iterator<Item = &ReqKey> {
        self.map.iter().filter(|(_, e)| matches!(e.reply, ReplyState::Awaiting)).map(|(k, _)| k)
    }

    /// Empty the table into a [`Durable`].
    pub(crate) fn take(&mut self) -> Durable {
        let mut requests = Vec::with_capacity(self.map.len());
        let mut finished = Vec::new();
        for (key, entry) in self.map.drain() {
            let lease = entry.lease.map(|l| (l.id, l.expires));
            match entry.reply {
                ReplyState::Awaiting => requests.push(DurableRequest {
                    key,
                    delivered_on: entry.delivered_on,
                    lease,
                    reply: None,
                }),
                ReplyState::Pending(p) => requests.push(DurableRequest {
                    key,
                    delivered_on: entry.delivered_on,
                    lease,
                    reply: Some((p.frame, p.payload_at)),
                }),
                ReplyState::Done => finished.push(key),
            }
        }
        self.lease_timers.clear();
        self.reply_timers.clear();
        self.finished.clear();
        self.running = 0;
        self.pending_replies = 0;
        Durable { requests, finished, next_id: 0 }
    }

    /// Remember a finished id from a [`Durable`].
    pub(crate) fn insert_finished(&mut self, key: ReqKey, conn: ConnId) {
        self.finished.push_back(key.clone());
        self.map.insert(key, Entry { delivered_on: conn, lease: None, reply: ReplyState::Done });
    }

    /// Track a request from a [`Durable`] whose lease is no longer extended.
    pub(crate) fn insert_unleased(&mut self, key: ReqKey, conn: ConnId) {
        self.running += 1;
        self.map.insert(key, Entry { delivered_on: conn, lease: None, reply: ReplyState::Awaiting });
    }
}

/// The state that must survive a connection thread crash: requests in
/// flight (with their newest lease ids) and replies not yet acknowledged,
/// plus recently finished ids so they are not run twice. Take it with
/// [`Worker::take_durable`](super::Worker::take_durable) and pass it to
/// [`Worker::new`](super::Worker::new).
#[derive(Clone, Debug, Default)]
pub struct Durable {
    requests: Vec<DurableRequest>,
    finished: Vec<ReqKey>,
    /// The next connection/HTTP id, so that ids are not reused across a respawn.
    pub(crate) next_id: u64,
}

#[derive(Clone, Debug)]
pub(crate) struct DurableRequest {
    pub(crate) key: ReqKey,
    pub(crate) delivered_on: ConnId,
    pub(crate) lease: Option<(LeaseId, Instant)>,
    /// The reply frame and its payload offset, if the app has replied.
    pub(crate) reply: Option<(Bytes, usize)>,
}

impl Durable {
    /// True when there is nothing to resume.
    pub fn is_empty(&self) -> bool {
        self.requests.is_empty() && self.finished.is_empty()
    }
    /// Requests still running in the app (no reply yet).
    pub fn in_flight_ids(&self) -> impl Iterator<Item = &str> {
        self.requests.iter().filter(|r| r.reply.is_none()).map(|r| r.key.id())
    }
    /// Requests whose reply is not yet acknowledged.
    pub fn unacked_reply_ids(&self) -> impl Iterator<Item = &str> {
        self.requests.iter().filter(|r| r.reply.is_some()).map(|r| r.key.id())
    }
    pub(crate) fn into_parts(self) -> (Vec<DurableRequest>, Vec<ReqKey>, u64) {
        (self.requests, self.finished, self.next_id)
    }
}
