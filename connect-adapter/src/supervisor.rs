//! The supervisor of the connection thread.
//!
//! The connection (socket, heartbeats, leases, timers) runs on its own OS
//! thread so that user code can never starve it. If that thread dies (a
//! panic: a bug in this project or a dependency), the supervisor starts a new
//! one with everything the old one carried: the machine's durable state
//! (in-flight requests with their newest lease ids, replies not yet acked),
//! the inbox where handlers' replies keep arriving, and the cancel signals of
//! running handlers. So a reply produced after the respawn is still delivered.
//!
//! Restart policy: the first restart is immediate, later ones wait
//! [`Backoff`] delays (doubling to a cap, with jitter from the seed); the
//! count resets when a connection becomes ACTIVE again ([`Health::mark_ready`]).
//! After `max_consecutive_crashes` crashes in a row the supervisor gives up and
//! reports a fatal error; it never gives up silently.

use std::any::Any;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use connect_core::backoff::{Backoff, BackoffConfig};

/// How an incarnation of the connection thread ended.
#[derive(Debug)]
pub enum Exit<C> {
    /// The worker closed for good (shutdown or a fatal error): stop.
    Finished,
    /// It panicked; `carry` is what the next incarnation needs.
    Crashed { carry: C, panic: String },
}

/// Restart policy.
#[derive(Clone, Debug)]
pub struct SupervisorConfig {
    /// Delays after the first (immediate) restart.
    pub backoff: BackoffConfig,
    /// Give up after this many crashes without an ACTIVE connection between them.
    pub max_consecutive_crashes: u32,
    pub seed: u64,
}

impl Default for SupervisorConfig {
    fn default() -> Self {
        SupervisorConfig {
            backoff: BackoffConfig {
                initial: Duration::from_millis(500),
                max: Duration::from_secs(30),
                immediate_first: true,
                ..BackoffConfig::default()
            },
            max_consecutive_crashes: 10,
            seed: 0,
        }
    }
}

/// Shared between the supervisor, the connection thread and the user's handle.
#[derive(Debug, Default)]
pub struct Health {
    consecutive_crashes: AtomicU32,
    restarts: AtomicU64,
    wake: (Mutex<bool>, Condvar),
}

impl Health {
    /// A connection became ACTIVE: the thread started successfully.
    pub fn mark_ready(&self) {
        self.consecutive_crashes.store(0, Ordering::Relaxed);
    }

    /// Total restarts since the worker started.
    pub fn restarts(&self) -> u64 {
        self.restarts.load(Ordering::Relaxed)
    }

    /// Cut a pending restart delay short (shutdown was requested: the next
    /// incarnation should start at once to flush replies and close).
    pub fn wake(&self) {
        let (lock, cv) = &self.wake;
        *lock.lock().unwrap_or_else(|p| p.into_inner()) = true;
        cv.notify_all();
    }

    fn sleep(&self, d: Duration) {
        let (lock, cv) = &self.wake;
        let guard = lock.lock().unwrap_or_else(|p| p.into_inner());
        let (mut woken, _) = cv.wait_timeout_while(guard, d, |w| !*w).unwrap_or_else(|p| p.into_inner());
        *woken = false;
    }
}

