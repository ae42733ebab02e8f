//! The bounded pool that runs handlers: a fixed number of threads taking
//! jobs from one queue.
//!
//! The queue itself is unbounded on purpose: the connection thread hands
//! work over and must never block doing so. What bounds it is the machine:
//! it holds at most `max_concurrency` requests in flight (when set), and
//! every queued request keeps its lease extended while it waits.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};

type Job = Box<dyn FnOnce() + Send>;

#[derive(Debug)]
pub(crate) struct Pool {
    /// `None` once closed: the threads finish their jobs and exit.
    queue: Mutex<Option<mpsc::Sender<Job>>>,
}

impl Pool {
    /// Start `threads` threads named `<name>-<i>`, each inside `dispatch`.
    pub fn start(threads: usize, name: &str, dispatch: &tracing::Dispatch) -> std::io::Result<Pool> {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads.max(1) {
            let rx = rx.clone();
            let dispatch = dispatch.clone();
            std::thread::Builder::new().name(format!("{name}-{i}")).spawn(move || {
                tracing::dispatcher::with_default(&dispatch, || {
                    loop {
                        // The lock is held only while waiting for the next job.
                        let job = rx.lock().unwrap_or_else(|p| p.into_inner()).recv();
                        match job {
                            Ok(job) => job(),
                            Err(mpsc::RecvError) => return,
                        }
                    }
                })
            })?;
        }
        Ok(Pool { queue: Mutex::new(Some(tx)) })
    }

    /// Queue a job; false once the pool is closed. Never blocks for long.
    pub fn execute(&self, job: impl FnOnce() + Send + 'static) -> bool {
        let queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        queue.as_ref().is_some_and(|tx| tx.send(Box::new(job)).is_ok())
    }

    /// Let the threads exit once the queue is empty.
    pub fn close(&self) {
        self.queue.lock().unwrap_or_else(|p| p.into_inner()).take();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_run_off_the_caller_thread_and_close_stops_the_threads() {
        let pool = Pool::start(2, "t-pool", &tracing::Dispatch::none()).expect("starts");
        let (tx, rx) = mpsc::channel();
        for n in 0..4 {
            let tx = tx.clone();
            assert!(pool.execute(move || {
                tx.send((n, std::thread::current().name().map(String::from))).expect("send")
            }));
        }
        let mut seen: Vec<_> = (0..4).map(|_| rx.recv().expect("ran")).collect();
        seen.sort();
        assert!(seen.iter().all(|(_, name)| name.as_deref().is_some_and(|n| n.starts_with("t-pool-"))));
        pool.close();
        assert!(!pool.execute(|| {}), "a closed pool takes no work");
    }
}
