//! `connect-dev`: a local Inngest Connect gateway and executor, the embedded
//! default for development, tests, demos and benchmarks.
//!
//! It speaks Inngest's protocol closely enough that the Inngest JS SDK worker
//! connects to it unchanged: `POST /v0/connect/start` and `/v0/connect/flush`
//! and the event and run APIs on the API address, the WebSocket gateway on the
//! gateway address. The protocol logic is `connect_core::gateway` (sans-IO);
//! this crate is its tokio shell. All state is in memory and gone on exit.
//!
//! [`DevServer::spawn`] runs one on its own thread with its own tokio runtime,
//! so callers need no runtime (and a busy caller runtime cannot delay its
//! heartbeat answers):
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! let dev = connect_dev::DevServer::spawn(connect_dev::DevConfig {
//!     heartbeat_interval: Duration::from_millis(250),
//!     ..connect_dev::DevConfig::ephemeral()
//! })?;
//! // point a worker at dev.api_url() (and optionally dev.gateway_url()), then:
//! dev.wait_for_function("my-app-hello", Duration::from_secs(10))?;
//! let event_id = dev.send_event("demo/hello", serde_json::json!({"name": "Ada"}))?;
//! let run = dev.wait_for_run_end(&event_id, Duration::from_secs(10))?;
//! println!("{:?} {:?}", run.status, run.output);
//! # Ok(()) }
//! ```

mod api;
mod core;
mod ws;

use std::net::SocketAddr;
use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant};

use connect_core::auth::SigningKey;
use connect_core::gateway::GatewayConfig;
pub use connect_core::gateway::GatewayConfigError;
use connect_core::gateway::executor::ExecutorConfig;
pub use connect_core::gateway::run::{Attempt, AttemptConn, ConnStatus, ConnectionInfo, Run, RunStatus};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use crate::core::{Cmd, EventIn, Reply};

/// How a dev server is set up. `Default` is the binary's: Inngest's dev ports and intervals.
#[derive(Clone, Debug)]
pub struct DevConfig {
    /// Start/flush, events, runs. Default `127.0.0.1:8288`.
    pub api_listen: SocketAddr,
    /// The WebSocket gateway. Default `127.0.0.1:8289`.
    pub gateway_listen: SocketAddr,
    /// Sent in READY. Default 10 s.
    pub heartbeat_interval: Duration,
    /// Sent in READY. Default 30 s.
    pub extend_lease_interval: Duration,
    /// `None`: 4 x `extend_lease_interval`, as Inngest (2 min for 30 s).
    pub lease_duration: Option<Duration>,
    /// Time a worker has to close after GATEWAY_CLOSING. Default 25 s.
    pub drain_timeout: Duration,
    /// Time a socket has to send WORKER_CONNECT. Default 5 s.
    pub hello_timeout: Duration,
    /// With a key, start and flush calls must bring its hashed form (401 otherwise). Default: none (dev mode).
    pub signing_key: Option<SigningKey>,
    /// Retries for functions that do not set them. Default 3, as Inngest.
    pub default_retries: u32,
    /// Delay before a retry. Default 0: retries start at once.
    pub retry_delay: Duration,
    /// Seeds ids and lease ids. Default: from the clock.
    pub seed: Option<u64>,
}

impl Default for DevConfig {
    fn default() -> Self {
        DevConfig {
            api_listen: SocketAddr::from(([127, 0, 0, 1], 8288)),
            gateway_listen: SocketAddr::from(([127, 0, 0, 1], 8289)),
            heartbeat_interval: Duration::from_secs(10),
            extend_lease_interval: Duration::from_secs(30),
            lease_duration: None,
            drain_timeout: Duration::from_secs(25),
            hello_timeout: Duration::from_secs(5),
            signing_key: None,
            default_retries: 3,
            retry_delay: Duration::ZERO,
            seed: None,
        }
    }
}

impl DevConfig {
    /// Defaults on ephemeral loopback ports: for tests and examples.
    pub fn ephemeral() -> Self {
        DevConfig {
            api_listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            gateway_listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            ..DevConfig::default()
        }
    }

    fn seed(&self) -> u64 {
        self.seed.unwrap_or_else(|| {
            let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
            t.as_nanos() as u64 ^ u64::from(std::process::id())
        })
    }

    /// The checks [`DevServer::spawn`] makes: intervals and deadlines in
    /// range (a heartbeat interval of 10 ms to 5 minutes, ...), as
    /// [`GatewayConfig::validate`] defines them. `what` names the field,
    /// which is also the binary's flag (`heartbeat_interval`, `--heartbeat-interval`).
    pub fn validate(&self) -> Result<(), GatewayConfigError> {
        self.gateway_config().validate()
    }

    pub(crate) fn gateway_config(&self) -> GatewayConfig {
        GatewayConfig {
            heartbeat_interval: self.heartbeat_interval,
            extend_lease_interval: self.extend_lease_interval,
            lease_duration: self.lease_duration,
            drain_timeout: self.drain_timeout,
            hello_timeout: self.hello_timeout,
            signing_key: self.signing_key.as_ref().map(|k| k.hashed().clone()),
            seed: self.seed(),
            ..GatewayConfig::default()
        }
    }

    pub(crate) fn executor_config(&self) -> ExecutorConfig {
        ExecutorConfig {
            default_retries: self.default_retries,
            retry_delay: self.retry_delay,
            seed: self.seed(),
            ..ExecutorConfig::default()
        }
    }
}

/// Totals measured at this gateway. `Display` is the demo's summary line:
/// `runs=N completed=N failed=N heartbeats=H late=L max_gap_ms=X interval_ms=Y`.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct Summary {
    pub runs: usize,
    pub completed: usize,
    pub failed: usize,
    pub cancelled: usize,
    pub running: usize,
    /// Heartbeats received over every connection.
    pub heartbeats: u64,
    /// Gaps over 1.25 x the interval, over every connection.
    pub late: u64,
    pub max_gap: Duration,
    pub interval: Duration,
}

