//! The durable part: requests in flight with their newest lease ids, and
//! replies not yet acknowledged. It outlives connections (a reply or lease
//! extension goes on whichever connection is usable) and can be moved to a
//! fresh machine with [`Durable`].
//!
//! This module keeps the data consistent (timer queues and counters in step
//! with the entries), with one table lookup per operation; the decisions
//! (what to send where) are made in `machine.rs`.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};
use std::time::Instant;

use super::events::{ConnId, HttpId, Reply};
use super::frames::{LeaseId, ReqKey};
use super::timers::{TimerKey, TimerQueue};

/// One request this machine has seen.
#[derive(Debug)]
pub(crate) struct Entry {
    pub(crate) key: ReqKey,
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
}

#[derive(Debug)]
pub(crate) struct PendingReply {
    /// The app's reply. Kept rather than the encoded frame: a re-send or a
    /// flush re-encodes it, which is rare, and the common path saves a copy.
    pub(crate) reply: Reply,
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

/// A fast hash for request ids. They come from the gateway, which is trusted
/// (it decides what we run anyway), so SipHash's flooding resistance buys nothing.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct IdHasher(u64);

const K: u64 = 0x9e37_79b9_7f4a_7c15;

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut h = self.0;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            h = (h ^ u64::from_le_bytes(w)).wrapping_mul(K).rotate_left(31);
        }
        for &b in chunks.remainder() {
            h = (h ^ u64::from(b)).wrapping_mul(K);
        }
        self.0 = h;
    }
    fn finish(&self) -> u64 {
        let h = (self.0 ^ (self.0 >> 32)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        h ^ (h >> 29)
    }
}

type IdMap = HashMap<ReqKey, Entry, BuildHasherDefault<IdHasher>>;

/// For keys that are hashes already.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct PassThrough(u64);

impl Hasher for PassThrough {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

/// The remembered form of a finished request id.
fn id_hash(id: &str) -> u64 {
    BuildHasherDefault::<IdHasher>::default().hash_one(id.as_bytes())
}

/// The in-flight table and its two deadline queues.
#[derive(Debug, Default)]
pub(crate) struct Requests {
    map: IdMap,
    pub(crate) lease_timers: TimerQueue<ReqKey>,
    pub(crate) reply_timers: TimerQueue<ReqKey>,
    /// Settled requests, remembered (as a 64-bit hash of the id, 16 bytes
    /// each) only so that a re-delivery is not run twice; oldest first.
    finished: HashMap<u64, (), BuildHasherDefault<PassThrough>>,
    finished_order: VecDeque<u64>,
    /// Entries in `Awaiting` (handed to the app, no reply yet).
    running: usize,
    /// Entries with a pending reply.
    pending_replies: usize,
}

impl Requests {
    pub(crate) fn get(&self, id: &str) -> Option<&Entry> {
        self.map.get(id.as_bytes())
    }

    pub(crate) fn get_mut(&mut self, id: &str) -> Option<&mut Entry> {
        self.map.get_mut(id.as_bytes())
    }

    /// The request was settled here (and is remembered).
    pub(crate) fn is_finished(&self, id: &str) -> bool {
        self.finished.contains_key(&id_hash(id))
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
        self.map.insert(key.clone(), Entry { key, delivered_on: conn, lease, reply: ReplyState::Awaiting });
    }

    /// Re-queue a lease's timer for `at` (or its expiry, if sooner).
    pub(crate) fn reschedule_lease(&mut self, id: &str, at: Instant) {
        if let Some(e) = self.map.get_mut(id.as_bytes()) {
            if let Some(lease) = e.lease.as_mut() {
                self.lease_timers.remove(lease.timer);
                lease.timer = self.lease_timers.insert(at.min(lease.expires), e.key.clone());
            }
        }
    }

    /// Stop extending (lease lost). Returns whether the app is still running it.
    pub(crate) fn drop_lease(&mut self, id: &str) -> bool {
        let Some(e) = self.map.get_mut(id.as_bytes()) else { return false };
        if let Some(lease) = e.lease.take() {
            self.lease_timers.remove(lease.timer);
        }
        matches!(e.reply, ReplyState::Awaiting)
    }

    /// Store the reply of a request still awaiting one (the caller sends it);
    /// its ack deadline is `deadline`.
    pub(crate) fn set_pending(&mut self, id: &str, reply: Reply, sent_on: Option<ConnId>, deadline: Instant) {
        let Some(e) = self.map.get_mut(id.as_bytes()) else { return };
        if !matches!(e.reply, ReplyState::Awaiting) {
            return;
        }
        self.running -= 1;
        self.pending_replies += 1;
        let timer = self.reply_timers.insert(deadline, e.key.clone());
        let phase = ReplyPhase::AwaitAck;
        e.reply = ReplyState::Pending(PendingReply { reply, sent_on, phase, timer, flush_failures: 0 });
    }

