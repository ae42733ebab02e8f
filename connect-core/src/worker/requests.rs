//! The durable part: requests in flight with their newest lease ids, and
//! replies not yet acknowledged. It outlives connections (a reply or lease
//! extension goes on whichever connection is usable) and can be moved to a
//! fresh machine with [`Durable`].
//!
//! This module keeps the data consistent (deadline queues and counters in
//! step with the entries); the decisions (what to send where) are made in
//! `machine.rs`.
//!
//! Layout, for a table of 10,000 requests whose oldest entry is the next to
//! be touched: entries live in a slab (a `Vec` whose freed slots are reused
//! last-freed first, so a new request is written into memory that is still
//! in cache), found through a small index from request id to slot (32 bytes
//! a bucket). The deadline queues name slots, not ids.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};
use std::time::Instant;

use crate::wire::{RequestId, RequestText};

use super::events::{ConnId, HttpId, Reply};
use super::frames::LeaseId;
use super::timers::TimerQueue;

/// One request this machine has seen.
#[derive(Debug)]
pub(crate) struct Entry {
    /// Its fields (shared with the app's `ExecutorRequest`), echoed in every frame about it.
    pub(crate) text: RequestText,
    /// The connection that delivered it (the ACK went there).
    pub(crate) delivered_on: ConnId,
    /// Present while the lease is extended: until the reply is acknowledged
    /// or flushed, or the lease is lost. Its next extension is queued in
    /// `lease_timers`.
    pub(crate) lease: Option<Lease>,
    pub(crate) reply: ReplyState,
}

#[derive(Debug)]
pub(crate) struct Lease {
    pub(crate) id: LeaseId,
    /// When the lease runs out if no extension succeeds (read from the lease ULID).
    pub(crate) expires: Instant,
}

#[derive(Debug)]
pub(crate) enum ReplyState {
    /// The app is running it.
    Awaiting,
    /// Replied, not yet acknowledged; its deadline is queued in `reply_timers`.
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
    /// Request id → slot in `slots`.
    index: HashMap<RequestId, usize, BuildHasherDefault<IdHasher>>,
    slots: Vec<Option<Entry>>,
    /// Free slots; the last freed is reused first.
    free: Vec<usize>,
    /// Per slot: the next lease extension (or local expiry).
    lease_timers: TimerQueue,
    /// Per slot: the pending reply's ack, flush or retry deadline.
    reply_timers: TimerQueue,
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
    fn slot(&self, id: &str) -> Option<usize> {
        self.index.get(id).copied()
    }

    pub(crate) fn get(&self, id: &str) -> Option<&Entry> {
        self.at(self.slot(id)?)
    }

    /// The slot of a request, for a lookup and a change with one search.
    pub(crate) fn find(&self, id: &str) -> Option<(usize, &Entry)> {
        let slot = self.slot(id)?;
        Some((slot, self.at(slot)?))
    }

    fn at(&self, slot: usize) -> Option<&Entry> {
        self.slots.get(slot)?.as_ref()
    }

    pub(crate) fn get_mut(&mut self, id: &str) -> Option<&mut Entry> {
        let slot = self.slot(id)?;
        self.slots.get_mut(slot)?.as_mut()
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
        text: RequestText,
        conn: ConnId,
        lease: LeaseId,
        expires: Instant,
        extend_at: Instant,
    ) -> usize {
        let lease = Lease { id: lease, expires };
        let slot =
            self.add(Entry { text, delivered_on: conn, lease: Some(lease), reply: ReplyState::Awaiting });
        self.lease_timers.schedule(slot, extend_at.min(expires));
        slot
    }

    /// Track a request from a [`Durable`] whose lease is no longer extended.
    pub(crate) fn insert_unleased(&mut self, text: RequestText, conn: ConnId) -> usize {
        self.add(Entry { text, delivered_on: conn, lease: None, reply: ReplyState::Awaiting })
    }