impl Summary {
    pub(crate) fn of(server: &connect_core::gateway::Server, interval: Duration) -> Summary {
        let c = server.executor().run_counts();
        let conns = server.connections();
        Summary {
            runs: c.running + c.completed + c.failed + c.cancelled,
            completed: c.completed,
            failed: c.failed,
            cancelled: c.cancelled,
            running: c.running,
            heartbeats: conns.iter().map(|c| c.heartbeats).sum(),
            late: conns.iter().map(|c| c.late).sum(),
            max_gap: conns.iter().map(|c| c.max_gap).max().unwrap_or_default(),
            interval,
        }
    }
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "runs={} completed={} failed={} heartbeats={} late={} max_gap_ms={:.1} interval_ms={}",
            self.runs,
            self.completed,
            self.failed,
            self.heartbeats,
            self.late,
            self.max_gap.as_secs_f64() * 1000.0,
            self.interval.as_millis()
        )
    }
}

/// A run that ended, as [`DevServer::run_ends`] reports it.
#[derive(Clone, Debug, PartialEq)]
pub struct RunEnd {
    pub run_id: String,
    pub event_id: String,
    pub status: RunStatus,
    /// When the server ended it (the step that handled the final reply).
    pub at: Instant,
}

/// What went wrong talking to a dev server.
#[derive(Debug, thiserror::Error)]
pub enum DevError {
    #[error("could not start the dev server: {0}")]
    Io(#[from] std::io::Error),
    #[error("could not listen on {addr} ({what}): {source}")]
    Bind { addr: std::net::SocketAddr, what: &'static str, source: std::io::Error },
    #[error("invalid dev server configuration: {0}")]
    Config(#[from] GatewayConfigError),
    #[error("the dev server has shut down")]
    ShutDown,
    #[error("timed out after {0:?} waiting for {1}")]
    Timeout(Duration, String),
    #[error("event {0} started no runs (is a worker serving a function it triggers?)")]
    NoRuns(String),
}

/// A running dev server. Dropping it shuts it down.
#[derive(Debug)]
pub struct DevServer {
    api_addr: SocketAddr,
    gateway_addr: SocketAddr,
    heartbeat_interval: Duration,
    client: DevClient,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// A cheap, cloneable handle with async methods (runtime-agnostic), for callers inside an async runtime.
#[derive(Clone, Debug)]
pub struct DevClient {
    core: mpsc::UnboundedSender<Cmd>,
}

/// How long a blocking call without its own timeout waits for the server to answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

impl DevServer {
    /// Bind both listeners and start the server on its own thread. Errors if
    /// the config is out of range ([`DevConfig::validate`]) or a port is taken.
    pub fn spawn(config: DevConfig) -> Result<DevServer, DevError> {
        config.validate()?;
        let bind = |addr, what| {
            std::net::TcpListener::bind(addr).map_err(|source| DevError::Bind { addr, what, source })
        };
        let api = bind(config.api_listen, "the API, --api-listen")?;
        let gateway = bind(config.gateway_listen, "the gateway, --gateway-listen")?;
        api.set_nonblocking(true)?;
        gateway.set_nonblocking(true)?;
        let (api_addr, gateway_addr) = (api.local_addr()?, gateway.local_addr()?);
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let (tx, rx) = mpsc::unbounded_channel();
        let server = core::new_server(&config);
        let max_frame = server.gateway().config().max_frame;
        let core_tx = tx.clone();
        let heartbeat_interval = config.heartbeat_interval;
        let dispatch = tracing::dispatcher::get_default(|d| d.clone());
        let thread = std::thread::Builder::new().name("connect-dev".into()).spawn(move || {
            let _guard = tracing::dispatcher::set_default(&dispatch);
            runtime.block_on(async move {
                let api = tokio::net::TcpListener::from_std(api).expect("api listener");
                let gateway = tokio::net::TcpListener::from_std(gateway).expect("gateway listener");
                tokio::spawn(ws::serve(gateway, core_tx.clone(), max_frame));
                tokio::spawn(api::serve(api, api::Api { core: core_tx, gateway_addr, heartbeat_interval }));
                core::run(server, rx).await;
            });
        })?;
        tracing::info!(api = %api_addr, gateway = %gateway_addr, "connect-dev listening");
        Ok(DevServer {
            api_addr,
            gateway_addr,
            heartbeat_interval,
            client: DevClient { core: tx },
            thread: Some(thread),
        })
    }

    /// `http://127.0.0.1:PORT`: what workers use as their API base URL.
    pub fn api_url(&self) -> String {
        format!("http://{}", self.api_addr)
    }

    /// `ws://127.0.0.1:PORT/v0/connect` (the start call also returns it).
    pub fn gateway_url(&self) -> String {
        format!("ws://{}/v0/connect", self.gateway_addr)
    }

    pub fn api_addr(&self) -> SocketAddr {
        self.api_addr
    }

    pub fn gateway_addr(&self) -> SocketAddr {
        self.gateway_addr
    }

    /// An async handle to the same server.
    pub fn client(&self) -> DevClient {
        self.client.clone()
    }

    /// Send an event, as `POST /e/{key}` does. Returns its id.
    pub fn send_event(&self, name: &str, data: Value) -> Result<String, DevError> {
        let events = vec![EventIn { name: name.to_owned(), data, id: None, ts: None }];
        let mut ids = self.block(ANSWER_TIMEOUT, "event ids", |reply| Cmd::Events { events, reply })?;
        ids.pop().ok_or(DevError::ShutDown)
    }

    /// Send several events at once (one round trip). Returns their ids in order.
    pub fn send_events(
        &self,
        events: impl IntoIterator<Item = (String, Value)>,
    ) -> Result<Vec<String>, DevError> {
        let events: Vec<EventIn> =
            events.into_iter().map(|(name, data)| EventIn { name, data, id: None, ts: None }).collect();
        self.block(ANSWER_TIMEOUT, "event ids", |reply| Cmd::Events { events, reply })
    }

    pub fn run(&self, run_id: &str) -> Result<Option<Run>, DevError> {
        let id = run_id.to_owned();
        self.block(ANSWER_TIMEOUT, "a run", move |reply| {
            Cmd::Query(Box::new(move |s| reply(s.run(&id).cloned())))
        })
    }

    pub fn runs_for_event(&self, event_id: &str) -> Result<Vec<Run>, DevError> {
        let id = event_id.to_owned();
        self.block(ANSWER_TIMEOUT, "runs", move |reply| {
            Cmd::Query(Box::new(move |s| reply(s.runs_for_event(&id).into_iter().cloned().collect())))
        })
    }

    /// Block until the run (a run id) or the runs of an event (an event id) have ended; returns the (first) run.
    pub fn wait_for_run_end(&self, id: &str, timeout: Duration) -> Result<Run, DevError> {
        let mut runs = self.wait_for_runs_end(id, timeout)?;
        if runs.is_empty() {
            return Err(DevError::NoRuns(id.to_owned()));
        }
        Ok(runs.swap_remove(0))
    }

    /// Block until every run of an event (or the one run) has ended.
    pub fn wait_for_runs_end(&self, id: &str, timeout: Duration) -> Result<Vec<Run>, DevError> {
        let deadline = Instant::now() + timeout;
        let what = format!("the end of {id}");
        let id = id.to_owned();
        self.block(timeout, &what, move |reply| Cmd::Wait(core::run_end_waiter(id, deadline, reply)))
    }

    /// Block until a Ready connection serves `function` (a slug, e.g. `my-app-hello`).
    pub fn wait_for_function(
        &self,
        function: &str,
        timeout: Duration,
    ) -> Result<Vec<ConnectionInfo>, DevError> {
        let deadline = Instant::now() + timeout;
        let f = Some(function.to_owned());
        self.block(timeout, &format!("function {function}"), move |reply| {
            Cmd::Wait(core::connections_waiter(core::ready(1, f), deadline, reply))
        })
    }

    /// Every run that ends from now on, as it ends: for callers that follow many runs at
    /// once (a waiter per run is checked on every step, a channel costs one send per end).
    pub fn run_ends(&self) -> Result<std_mpsc::Receiver<RunEnd>, DevError> {
        let (tx, rx) = std_mpsc::channel();
        self.client.core.send(Cmd::WatchRunEnds(tx)).map_err(|_| DevError::ShutDown)?;
        Ok(rx)
    }

    /// Block until `n` connections are Ready.
    pub fn wait_for_connections(&self, n: usize, timeout: Duration) -> Result<Vec<ConnectionInfo>, DevError> {
        let deadline = Instant::now() + timeout;
        self.block(timeout, &format!("{n} ready connections"), move |reply| {
            Cmd::Wait(core::connections_waiter(core::ready(n, None), deadline, reply))
        })
    }

    /// Block until `pred` holds for the connections seen (all of them, oldest first); returns them.
    pub fn wait_for_connections_where(
        &self,
        mut pred: impl FnMut(&[ConnectionInfo]) -> bool + Send + 'static,
        timeout: Duration,
    ) -> Result<Vec<ConnectionInfo>, DevError> {
        let deadline = Instant::now() + timeout;
        self.block(timeout, "a connection condition", move |reply| {
            Cmd::Wait(core::connections_waiter(move |_, c| pred(c), deadline, reply))
        })
    }

    /// Runs by status and heartbeats over every connection, as measured here.
    pub fn summary(&self) -> Result<Summary, DevError> {
        let interval = self.heartbeat_interval;
        self.block(ANSWER_TIMEOUT, "summary", move |reply| {
            Cmd::Query(Box::new(move |s| reply(Summary::of(s, interval))))
        })
    }

    /// The heartbeat interval this server sends in READY.
    pub fn heartbeat_interval(&self) -> Duration {
        self.heartbeat_interval
    }

    /// Every connection seen, oldest first, with its heartbeat record.
    pub fn connections(&self) -> Result<Vec<ConnectionInfo>, DevError> {
        self.block(ANSWER_TIMEOUT, "connections", |reply| {
            Cmd::Query(Box::new(move |s| reply(s.connections())))
        })
    }

    /// Registered function slugs.
    pub fn functions(&self) -> Result<Vec<String>, DevError> {
        self.block(ANSWER_TIMEOUT, "functions", |reply| {
            Cmd::Query(Box::new(move |s| reply(s.executor().functions())))
        })
    }

    /// GATEWAY_CLOSING on every connection, 1001 after the drain timeout; new
    /// connections join a fresh gateway group. Returns how many were drained.
    pub fn drain(&self) -> Result<usize, DevError> {
        self.block(ANSWER_TIMEOUT, "drain", |reply| Cmd::Drain { reply })
    }

    /// Fault injection: refuse the next `n` lease extensions with a NACK, as
    /// if the gateway had lost those leases. Replaces what is left of an
    /// earlier call's budget (so that calls made while no lease is being
    /// extended do not pile up onto the next one); `0` turns it off. The worker stops extending and
    /// cancels the handler; the lease expires here and the attempt is retried
    /// (on any worker), so the function may run again: the one duplicate the
    /// protocol allows. For chaos tests.
    pub fn nack_extensions(&self, n: usize) -> Result<(), DevError> {
        self.block(ANSWER_TIMEOUT, "nack_extensions", |reply| Cmd::NackExtensions { n, reply })
    }

    pub fn cancel(&self, run_id: &str) -> Result<bool, DevError> {
        let run_id = run_id.to_owned();
        self.block(ANSWER_TIMEOUT, "cancel", |reply| Cmd::Cancel { run_id, reply })
    }

    /// Close every connection (1001 `connect_gateway_closing`) and stop the server thread.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        let Some(thread) = self.thread.take() else { return };
        let _ = self.block(Duration::from_secs(5), "shutdown", |reply| Cmd::Shutdown { reply });
        let _ = thread.join(); // `core::run` has returned, so the runtime is winding down.
    }

    fn block<T: Send + 'static>(
        &self,
        timeout: Duration,
        what: &str,
        make: impl FnOnce(Reply<T>) -> Cmd,
    ) -> Result<T, DevError> {
        let (tx, rx) = std_mpsc::sync_channel(1);
        self.client.core.send(make(Box::new(move |v| drop(tx.send(v))))).map_err(|_| DevError::ShutDown)?;
        match rx.recv_timeout(timeout) {
            Ok(v) => Ok(v),
            Err(std_mpsc::RecvTimeoutError::Timeout) => Err(DevError::Timeout(timeout, what.to_owned())),
            Err(std_mpsc::RecvTimeoutError::Disconnected) => {
                // A waiter dropped at its deadline also lands here.
                Err(DevError::Timeout(timeout, what.to_owned()))
            }
        }
    }
}

impl Drop for DevServer {
    fn drop(&mut self) {
        self.stop();
    }
}

impl DevClient {
    pub async fn send_event(&self, name: &str, data: Value) -> Result<String, DevError> {
        let events = vec![EventIn { name: name.to_owned(), data, id: None, ts: None }];
        self.ask(|reply| Cmd::Events { events, reply }).await?.pop().ok_or(DevError::ShutDown)
    }

    pub async fn run(&self, run_id: &str) -> Result<Option<Run>, DevError> {
        let id = run_id.to_owned();
        self.ask(move |reply| Cmd::Query(Box::new(move |s| reply(s.run(&id).cloned())))).await
    }

    pub async fn wait_for_run_end(&self, id: &str, timeout: Duration) -> Result<Run, DevError> {
        let deadline = Instant::now() + timeout;
        let key = id.to_owned();
        let runs = self.ask(move |reply| Cmd::Wait(core::run_end_waiter(key, deadline, reply))).await;
        match runs {
            Ok(mut runs) if !runs.is_empty() => Ok(runs.swap_remove(0)),
            Ok(_) => Err(DevError::NoRuns(id.to_owned())),
            Err(_) => Err(DevError::Timeout(timeout, format!("the end of {id}"))),
        }
    }

    pub async fn wait_for_function(
        &self,
        function: &str,
        timeout: Duration,
    ) -> Result<Vec<ConnectionInfo>, DevError> {
        let deadline = Instant::now() + timeout;
        let f = Some(function.to_owned());
        self.ask(move |reply| Cmd::Wait(core::connections_waiter(core::ready(1, f), deadline, reply)))
            .await
            .map_err(|_| DevError::Timeout(timeout, format!("function {function}")))
    }

    pub async fn connections(&self) -> Result<Vec<ConnectionInfo>, DevError> {
        self.ask(|reply| Cmd::Query(Box::new(move |s| reply(s.connections())))).await
    }

    pub async fn drain(&self) -> Result<usize, DevError> {
        self.ask(|reply| Cmd::Drain { reply }).await
    }

    async fn ask<T: Send + 'static>(&self, make: impl FnOnce(Reply<T>) -> Cmd) -> Result<T, DevError> {
        let (tx, rx) = oneshot::channel();
        self.core.send(make(Box::new(move |v| drop(tx.send(v))))).map_err(|_| DevError::ShutDown)?;
        rx.await.map_err(|_| DevError::ShutDown)
    }
}
