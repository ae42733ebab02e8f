//! Deadline queues. Lease extensions and reply deadlines are kept in a map
//! ordered by due time, so a tick costs O(log n) per item that is due, never a
//! scan of every request.

use std::collections::BTreeMap;
use std::time::Instant;

/// The handle of one queued deadline, used to cancel it in O(log n).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct TimerKey(Instant, u64);

/// Items of type `K` keyed by due time; ties keep insertion order.
#[derive(Clone, Debug)]
pub(crate) struct TimerQueue<K> {
    map: BTreeMap<TimerKey, K>,
    seq: u64,
}

impl<K> Default for TimerQueue<K> {
    fn default() -> Self {
        TimerQueue { map: BTreeMap::new(), seq: 0 }
    }
}

impl<K> TimerQueue<K> {
    pub(crate) fn insert(&mut self, at: Instant, item: K) -> TimerKey {
        self.seq += 1;
        let key = TimerKey(at, self.seq);
        self.map.insert(key, item);
        key
    }

    pub(crate) fn remove(&mut self, key: TimerKey) -> Option<K> {
        self.map.remove(&key)
    }

    pub(crate) fn first(&self) -> Option<Instant> {
        self.map.first_key_value().map(|(k, _)| k.0)
    }

    pub(crate) fn first_item(&self) -> Option<(Instant, &K)> {
        self.map.first_key_value().map(|(k, v)| (k.0, v))
    }

    /// Take the earliest item if it is due at `now`.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<K> {
        if self.first()? <= now { self.map.pop_first().map(|(_, v)| v) } else { None }
    }

    pub(crate) fn clear(&mut self) {
        self.map.clear();
    }
}
