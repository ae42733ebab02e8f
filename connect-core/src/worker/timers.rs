//! Deadline queues for the in-flight table: at most one deadline per slot.
//!
//! Most deadlines are scheduled in time order (a lease extension is due one
//! interval after now, a reply ack a fixed timeout after now), so they go in
//! a FIFO; the few that are not (a flush retry's backoff, a lease that
//! expires before its next extension) go in a binary heap. The earliest
//! deadline is at the front of one of the two. Deletion is lazy: cancelling
//! or moving a slot's deadline only forgets which entry is live (a per-slot
//! sequence number); the stale entry stays queued until it reaches the
//! front, where it is dropped. So scheduling and cancelling are O(1) (the
//! heap's O(log n) only for out-of-order deadlines), a tick costs O(1) per
//! deadline that is due, never a scan of every request, and the memory
//! touched is the front of a queue. No allocation per deadline.
//!
//! Two invariants keep it exact and bounded:
//! - the fronts of both queues are always live, so [`TimerQueue::first`] is
//!   the true next deadline (a stale one would wake the loop for nothing);
//! - stale entries never outnumber live ones by much: past a threshold both
//!   queues are rebuilt without them, an O(n) pass paid for by the n/2
//!   cancellations that made it necessary.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::time::Instant;

/// Below this many stale entries the queues are never rebuilt.
const COMPACT_MIN: usize = 1024;

/// One queued deadline: due time, then sequence number (ties keep
/// scheduling order, so a replay is exact), then the slot.
type Item<T> = (T, u64, usize);

/// Generic over the time type so that its tests can use plain numbers
/// (the machine uses `Instant`; nothing here reads a clock).
#[derive(Clone, Debug)]
pub(crate) struct TimerQueue<T = Instant> {
    /// Deadlines each no earlier than the one before: sorted.
    fifo: VecDeque<Item<T>>,
    /// The others.
    heap: BinaryHeap<Reverse<Item<T>>>,
    /// For each slot, the sequence number of its live entry (0: none).
    live: Vec<u64>,
    /// Queued entries that are no longer live.
    stale: usize,
    seq: u64,
}

impl<T> Default for TimerQueue<T> {
    fn default() -> Self {
        TimerQueue { fifo: VecDeque::new(), heap: BinaryHeap::new(), live: Vec::new(), stale: 0, seq: 0 }
    }
}

impl<T: Ord + Copy> TimerQueue<T> {
    /// Set `slot`'s deadline to `at`, replacing any it had.
    pub(crate) fn schedule(&mut self, slot: usize, at: T) {
        let replaced = self.forget(slot);
        if self.live.len() <= slot {
            self.live.resize(slot + 1, 0);
        }
        self.seq += 1;
        self.live[slot] = self.seq;
        let item = (at, self.seq, slot);
        if self.fifo.back().is_none_or(|last| last.0 <= at) {
            self.fifo.push_back(item);
        } else {
            self.heap.push(Reverse(item));
        }
        if replaced {
            self.tidy();
        }
    }

    /// Remove `slot`'s deadline, if it has one.
    pub(crate) fn cancel(&mut self, slot: usize) {
        if self.forget(slot) {
            self.tidy();
        }
    }

    /// The next deadline and its slot.
    pub(crate) fn first(&self) -> Option<(T, usize)> {
        self.earliest().map(|(at, _, slot)| (at, slot))
    }

    /// Take the earliest deadline if it is due at `now`; returns its slot.
    pub(crate) fn pop_due(&mut self, now: T) -> Option<usize> {
        let (at, seq, slot) = self.earliest()?;
        if at > now {
            return None;
        }
        if self.fifo.front().is_some_and(|f| f.1 == seq) {
            self.fifo.pop_front();
        } else {
            self.heap.pop();
        }
        self.live[slot] = 0;
        self.drop_stale_fronts();
        Some(slot)
    }

    pub(crate) fn clear(&mut self) {
        self.fifo.clear();
        self.heap.clear();
        self.live.clear();
        self.stale = 0;
    }

    /// Queued entries, live or stale (for tests of the bound).
    #[cfg(test)]
    fn queued(&self) -> usize {
        self.fifo.len() + self.heap.len()
    }

    fn earliest(&self) -> Option<Item<T>> {
        match (self.fifo.front(), self.heap.peek()) {
            (Some(f), Some(Reverse(h))) => Some(*f.min(h)),
            (Some(f), None) => Some(*f),
            (None, Some(Reverse(h))) => Some(*h),
            (None, None) => None,
        }
    }