/// Start the supervisor thread, which runs `body` on a fresh thread named
/// `name` per incarnation. `on_give_up` is called with a message if the
/// crashes never stop. The whole thing runs inside `dispatch`, so the user's
/// tracing subscriber sees the connection thread's logs.
pub fn spawn<C, F, G>(
    name: String,
    config: SupervisorConfig,
    carry: C,
    health: Arc<Health>,
    dispatch: tracing::Dispatch,
    body: F,
    on_give_up: G,
) -> std::io::Result<JoinHandle<()>>
where
    C: Send + 'static,
    F: Fn(C) -> Exit<C> + Send + Sync + 'static,
    G: FnOnce(String) + Send + 'static,
{
    let body = Arc::new(body);
    let thread_name = name.clone();
    let start = move |carry: C, body: &Arc<F>, dispatch: &tracing::Dispatch| {
        let body = Arc::clone(body);
        let dispatch = dispatch.clone();
        std::thread::Builder::new()
            .name(thread_name.clone())
            .spawn(move || tracing::dispatcher::with_default(&dispatch, || body(carry)))
    };
    // The first incarnation starts here so that a spawn failure is the caller's error.
    let first = start(carry, &body, &dispatch)?;
    std::thread::Builder::new().name(format!("{name}-supervisor")).spawn(move || {
        tracing::dispatcher::with_default(&dispatch.clone(), || {
            let mut backoff = Backoff::new(config.backoff.clone(), config.seed);
            let mut running = first;
            loop {
                let (carry, panic) = match running.join() {
                    Ok(Exit::Finished) => return,
                    Ok(Exit::Crashed { carry, panic }) => (carry, panic),
                    Err(p) => {
                        // The body let a panic escape: nothing to resume from.
                        let msg =
                            format!("connection thread died and its state was lost: {}", panic_message(&*p));
                        tracing::error!("{msg}");
                        on_give_up(msg);
                        return;
                    }
                };
                let crashes = health.consecutive_crashes.fetch_add(1, Ordering::Relaxed) + 1;
                if crashes == 1 {
                    backoff.reset();
                }
                if crashes > config.max_consecutive_crashes {
                    let msg =
                        format!("connection thread crashed {crashes} times in a row; giving up: {panic}");
                    tracing::error!("{msg}");
                    on_give_up(msg);
                    return;
                }
                // `immediate_first`: the first restart after a reset is at once.
                let delay = backoff.next_delay();
                tracing::warn!(
                    crashes,
                    delay_ms = delay.as_millis() as u64,
                    "connection thread panicked ({panic}); restarting"
                );
                if !delay.is_zero() {
                    health.sleep(delay);
                }
                health.restarts.fetch_add(1, Ordering::Relaxed);
                running = match start(carry, &body, &dispatch) {
                    Ok(h) => h,
                    Err(e) => {
                        let msg = format!("could not start a connection thread: {e}");
                        tracing::error!("{msg}");
                        on_give_up(msg);
                        return;
                    }
                };
            }
        })
    })
}

/// The text of a panic payload.
pub fn panic_message(p: &(dyn Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::panic::{AssertUnwindSafe, catch_unwind};
    use std::sync::mpsc;

    fn quiet() -> SupervisorConfig {
        SupervisorConfig {
            backoff: BackoffConfig {
                initial: Duration::from_millis(1),
                max: Duration::from_millis(2),
                immediate_first: true,
                ..BackoffConfig::default()
            },
            max_consecutive_crashes: 3,
            seed: 7,
        }
    }

    /// A body that panics twice, then finishes: the carried counter survives
    /// each crash, and each incarnation runs on a new thread.
    #[test]
    fn crashed_bodies_are_restarted_with_what_they_carried() {
        let (tx, rx) = mpsc::channel();
        let health = Arc::new(Health::default());
        let sup = spawn(
            "t-conn".into(),
            quiet(),
            0u32,
            health.clone(),
            tracing::Dispatch::none(),
            move |n: u32| {
                tx.send((n, std::thread::current().id())).expect("send");
                match catch_unwind(AssertUnwindSafe(|| assert!(n >= 2, "boom {n}"))) {
                    Ok(()) => Exit::Finished,
                    Err(p) => Exit::Crashed { carry: n + 1, panic: panic_message(&*p) },
                }
            },
            |_| panic!("must not give up"),
        )
        .expect("spawns");
        sup.join().expect("supervisor ends");
        let seen: Vec<_> = rx.try_iter().collect();
        assert_eq!(seen.iter().map(|s| s.0).collect::<Vec<_>>(), vec![0, 1, 2]);
        assert_ne!(seen[0].1, seen[1].1, "a new thread per incarnation");
        assert_eq!(health.restarts(), 2);
    }

    /// Crashes that never stop end in a reported fatal error, not a hang.
    #[test]
    fn endless_crashes_give_up_loudly() {
        let (tx, rx) = mpsc::channel();
        let sup = spawn(
            "t-conn".into(),
            quiet(),
            (),
            Arc::new(Health::default()),
            tracing::Dispatch::none(),
            |()| Exit::Crashed { carry: (), panic: "always".into() },
            move |msg| tx.send(msg).expect("send"),
        )
        .expect("spawns");
        sup.join().expect("supervisor ends");
        let msg = rx.try_recv().expect("gave up");
        assert!(msg.contains("4 times"), "{msg}");
    }

    /// A successful start (ACTIVE) resets the count, so occasional crashes
    /// over a long life never add up to giving up.
    #[test]
    fn a_ready_connection_resets_the_crash_count() {
        let health = Arc::new(Health::default());
        let h2 = health.clone();
        let sup = spawn(
            "t-conn".into(),
            quiet(),
            0u32,
            health.clone(),
            tracing::Dispatch::none(),
            move |n: u32| {
                h2.mark_ready();
                if n < 8 { Exit::Crashed { carry: n + 1, panic: "again".into() } } else { Exit::Finished }
            },
            |msg| panic!("gave up: {msg}"),
        )
        .expect("spawns");
        sup.join().expect("supervisor ends");
        assert_eq!(health.restarts(), 8);
    }
}
