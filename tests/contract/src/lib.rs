//! The contract every adapter keeps, written once and run against each of
//! them (tokio, blocking, async-std, smol) with connect-dev over loopback.
//!
//! A scenario in [`scenarios`] is generic over an [`Adapter`]: it starts a
//! worker through [`Adapter::start`] with plain blocking handler bodies (each
//! adapter runs them its own way: inside an async task on the user's
//! executor, or on the handler pool), drives connect-dev, and asserts on
//! behaviour seen at the gateway, never on timing. [`contract_suite!`]
//! instantiates every scenario as a `#[test]` for one adapter.
//!
//! Every wait is bounded by [`WAIT`].

pub mod adapters;
pub mod scenarios;

use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use connect_adapter::{Ctx, Function, HandlerResult};
use connect_core::worker::ConnectionState;
use connect_dev::{DevConfig, DevServer};

/// Every wait in the suite is bounded by this.
pub const WAIT: Duration = Duration::from_secs(30);

/// A handler body, written once; each adapter wraps it in its own kind of handler.
pub type Body = Arc<dyn Fn(Ctx) -> HandlerResult + Send + Sync>;

/// The worker a scenario wants.
pub struct Spec {
    pub app: String,
    pub instance_id: String,
    pub api_url: String,
    pub functions: Vec<(Function, Body)>,
    /// Threads that run handlers (runtime workers, pool threads).
    pub handler_threads: usize,
    /// The worker's own SIGINT/SIGTERM handling (off: signals go to the whole test process).
    pub handle_signals: bool,
    /// Signing keys; with a key the worker is in cloud mode (not dev) against connect-dev.
    pub signing_key: Option<String>,
    pub signing_key_fallback: Option<String>,
    /// How long shutdown waits for handlers (the adapter's default when `None`).
    pub shutdown_timeout: Option<Duration>,
}

impl std::fmt::Debug for Spec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let functions: Vec<_> = self.functions.iter().map(|(f, _)| f.id()).collect();
        f.debug_struct("Spec").field("app", &self.app).field("functions", &functions).finish_non_exhaustive()
    }
}

impl Spec {
    pub fn new(dev: &DevServer, app: &str) -> Self {
        Spec::at(dev.api_url(), app)
    }

    /// A spec for a dev server's API at `api_url` (one in another process).
    pub fn at(api_url: String, app: &str) -> Self {
        Spec {
            app: app.into(),
            instance_id: format!("{app}-1"),
            api_url,
            functions: Vec::new(),
            handler_threads: 2,
            handle_signals: false,
            signing_key: None,
            signing_key_fallback: None,
            shutdown_timeout: None,
        }
    }

    pub fn function(
        mut self,
        f: Function,
        body: impl Fn(Ctx) -> HandlerResult + Send + Sync + 'static,
    ) -> Self {
        self.functions.push((f, Arc::new(body)));
        self
    }
}

/// One adapter, as the suite drives it.
pub trait Adapter {
    /// The adapter's name, as the suite's modules spell it.
    const NAME: &'static str;
    /// Build and connect a worker for `spec` (dev mode unless it has a
    /// signing key, signal handling as it says, a fixed seed). Returns once
    /// `connect` has returned.
    fn start(spec: Spec) -> Box<dyn Running>;
    /// The `Debug` output (`{:?}` and `{:#?}`) of the builder `start` would connect.
    fn builder_debug(spec: Spec) -> String;
}

/// A running worker, whatever its adapter. Waits are bounded.
pub trait Running {
    fn ready(&self, timeout: Duration) -> Result<(), String>;
    fn state(&self) -> ConnectionState;
    fn shutdown(&self);
    fn closed(&self, timeout: Duration) -> Result<(), String>;
    fn restarts(&self) -> u64;
    fn inject_connection_panic(&self);
}

/// A connect-dev on ephemeral ports.
pub fn dev(heartbeat: Duration, extend: Duration) -> DevServer {
    DevServer::spawn(DevConfig {
        heartbeat_interval: heartbeat,
        extend_lease_interval: extend,
        drain_timeout: Duration::from_secs(5),
        seed: Some(7),
        ..DevConfig::ephemeral()
    })
    .expect("connect-dev starts")
}

/// A one-way latch between a handler and the test.
#[derive(Clone, Debug, Default)]
pub struct Gate(Arc<(Mutex<bool>, Condvar)>);

impl Gate {
    pub fn open(&self) {
        *self.0.0.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.0.1.notify_all();
    }

    /// Block until opened; panics after `WAIT`.
    pub fn wait(&self) {
        let guard = self.0.0.lock().unwrap_or_else(|p| p.into_inner());
        let (open, _) =
            self.0.1.wait_timeout_while(guard, WAIT, |open| !*open).unwrap_or_else(|p| p.into_inner());
        assert!(*open, "gate not opened within {WAIT:?}");
    }
}

/// Spin the CPU without yielding.
pub fn spin(d: Duration) {
    let until = Instant::now() + d;
    let mut x = 1u64;
    while Instant::now() < until {
        for _ in 0..1000 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        }
    }
    std::hint::black_box(x);
}

/// The settings every adapter's builder takes from a [`Spec`] (the builders
/// share these setters through `connect_adapter::builder_settings!`, but not
/// a type). Evaluates to the builder.
#[macro_export]
macro_rules! apply_spec {
    ($builder:expr, $spec:expr) => {{
        let spec = &$spec;
        let mut b = $builder
            .api_base_url(spec.api_url.clone())
            .instance_id(spec.instance_id.clone())
            .dev(spec.signing_key.is_none())
            .handle_signals(spec.handle_signals)
            .seed(42);
        if let Some(k) = &spec.signing_key {
            b = b.signing_key(k);
        }
        if let Some(k) = &spec.signing_key_fallback {
            b = b.signing_key_fallback(k);
        }
        if let Some(t) = spec.shutdown_timeout {
            b = b.shutdown_timeout(t);
        }
        b
    }};
}

/// Instantiate every scenario as a `#[test]` for one adapter type.
#[macro_export]
macro_rules! contract_suite {
    ($adapter:ty) => {
        $crate::contract_suite!(@each $adapter;
            handshake_reaches_active_and_the_gateway_sees_the_app,
            an_event_runs_the_function_to_completion_with_its_output,
            handler_errors_follow_the_retry_rules,
            a_panicking_handler_fails_only_its_request,
            an_output_too_large_fails_the_run_at_once_naming_the_size,
            many_concurrent_runs_all_complete,
            cpu_bound_handlers_on_every_thread_do_not_stop_heartbeats,
            a_long_handler_keeps_its_lease_by_extending_it,
            a_drain_in_the_middle_of_a_run_loses_nothing,
            a_connection_thread_panic_is_respawned_and_loses_no_run,
            shutdown_waits_for_in_flight_work,
            the_shutdown_deadline_cancels_a_stuck_handler_saying_why,
            the_gateway_hears_why_the_worker_left,
        );
    };
    (@each $adapter:ty; $($scenario:ident),* $(,)?) => {
        $(
            #[test]
            fn $scenario() {
                $crate::scenarios::$scenario::<$adapter>();
            }
        )*
    };
}
