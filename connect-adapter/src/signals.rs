//! Graceful shutdown on SIGINT and SIGTERM, the same way for every adapter
//! that has no runtime of its own to listen with (connect-blocking,
//! connect-async-std): a small thread blocked on `signal-hook`.

/// A listening thread; [`close`](SignalListener::close) ends it without a signal.
#[derive(Debug)]
pub struct SignalListener {
    #[cfg(unix)]
    handle: signal_hook::iterator::Handle,
}

/// Call `on_signal` on the first SIGINT or SIGTERM. Elsewhere than on Unix
/// this listens for nothing.
pub fn on_shutdown_signal(on_signal: impl FnOnce() + Send + 'static) -> std::io::Result<SignalListener> {
    #[cfg(unix)]
    {
        use signal_hook::consts::{SIGINT, SIGTERM};
        let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])?;
        let handle = signals.handle();
        let dispatch = tracing::dispatcher::get_default(|d| d.clone());
        std::thread::Builder::new().name("connect-signals".into()).spawn(move || {
            tracing::dispatcher::with_default(&dispatch, || {
                if signals.forever().next().is_some() {
                    tracing::info!("signal received; shutting down gracefully");
                    on_signal();
                }
            })
        })?;
        Ok(SignalListener { handle })
    }
    #[cfg(not(unix))]
    {
        drop(on_signal);
        Ok(SignalListener {})
    }
}

impl SignalListener {
    /// Stop listening (the worker closed); the thread ends.
    pub fn close(&self) {
        #[cfg(unix)]
        self.handle.close();
    }
}