    /// Mark `slot`'s entry stale; false if it had none.
    fn forget(&mut self, slot: usize) -> bool {
        match self.live.get_mut(slot) {
            Some(seq) if *seq != 0 => {
                *seq = 0;
                self.stale += 1;
                true
            }
            _ => false,
        }
    }

    fn is_live(live: &[u64], (_, seq, slot): &Item<T>) -> bool {
        live.get(*slot) == Some(seq)
    }

    /// Restore both invariants after an entry went stale.
    fn tidy(&mut self) {
        self.drop_stale_fronts();
        if self.stale > COMPACT_MIN && self.stale > (self.fifo.len() + self.heap.len()) / 2 {
            let live = &self.live;
            self.fifo.retain(|item| Self::is_live(live, item));
            self.heap.retain(|Reverse(item)| Self::is_live(live, item));
            self.stale = 0;
        }
    }

    fn drop_stale_fronts(&mut self) {
        while let Some(item) = self.fifo.front() {
            if Self::is_live(&self.live, item) {
                break;
            }
            self.fifo.pop_front();
            self.stale -= 1;
        }
        while let Some(Reverse(item)) = self.heap.peek() {
            if Self::is_live(&self.live, item) {
                break;
            }
            self.heap.pop();
            self.stale -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Test time: milliseconds since an arbitrary origin.
    type Ms = u64;

    #[test]
    fn deadlines_come_out_in_order_and_cancelled_ones_never() {
        let at = |s: u64| -> Ms { s * 1000 };
        let mut q = TimerQueue::default();
        q.schedule(0, at(5));
        q.schedule(1, at(3));
        q.schedule(2, at(3)); // a tie: scheduling order
        q.schedule(3, at(1));
        q.schedule(0, at(2)); // moved earlier
        q.cancel(3); // the top: dropped at once
        assert_eq!(q.first(), Some((at(2), 0)));
        q.schedule(0, at(4)); // the top moved later: the next one is the top now
        assert_eq!(q.first(), Some((at(3), 1)));
        q.schedule(0, at(2));
        assert_eq!(q.pop_due(at(1)), None);
        let mut order = vec![];
        while let Some(slot) = q.pop_due(at(10)) {
            order.push(slot);
        }
        assert_eq!(order, [0, 1, 2]);
        assert_eq!(q.first(), None);
        q.cancel(1); // nothing queued: harmless
    }

    /// Random schedules (mostly in order, as in the machine), moves, cancels
    /// and ticks, against a plain map of live deadlines.
    #[test]
    fn agrees_with_a_map_of_live_deadlines() {
        let mut rng = fastrand::Rng::with_seed(7);
        let mut q = TimerQueue::default();
        let mut model: std::collections::BTreeMap<usize, (Ms, u64)> = Default::default();
        let (mut now, mut seq): (Ms, u64) = (1_000_000, 0);
        for _ in 0..200_000 {
            let slot = rng.usize(..64);
            match rng.u8(..10) {
                0..=4 => {
                    let ahead = if rng.u8(..8) == 0 { rng.u64(..30_000) } else { 30_000 };
                    let at = now + ahead;
                    seq += 1;
                    q.schedule(slot, at);
                    model.insert(slot, (at, seq));
                }
                5..=6 => {
                    q.cancel(slot);
                    model.remove(&slot);
                }
                _ => {
                    now += rng.u64(..2_000);
                    loop {
                        let want = model.iter().min_by_key(|(_, v)| **v).map(|(k, v)| (v.0, *k));
                        assert_eq!(q.first(), want);
                        match q.pop_due(now) {
                            Some(slot) => {
                                let (at, _) = model.remove(&slot).expect("a live deadline");
                                assert!(at <= now);
                            }
                            None => break,
                        }
                    }
                }
            }
            assert!(q.queued() <= 2 * (model.len() + COMPACT_MIN) + 2);
        }
    }

    #[test]
    fn stale_entries_stay_bounded() {
        let t0: Ms = 0;
        let mut q = TimerQueue::default();
        // One live deadline far away, and many short-lived ones cancelled
        // without ever reaching the top.
        q.schedule(0, t0);
        for i in 0..100_000u64 {
            let slot = 1 + (i % 16) as usize;
            q.schedule(slot, t0 + (60 + i) * 1000);
            q.cancel(slot);
        }
        assert!(q.queued() <= 2 * COMPACT_MIN + 2, "{} queued", q.queued());
        assert_eq!(q.pop_due(t0), Some(0));
        assert_eq!(q.first(), None, "only stale entries were left");
    }
}
