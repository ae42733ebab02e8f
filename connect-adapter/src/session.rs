//! The part of every adapter's pump loop that is not IO: feeding inputs into
//! the [`Worker`] machine, carrying out its outputs through the adapter's
//! [`Io`], and handling its events (state, invocations, lost leases, fatal
//! errors). Written once here; an adapter adds only its event loop (wait for
//! an input or the next deadline), its sockets and its way to run handlers.
//!
//! ```text
//! loop {
//!     if !session.drain_outputs(&mut machine, &mut carry, &mut writers, &io, epoch, spawn) { break }
//!     match wait(inbox, machine.poll_timeout()) {
//!         Some(input) => session.apply(&mut machine, &mut carry, &mut writers, epoch, input),
//!         None => machine.handle_timeout(now),
//!     }
//! }
//! ```

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use connect_core::wire::{ExecutorRequest, Limits};
use connect_core::worker::{
    ConnId, ConnectionState, Durable, Event, HttpId, HttpRequest, HttpResponse, Output, Reply, Worker,
    WorkerConfig,
};

use crate::supervisor::{Exit, Health, panic_message};
use crate::{CancelReason, CancelSignal};

/// What reaches a pump loop. `W` is the adapter's socket writer.
#[derive(Debug)]
pub enum Input<W> {
    /// From one incarnation's sockets and HTTP calls. `epoch` tells the
    /// events of a crashed incarnation apart: its ids mean nothing to the
    /// machine that replaced it.
    Io { epoch: u64, event: IoEvent<W> },
    /// A handler finished. Valid across incarnations.
    Reply { request_id: String, reply: Reply },
    /// Graceful shutdown requested.
    Shutdown,
    /// Test hook: panic on the connection thread.
    Panic,
}

/// What an adapter's sockets and HTTP calls report.
#[derive(Debug)]
pub enum IoEvent<W> {
    Http(HttpId, Result<HttpResponse, String>),
    Connected(ConnId, W),
    ConnectFailed(ConnId, String),
    Frame(ConnId, Bytes),
    Closed(ConnId, Option<(u16, String)>),
}

/// The pump's end of one socket.
pub trait FrameSink {
    /// Queue a binary frame. Never blocks the pump; a dead socket reports
    /// `Closed` through its reader instead. `&mut`: in connect-blocking the
    /// sink is the socket itself, written in place on the connection thread.
    fn send(&mut self, frame: Bytes);
    /// Send a close frame and let the socket go.
    fn close(self, code: u16, reason: String);
}

/// How an adapter starts IO; results come back as [`Input::Io`] tagged with `epoch`.
pub trait Io {
    /// Make the HTTP call off the pump loop.
    fn http(&self, epoch: u64, id: HttpId, request: HttpRequest);
    /// Dial a WebSocket with the subprotocol.
    fn connect(&self, epoch: u64, conn: ConnId, url: String, subprotocol: &'static str, timeout: Duration);
}

/// What one incarnation of the connection thread hands to the next after a
/// crash: the machine's durable state, the inbox where replies keep
/// arriving, and the cancel signals of running handlers.
#[derive(Debug)]
pub struct Carry<R> {
    pub durable: Durable,
    pub inbox: R,
    pub cancels: HashMap<String, CancelSignal>,
}

impl<R> Carry<R> {
    pub fn new(inbox: R) -> Self {
        Carry { durable: Durable::default(), inbox, cancels: HashMap::new() }
    }
}

/// Everything the incarnations of one worker share with its user-side handle.
/// `H` is the adapter's handler type.
pub struct Session<H> {
    pub config: WorkerConfig,
    pub handlers: HashMap<String, H>,
    pub health: std::sync::Arc<Health>,
    pub span: tracing::Span,
    fatal: Mutex<Option<String>>,
    /// The current incarnation's dials in progress, with the close to send
    /// if the machine gave up on one before it finished (it may close a
    /// connection that is still dialing: the dial is then abandoned).
    dials: Mutex<HashMap<ConnId, Option<(u16, String)>>>,
    shutdown_requested: AtomicBool,
    epoch: AtomicU64,
    on_state: Box<dyn Fn(ConnectionState) + Send + Sync>,
}

impl<H> std::fmt::Debug for Session<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").field("instance_id", &self.config.instance_id).finish_non_exhaustive()
    }
}

impl<H> Session<H> {
    pub fn new(
        config: WorkerConfig,
        handlers: HashMap<String, H>,
        span: tracing::Span,
        on_state: impl Fn(ConnectionState) + Send + Sync + 'static,
    ) -> Self {
        Session {
            config,
            handlers,
            health: Default::default(),
            span,
            fatal: Mutex::new(None),
            dials: Mutex::new(HashMap::new()),
            shutdown_requested: AtomicBool::new(false),
            epoch: AtomicU64::new(0),
            on_state: Box::new(on_state),
        }
    }

