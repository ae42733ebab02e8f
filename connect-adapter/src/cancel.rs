//! A cancellation signal that works in sync and async code on any executor.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use event_listener::{Event, Listener};

/// Why a handler is asked to stop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CancelReason {
    /// The gateway refused to extend the lease: another worker may run this
    /// attempt, so this one's result may be discarded.
    LeaseLost,
    /// The worker is stopping before the handler finished: its shutdown
    /// deadline passed (or it hit a fatal error). The result will not be
    /// sent; the gateway retries the run when its lease expires.
    ShutdownDeadline,
}

/// Fired once; clones share the signal. Handlers poll [`is_cancelled`]
/// in CPU-bound loops, or await [`cancelled`] in async code.
///
/// [`is_cancelled`]: CancelSignal::is_cancelled
/// [`cancelled`]: CancelSignal::cancelled
#[derive(Clone, Default)]
pub struct CancelSignal(Arc<Inner>);

#[derive(Default)]
struct Inner {
    /// 0 = not cancelled, else 1 + reason.
    state: AtomicU8,
    event: Event,
}

impl CancelSignal {
    pub fn new() -> Self {
        Self::default()
    }

    /// Fire the signal. The first reason wins; later calls do nothing.
    pub fn cancel(&self, reason: CancelReason) {
        let code = match reason {
            CancelReason::LeaseLost => 1,
            CancelReason::ShutdownDeadline => 2,
        };
        if self.0.state.compare_exchange(0, code, Ordering::AcqRel, Ordering::Acquire).is_ok() {
            self.0.event.notify(usize::MAX);
        }
    }

    pub fn is_cancelled(&self) -> bool {
        self.reason().is_some()
    }

    pub fn reason(&self) -> Option<CancelReason> {
        match self.0.state.load(Ordering::Acquire) {
            1 => Some(CancelReason::LeaseLost),
            2 => Some(CancelReason::ShutdownDeadline),
            _ => None,
        }
    }

    /// Resolves when the signal fires (at once if it already has).
    pub async fn cancelled(&self) -> CancelReason {
        loop {
            if let Some(r) = self.reason() {
                return r;
            }
            let listener = self.0.event.listen();
            if let Some(r) = self.reason() {
                return r;
            }
            listener.await;
        }
    }

    /// Block the current thread until the signal fires or `timeout` passes.
    pub fn wait_timeout(&self, timeout: std::time::Duration) -> Option<CancelReason> {
        if let Some(r) = self.reason() {
            return Some(r);
        }
        let listener = self.0.event.listen();
        if let Some(r) = self.reason() {
            return Some(r);
        }
        listener.wait_timeout(timeout);
        self.reason()
    }
}

impl std::fmt::Debug for CancelSignal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("CancelSignal").field(&self.reason()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn first_reason_wins_and_clones_share_it() {
        let a = CancelSignal::new();
        let b = a.clone();
        assert!(!b.is_cancelled());
        a.cancel(CancelReason::LeaseLost);
        a.cancel(CancelReason::ShutdownDeadline);
        assert_eq!(b.reason(), Some(CancelReason::LeaseLost));
    }

    #[test]
    fn a_waiting_thread_wakes_when_fired() {
        let s = CancelSignal::new();
        let waiter = {
            let s = s.clone();
            std::thread::spawn(move || s.wait_timeout(Duration::from_secs(30)))
        };
        s.cancel(CancelReason::ShutdownDeadline);
        assert_eq!(waiter.join().expect("joins"), Some(CancelReason::ShutdownDeadline));
    }
}
