//! A closed loop of echo events: keep N runs in flight, send one new event
//! for every run that ends, and record each run's latency from the moment
//! its event was sent to the moment the dev server ended the run.

use std::collections::HashMap;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use connect_dev::{DevServer, RunEnd, RunStatus};
use serde_json::Value;

use crate::worker::echo_event;

/// One run this driver sent that has ended.
#[derive(Debug, Clone)]
pub struct Ended {
    pub at: Instant,
    pub latency: Duration,
    pub completed: bool,
}

#[derive(Debug)]
pub struct Driver<'a> {
    dev: &'a DevServer,
    ends: Receiver<RunEnd>,
    sent: HashMap<String, Instant>,
    event: String,
    payload: Value,
    pub total_sent: usize,
    pub ended: Vec<Ended>,
}

/// Event data of about `bytes` bytes: `{"blob": "xxxx..."}`.
pub fn payload(bytes: usize) -> Value {
    serde_json::json!({ "blob": "x".repeat(bytes.saturating_sub(11)) })
}

impl<'a> Driver<'a> {
    /// Echo events for app `app`.
    pub fn new(dev: &'a DevServer, app: &str, payload: Value) -> Result<Driver<'a>, String> {
        let ends = dev.run_ends().map_err(|e| e.to_string())?;
        let event = echo_event(app);
        Ok(Driver { dev, ends, sent: HashMap::new(), event, payload, total_sent: 0, ended: Vec::new() })
    }

    pub fn in_flight(&self) -> usize {
        self.sent.len()
    }

    /// Send `n` echo events in one round trip.
    pub fn send(&mut self, n: usize) -> Result<(), String> {
        if n == 0 {
            return Ok(());
        }
        let at = Instant::now();
        let events = std::iter::repeat_n((self.event.clone(), self.payload.clone()), n);
        let ids = self.dev.send_events(events).map_err(|e| e.to_string())?;
        self.total_sent += ids.len();
        self.sent.extend(ids.into_iter().map(|id| (id, at)));
        Ok(())
    }

    fn take(&mut self, end: RunEnd) -> bool {
        let Some(sent) = self.sent.remove(&end.event_id) else { return false };
        let completed = end.status == RunStatus::Completed;
        self.ended.push(Ended { at: end.at, latency: end.at.saturating_duration_since(sent), completed });
        true
    }

    /// Collect run ends until `until`, sending one new event per end if `refill`.
    pub fn pump_until(&mut self, until: Instant, refill: bool) -> Result<(), String> {
        loop {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(());
            }
            let first = match self.ends.recv_timeout(left) {
                Ok(e) => e,
                Err(RecvTimeoutError::Timeout) => return Ok(()),
                Err(RecvTimeoutError::Disconnected) => return Err("the dev server stopped".into()),
            };
            let mut n = usize::from(self.take(first));
            while let Ok(e) = self.ends.try_recv() {
                n += usize::from(self.take(e));
            }
            if refill {
                self.send(n)?;
            }
        }
    }

    /// The events sent whose runs have not ended.
    pub fn unfinished(&self) -> Vec<String> {
        self.sent.keys().cloned().collect()
    }

    /// Wait (up to `timeout`) for every run sent to end; false if some did not.
    pub fn finish(&mut self, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        while !self.sent.is_empty() && Instant::now() < end {
            let step = (Instant::now() + Duration::from_millis(100)).min(end);
            if self.pump_until(step, false).is_err() {
                break;
            }
        }
        self.sent.is_empty()
    }
}

/// Cancel every run of these events that is still running (so nothing left
/// over waits in the dev server's queue); returns how many were cancelled.
pub fn cancel_runs(dev: &DevServer, event_ids: impl IntoIterator<Item = String>) -> usize {
    let mut n = 0;
    for id in event_ids {
        for run in dev.runs_for_event(&id).unwrap_or_default() {
            if run.status == RunStatus::Running && dev.cancel(&run.run_id).unwrap_or(false) {
                n += 1;
            }
        }
    }
    n
}