    pub fn limits(&self) -> Limits {
        self.config.limits
    }

    /// Record a fatal error (the first one wins) and report CLOSED.
    pub fn set_fatal(&self, msg: String) {
        self.fatal.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert(msg);
        (self.on_state)(ConnectionState::Closed);
    }

    pub fn fatal_error(&self) -> Option<String> {
        self.fatal.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Mark shutdown as requested, so that an incarnation started later (after
    /// a crash) shuts down at once too.
    pub fn request_shutdown(&self) {
        self.shutdown_requested.store(true, Ordering::Release);
        self.health.wake();
    }

    /// A new epoch for a new incarnation's IO.
    pub fn next_epoch(&self) -> u64 {
        self.epoch.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// A fresh machine resumed from `durable`, reading the clock now.
    pub fn new_machine(&self, durable: &mut Durable) -> Option<Worker> {
        let now = Instant::now();
        let mut config = self.config.clone();
        config.started_at = SystemTime::now();
        config.seed = config.seed.wrapping_add(self.epoch.load(Ordering::Relaxed));
        match Worker::new(config, std::mem::take(durable), now) {
            Ok(mut m) => {
                if self.shutdown_requested.load(Ordering::Acquire) {
                    m.shutdown(now);
                }
                Some(m)
            }
            Err(e) => {
                self.set_fatal(format!("invalid worker configuration: {e}"));
                None
            }
        }
    }

    /// Run one incarnation: a fresh machine, `run` pumping it, and a caught
    /// panic turned into [`Exit::Crashed`] with the durable state taken out
    /// of the machine, so the supervisor can resume it on a new thread.
    pub fn run_guarded<R>(
        &self,
        mut carry: Carry<R>,
        run: impl FnOnce(&mut Worker, &mut Carry<R>),
    ) -> Exit<Carry<R>> {
        let Some(mut machine) = self.new_machine(&mut carry.durable) else {
            return Exit::Finished;
        };
        // A crashed incarnation's dials report to nobody.
        self.dials().clear();
        let _entered = self.span.enter();
        match catch_unwind(AssertUnwindSafe(|| run(&mut machine, &mut carry))) {
            Ok(()) => Exit::Finished,
            Err(p) => {
                carry.durable = machine.take_durable();
                Exit::Crashed { carry, panic: panic_message(&*p) }
            }
        }
    }

    fn dials(&self) -> std::sync::MutexGuard<'_, HashMap<ConnId, Option<(u16, String)>>> {
        self.dials.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Feed one input into the machine.
    pub fn apply<R, W: FrameSink>(
        &self,
        machine: &mut Worker,
        carry: &mut Carry<R>,
        writers: &mut HashMap<ConnId, W>,
        epoch: u64,
        input: Input<W>,
    ) {
        let now = Instant::now();
        match input {
            Input::Shutdown => {
                let first = !matches!(
                    machine.state(),
                    ConnectionState::Paused | ConnectionState::Closing | ConnectionState::Closed
                );
                self.request_shutdown();
                machine.shutdown(now);
                if first {
                    self.log_drain_start(machine);
                }
            }
            Input::Panic => panic!("connection thread panic injected by a test"),
            Input::Reply { request_id, reply } => {
                carry.cancels.remove(&request_id);
                if let Err(e) = machine.reply(now, &request_id, reply) {
                    tracing::warn!(%request_id, "reply refused: {e}");
                }
            }
            Input::Io { epoch: e, .. } if e != epoch => {}
            Input::Io { event, .. } => match event {
                IoEvent::Http(id, result) => {
                    // The machine retries with backoff; this line is how an operator learns why.
                    if let Err(e) = &result {
                        tracing::warn!(http = id.0, "HTTP call failed: {e}");
                    }
                    machine.handle_http_response(now, id, result)
                }
                IoEvent::Connected(conn, writer) => match self.dials().remove(&conn) {
                    // The machine gave up on this dial: close what it opened.
                    Some(Some((code, reason))) => writer.close(code, reason),
                    _ => {
                        writers.insert(conn, writer);
                        machine.handle_connected(now, conn);
                    }
                },
                IoEvent::ConnectFailed(conn, error) => {
                    tracing::warn!(conn = conn.0, "connecting to the gateway failed: {error}");
                    self.dials().remove(&conn);
                    machine.handle_connect_failed(now, conn, error)
                }
                IoEvent::Frame(conn, frame) => machine.handle_frame(now, conn, frame),
                IoEvent::Closed(conn, close) => {
                    writers.remove(&conn);
                    machine.handle_closed(now, conn, close);
                }
            },
        }
    }

    /// Carry out every queued output. `spawn` runs an invocation's handler
    /// (on the user's side, never here). Returns false once the machine has
    /// closed for good; the pump loop then ends.
    pub fn drain_outputs<R, W: FrameSink>(
        &self,
        machine: &mut Worker,
        carry: &mut Carry<R>,
        writers: &mut HashMap<ConnId, W>,
        io: &impl Io,
        epoch: u64,
        mut spawn: impl FnMut(Option<&H>, ExecutorRequest, CancelSignal),
    ) -> bool {
        while let Some(out) = machine.poll_output() {
            match out {
                Output::Http { id, request } => io.http(epoch, id, request),
                Output::Connect { conn, url, subprotocol, timeout } => {
                    self.dials().insert(conn, None);
                    io.connect(epoch, conn, url, subprotocol, timeout)
                }
                Output::Send { conn, frame } => {
                    if let Some(w) = writers.get_mut(&conn) {
                        w.send(frame);
                    }
                }
                Output::Close { conn, code, reason } => match writers.remove(&conn) {
                    Some(w) => w.close(code, reason),
                    None => {
                        if let Some(pending) = self.dials().get_mut(&conn) {
                            *pending = Some((code, reason));
                        }
                    }
                },
                Output::Event(event) => {
                    let shutting_down = self.shutdown_requested.load(Ordering::Acquire);
                    if shutting_down && event == Event::StateChanged(ConnectionState::Closing) {
                        let replies = machine.unacked_replies();
                        if replies > 0 {
                            tracing::info!(
                                unacked_replies = replies,
                                "shutting down: every run finished; waiting for {} to be acknowledged",
                                count(replies, "reply", "replies")
                            );
                        }
                    }
                    if !self.on_event(event, carry, &mut spawn) {
                        if shutting_down && !carry.cancels.is_empty() {
                            tracing::warn!(
                                abandoned = carry.cancels.len(),
                                "shutdown deadline passed: abandoning {} still running (cancel signals fired; \
                                 the gateway retries those runs when their leases expire)",
                                count(carry.cancels.len(), "handler", "handlers")
                            );
                        }
                        for c in carry.cancels.values() {
                            c.cancel(CancelReason::ShutdownDeadline);
                        }
                        return false;
                    }
                }
            }
        }
        true
    }

    /// What a graceful shutdown waits for, and until when: the one line an
    /// operator who pressed Ctrl-C looks for.
    fn log_drain_start(&self, machine: &Worker) {
        let (runs, replies) = (machine.in_flight(), machine.unacked_replies());
        let bound = self.config.timeouts.shutdown;
        if runs == 0 && replies == 0 {
            tracing::info!("shutting down: nothing in flight, closing");
            return;
        }
        let until = SystemTime::now() + bound;
        let until_ms = until.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        let deadline = connect_core::gateway::run::rfc3339(until_ms);
        tracing::info!(
            runs_in_flight = runs,
            unacked_replies = replies,
            %deadline,
            "shutting down: waiting for {} in flight and {} to be acknowledged, for at most {} (until {deadline})",
            count(runs, "run", "runs"),
            count(replies, "reply", "replies"),
            connect_core::duration::format_go_duration(bound),
        );
    }

    fn on_event<R>(
        &self,
        event: Event,
        carry: &mut Carry<R>,
        spawn: &mut impl FnMut(Option<&H>, ExecutorRequest, CancelSignal),
    ) -> bool {
        match event {
            Event::StateChanged(state) => {
                tracing::debug!(?state, "connection state");
                (self.on_state)(state);
            }
            Event::Ready { conn, connection_id } => {
                tracing::info!(conn = conn.0, %connection_id, "connection active");
                self.health.mark_ready();
            }
            Event::Invocation(request) => {
                let cancel = CancelSignal::new();
                carry.cancels.insert(request.request_id().to_owned(), cancel.clone());
                spawn(self.handlers.get(request.function_slug()), request, cancel);
            }
            Event::LeaseLost { request_id } => {
                tracing::warn!(%request_id, "lease lost; cancelling the handler");
                if let Some(c) = carry.cancels.get(request_id.as_str()) {
                    c.cancel(CancelReason::LeaseLost);
                }
            }
            Event::ReplyAcked { request_id } => tracing::trace!(%request_id, "reply acked"),
            Event::ReplyReplaced { request_id, error } => {
                tracing::error!(%request_id, "the run fails with a non-retriable error instead: {error}");
            }
            Event::ReplyFailed { request_id, error } => {
                tracing::error!(%request_id, "reply could not be delivered: {error}");
            }
            Event::Fatal(error) => {
                tracing::error!("worker stopped: {error}");
                self.set_fatal(error.to_string());
            }
            Event::Closed => {
                (self.on_state)(ConnectionState::Closed);
                return false;
            }
        }
        true
    }
}

/// `1 run`, `2 runs`.
fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}