    /// Move a pending reply to another phase with a new deadline.
    pub(crate) fn set_reply_phase(&mut self, id: &str, phase: ReplyPhase, deadline: Instant) {
        if let Some(Entry { reply: ReplyState::Pending(p), key, .. }) = self.map.get_mut(id.as_bytes()) {
            self.reply_timers.remove(p.timer);
            p.timer = self.reply_timers.insert(deadline, key.clone());
            p.phase = phase;
        }
    }

    /// The request is settled (reply acked, flushed or failed, or given up):
    /// stop extending, forget the reply, remember the id for a while.
    /// Returns whether it had a pending reply.
    pub(crate) fn finish(&mut self, id: &str, memory: usize) -> bool {
        let Some(e) = self.map.remove(id.as_bytes()) else { return false };
        if let Some(lease) = e.lease {
            self.lease_timers.remove(lease.timer);
        }
        let had_reply = match e.reply {
            ReplyState::Awaiting => {
                self.running -= 1;
                false
            }
            ReplyState::Pending(p) => {
                self.reply_timers.remove(p.timer);
                self.pending_replies -= 1;
                true
            }
        };
        self.remember(id_hash(id), memory);
        had_reply
    }

    fn remember(&mut self, hash: u64, memory: usize) {
        if self.finished.insert(hash, ()).is_none() {
            self.finished_order.push_back(hash);
        }
        while self.finished_order.len() > memory {
            if let Some(old) = self.finished_order.pop_front() {
                self.finished.remove(&old);
            }
        }
    }

    /// Requests with a pending reply, in no particular order.
    pub(crate) fn pending(&self) -> impl Iterator<Item = (&ReqKey, &PendingReply)> {
        self.map.values().filter_map(|e| match &e.reply {
            ReplyState::Pending(p) => Some((&e.key, p)),
            _ => None,
        })
    }

    pub(crate) fn awaiting(&self) -> impl Iterator<Item = &ReqKey> {
        self.map.values().filter(|e| matches!(e.reply, ReplyState::Awaiting)).map(|e| &e.key)
    }

    /// Empty the table into a [`Durable`].
    pub(crate) fn take(&mut self) -> Durable {
        let mut requests = Vec::with_capacity(self.map.len());
        let finished = std::mem::take(&mut self.finished_order).into();
        self.finished.clear();
        for (_, e) in self.map.drain() {
            let lease = e.lease.map(|l| (l.id, l.expires));
            let (key, delivered_on) = (e.key, e.delivered_on);
            match e.reply {
                ReplyState::Awaiting => {
                    requests.push(DurableRequest { key, delivered_on, lease, reply: None })
                }
                ReplyState::Pending(p) => {
                    requests.push(DurableRequest { key, delivered_on, lease, reply: Some(p.reply) })
                }
            }
        }
        self.lease_timers.clear();
        self.reply_timers.clear();
        self.running = 0;
        self.pending_replies = 0;
        Durable { requests, finished, next_id: 0 }
    }

    /// Remember finished ids from a [`Durable`].
    pub(crate) fn insert_finished(&mut self, hashes: Vec<u64>, memory: usize) {
        for hash in hashes {
            self.remember(hash, memory);
        }
    }

    /// Track a request from a [`Durable`] whose lease is no longer extended.
    pub(crate) fn insert_unleased(&mut self, key: ReqKey, conn: ConnId) {
        self.running += 1;
        self.map
            .insert(key.clone(), Entry { key, delivered_on: conn, lease: None, reply: ReplyState::Awaiting });
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
    /// Hashes of settled request ids, oldest first.
    finished: Vec<u64>,
    /// The next connection/HTTP id, so that ids are not reused across a respawn.
    pub(crate) next_id: u64,
}

#[derive(Clone, Debug)]
pub(crate) struct DurableRequest {
    pub(crate) key: ReqKey,
    pub(crate) delivered_on: ConnId,
    pub(crate) lease: Option<(LeaseId, Instant)>,
    /// The app's reply, if it has replied.
    pub(crate) reply: Option<Reply>,
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
    pub(crate) fn into_parts(self) -> (Vec<DurableRequest>, Vec<u64>, u64) {
        (self.requests, self.finished, self.next_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::BuildHasher;

    #[test]
    fn id_hash_spreads_similar_ids() {
        let build = BuildHasherDefault::<IdHasher>::default();
        let mut seen = std::collections::HashSet::new();
        for i in 0..10_000 {
            let id = format!("01JQ9A2B1C2D3E4F{i:010}");
            seen.insert(build.hash_one(id.as_bytes()) >> 48);
        }
        assert!(seen.len() > 9_000, "{} distinct top-16-bit values", seen.len());
    }
}
