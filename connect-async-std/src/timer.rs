//! The connection thread's own clock: a `block_on` that parks the thread
//! until the pump's next deadline, and the [`Deadline`] future that sets it.
//!
//! Why not `async_io::block_on` and `async_io::Timer`: async-io has one
//! reactor per process, driven by whichever thread holds it (an idle
//! executor thread of the user's, or its own "async-io" thread). A timer
//! then fires on that thread, which must be scheduled first and then wake
//! this one: two wake-ups on a saturated machine instead of one. Here the
//! kernel wakes the connection thread itself at the deadline, as in
//! connect-blocking. Sockets stay on async-io (reads reach us through the
//! reactor; writes are attempted at once), which is what makes the adapter
//! run under async-std and smol alike.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Instant;

thread_local! {
    /// The earliest deadline a pending [`Deadline`] asked for during this poll.
    static WAKE_AT: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// Resolves at `.0`. It registers no waker: the [`block_on`] loop wakes at
/// the deadline and polls its future again. So it belongs in the future given
/// to `block_on` itself, never in a task spawned on an executor (those are
/// polled only when woken).
pub(crate) struct Deadline(pub Instant);

impl Future for Deadline {
    type Output = ();

    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<()> {
        if Instant::now() >= self.0 {
            return Poll::Ready(());
        }
        WAKE_AT.with(|w| w.set(Some(w.get().map_or(self.0, |t| t.min(self.0)))));
        Poll::Pending
    }
}

struct Unpark(std::thread::Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// Run `fut` on this thread: poll it, then park until woken or until the
/// earliest [`Deadline`] it is waiting for. A wake-up that comes between the
/// poll and the park is not lost (the thread's park token keeps it).
pub(crate) fn block_on<T>(fut: impl Future<Output = T>) -> T {
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut fut = std::pin::pin!(fut);
    loop {
        WAKE_AT.with(|w| w.set(None));
        if let Poll::Ready(t) = fut.as_mut().poll(&mut cx) {
            return t;
        }
        match WAKE_AT.with(|w| w.get()) {
            Some(at) => std::thread::park_timeout(at.saturating_duration_since(Instant::now())),
            None => std::thread::park(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_deadline_wakes_the_loop_without_any_waker() {
        let at = Instant::now() + Duration::from_millis(20);
        block_on(Deadline(at));
        assert!(Instant::now() >= at);
    }

    #[test]
    fn a_wake_from_another_thread_ends_the_park_before_the_deadline() {
        let (tx, rx) = async_channel::bounded(1);
        std::thread::spawn(move || tx.send_blocking(7).expect("send"));
        let far = Deadline(Instant::now() + Duration::from_secs(60));
        let got = block_on(futures_lite::future::or(async { rx.recv().await.ok() }, async {
            far.await;
            None
        }));
        assert_eq!(got, Some(7));
    }
}
