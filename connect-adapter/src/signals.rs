//! Graceful shutdown on SIGINT and SIGTERM, the same way for every adapter:
//! a small thread blocked on `signal-hook`, so that a signal is heard even
//! when every thread of the user's runtime is busy in a handler.
//!
//! The first SIGINT or SIGTERM starts the graceful shutdown (the session logs
//! what it waits for). A second SIGINT during it quits at once, as users
//! expect of Ctrl-C pressed twice: the process ends as a default SIGINT would
//! end it (status 130 in a shell), abandoning what is still running; those
//! runs are retried by the gateway once their leases expire. A second SIGTERM
//! is only logged: whoever sends SIGTERM (systemd, Kubernetes) follows it
//! with SIGKILL at its own deadline.

/// A listening thread; [`close`](SignalListener::close) (or dropping it) ends it without a signal.
#[derive(Debug)]
pub struct SignalListener {
    #[cfg(unix)]
    handle: signal_hook::iterator::Handle,
}

/// Call `on_signal` on the first SIGINT or SIGTERM; quit the process on a
/// second SIGINT. Elsewhere than on Unix this listens for nothing.
pub fn on_shutdown_signal(on_signal: impl FnOnce() + Send + 'static) -> std::io::Result<SignalListener> {
    #[cfg(unix)]
    {
        use signal_hook::consts::{SIGINT, SIGTERM};
        let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])?;
        let handle = signals.handle();
        let dispatch = tracing::dispatcher::get_default(|d| d.clone());
        std::thread::Builder::new().name("connect-signals".into()).spawn(move || {
            tracing::dispatcher::with_default(&dispatch, || {
                let mut first = Some(on_signal);
                for signal in signals.forever() {
                    let name = if signal == SIGINT { "SIGINT" } else { "SIGTERM" };
                    match first.take() {
                        Some(on_signal) => {
                            let hint =
                                if signal == SIGINT { " (press Ctrl-C again to quit at once)" } else { "" };
                            tracing::info!("{name} received: shutting down gracefully{hint}");
                            on_signal();
                        }
                        None if signal == SIGINT => {
                            tracing::warn!(
                                "second SIGINT during the graceful shutdown: quitting now; runs still in \
                                 flight are retried by the gateway when their leases expire"
                            );
                            quit_as_sigint();
                        }
                        None => tracing::info!("{name} received again: already shutting down"),
                    }
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

/// End the process the way the default SIGINT action does, so that a shell
/// or supervisor sees "killed by SIGINT"; exit 130 if that is not possible.
#[cfg(unix)]
fn quit_as_sigint() {
    let _ = signal_hook::low_level::emulate_default_handler(signal_hook::consts::SIGINT);
    std::process::exit(130);
}

impl SignalListener {
    /// Stop listening (the worker closed); the thread ends.
    pub fn close(&self) {
        #[cfg(unix)]
        self.handle.close();
    }
}

impl Drop for SignalListener {
    fn drop(&mut self) {
        self.close();
    }
}