    fn add(&mut self, entry: Entry) -> usize {
        let id = entry.text.id();
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slots[slot] = Some(entry);
                slot
            }
            None => {
                self.slots.push(Some(entry));
                self.slots.len() - 1
            }
        };
        if let Some(old) = self.index.insert(id, slot) {
            // The caller checked that the id is new; never leak a slot all the same.
            self.release(old);
        }
        self.running += 1;
        slot
    }

    /// Re-queue a lease's timer for `at` (or its expiry, if sooner).
    pub(crate) fn reschedule_lease(&mut self, id: &str, at: Instant) {
        let Some(slot) = self.slot(id) else { return };
        if let Some(Some(Entry { lease: Some(lease), .. })) = self.slots.get(slot) {
            self.lease_timers.schedule(slot, at.min(lease.expires));
        }
    }

    /// Stop extending (lease lost). Returns whether the app is still running it.
    pub(crate) fn drop_lease(&mut self, id: &str) -> bool {
        let Some(slot) = self.slot(id) else { return false };
        let Some(Some(e)) = self.slots.get_mut(slot) else { return false };
        if e.lease.take().is_some() {
            self.lease_timers.cancel(slot);
        }
        matches!(e.reply, ReplyState::Awaiting)
    }

    /// Store the reply of a request still awaiting one (the caller sends it);
    /// its ack deadline is `deadline`. `slot` is from [`Requests::find`] or an insert.
    pub(crate) fn set_pending(
        &mut self,
        slot: usize,
        reply: Reply,
        sent_on: Option<ConnId>,
        deadline: Instant,
    ) {
        let Some(Some(e)) = self.slots.get_mut(slot) else { return };
        if !matches!(e.reply, ReplyState::Awaiting) {
            return;
        }
        self.running -= 1;
        self.pending_replies += 1;
        let phase = ReplyPhase::AwaitAck;
        e.reply = ReplyState::Pending(PendingReply { reply, sent_on, phase, flush_failures: 0 });
        self.reply_timers.schedule(slot, deadline);
    }

    /// Move a pending reply to another phase with a new deadline.
    pub(crate) fn set_reply_phase(&mut self, id: &str, phase: ReplyPhase, deadline: Instant) {
        let Some(slot) = self.slot(id) else { return };
        if let Some(Some(Entry { reply: ReplyState::Pending(p), .. })) = self.slots.get_mut(slot) {
            p.phase = phase;
            self.reply_timers.schedule(slot, deadline);
        }
    }

    /// The request is settled (reply acked, flushed or failed, or given up):
    /// stop extending, forget the reply, remember the id for a while.
    /// Returns whether it had a pending reply.
    pub(crate) fn finish(&mut self, id: &str, memory: usize) -> bool {
        let Some(slot) = self.index.remove(id) else { return false };
        let had_reply = self.release(slot);
        self.remember(id_hash(id), memory);
        had_reply
    }

    /// A reply was acknowledged: settle its request, if its reply is
    /// pending (an ack for anything else is ignored). Returns its id.
    pub(crate) fn settle_reply(&mut self, id: &str, memory: usize) -> Option<RequestId> {
        // One search in the common case: take the entry out, and put it
        // back in the rare one where there is no reply to settle.
        let (key, slot) = self.index.remove_entry(id)?;
        if !matches!(self.at(slot), Some(Entry { reply: ReplyState::Pending(_), .. })) {
            self.index.insert(key, slot);
            return None;
        }
        self.release(slot);
        self.remember(id_hash(id), memory);
        Some(key)
    }

    /// Empty a slot (already out of the index) and cancel its deadlines.
    /// Returns whether it had a pending reply.
    fn release(&mut self, slot: usize) -> bool {
        let Some(e) = self.slots.get_mut(slot).and_then(Option::take) else { return false };
        self.free.push(slot);
        if e.lease.is_some() {
            self.lease_timers.cancel(slot);
        }
        match e.reply {
            ReplyState::Awaiting => {
                self.running -= 1;
                false
            }
            ReplyState::Pending(_) => {
                self.reply_timers.cancel(slot);
                self.pending_replies -= 1;
                true
            }
        }
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

    /// The request whose lease timer is due at `now`, if any (it is taken off the queue).
    pub(crate) fn pop_lease_due(&mut self, now: Instant) -> Option<RequestId> {
        let slot = self.lease_timers.pop_due(now)?;
        Some(self.slots.get(slot)?.as_ref()?.text.id())
    }

    /// The request whose reply deadline is due at `now`, if any (it is taken off the queue).
    pub(crate) fn pop_reply_due(&mut self, now: Instant) -> Option<RequestId> {
        let slot = self.reply_timers.pop_due(now)?;
        Some(self.slots.get(slot)?.as_ref()?.text.id())
    }

    pub(crate) fn next_lease_deadline(&self) -> Option<Instant> {
        self.lease_timers.first().map(|(at, _)| at)
    }

    /// The next reply deadline, and the reply it is for.
    pub(crate) fn next_reply_deadline(&self) -> Option<(Instant, &PendingReply)> {
        let (at, slot) = self.reply_timers.first()?;
        match self.slots.get(slot) {
            Some(Some(Entry { reply: ReplyState::Pending(p), .. })) => Some((at, p)),
            _ => None,
        }
    }

    /// Forget every deadline (the machine is closed).
    pub(crate) fn clear_timers(&mut self) {
        self.lease_timers.clear();
        self.reply_timers.clear();
    }

    fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.slots.iter().flatten()
    }

    /// Requests with a pending reply, in no particular order.
    pub(crate) fn pending(&self) -> impl Iterator<Item = (&RequestText, &PendingReply)> {
        self.entries().filter_map(|e| match &e.reply {
            ReplyState::Pending(p) => Some((&e.text, p)),
            ReplyState::Awaiting => None,
        })
    }

    pub(crate) fn awaiting(&self) -> impl Iterator<Item = &RequestText> {
        self.entries().filter(|e| matches!(e.reply, ReplyState::Awaiting)).map(|e| &e.text)
    }

    /// Empty the table into a [`Durable`].
    pub(crate) fn take(&mut self) -> Durable {
        let mut requests = Vec::with_capacity(self.index.len());
        let finished = std::mem::take(&mut self.finished_order).into();
        self.finished.clear();
        self.index.clear();
        self.free.clear();
        for e in std::mem::take(&mut self.slots).into_iter().flatten() {
            let lease = e.lease.map(|l| (l.id, l.expires));
            let reply = match e.reply {
                ReplyState::Awaiting => None,
                ReplyState::Pending(p) => Some(p.reply),
            };
            requests.push(DurableRequest { text: e.text, delivered_on: e.delivered_on, lease, reply });
        }
        self.clear_timers();
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
    pub(crate) text: RequestText,
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
        self.requests.iter().filter(|r| r.reply.is_none()).map(|r| r.text.request_id())
    }
    /// Requests whose reply is not yet acknowledged.
    pub fn unacked_reply_ids(&self) -> impl Iterator<Item = &str> {
        self.requests.iter().filter(|r| r.reply.is_some()).map(|r| r.text.request_id())
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
