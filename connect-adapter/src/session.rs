//! The part of every adapter's pump loop that is not IO: feeding inputs into
//! the [`Worker`] machine, carrying out its outputs through the adapter's
//! [`Io`], and handling its events (state, invocations, lost leases, fatal
//! errors). Written once here; an adapter adds only its event loop (wait for
//! an input or the next deadline), its sockets and its way to run handlers.
//!
//! ```text
//! loop {
//!     if !session.drain_outputs(&mut machine, &mut carry, &mut writers, &io, epoch, spawn) { break }
//!     let mut turn = Turn::new(&machine);
//!     if session.handle_due(&mut machine, &mut turn) { continue }   // a passed deadline first
//!     match wait(inbox, turn.deadline()) {
//!         Some(input) => {
//!             session.apply(&mut machine, &mut carry, &mut writers, epoch, &mut turn, input);
//!             session.apply_ready(&mut machine, &mut carry, &mut writers, epoch, &mut turn, try_recv);
//!             yield_to_the_sockets();
//!         }
//!         None => machine.handle_timeout(session.now()),
//!     }
//! }
//! ```
//!
//! A turn takes at most [`MAX_TURN_INPUTS`] inputs, and handles the machine's
//! deadline as soon as it has passed, between two inputs if need be: under
//! load (hundreds of runs in flight) the inbox may never be empty, and an
//! inbox served first would otherwise keep the heartbeat from ever going out.

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

/// The most inputs one turn of a pump loop feeds into the machine before it
/// carries out their outputs (and lets its sockets run): enough to batch
/// under load, few enough that a reply or a heartbeat waits microseconds.
pub const MAX_TURN_INPUTS: usize = 64;

/// One turn of a pump loop: the machine's next deadline when the turn began
/// (its outputs drained), and how many inputs it has taken.
/// [`Session::apply`] handles that deadline as soon as it has passed, so no
/// run of inputs, however long, can hold a heartbeat back.
#[derive(Debug)]
pub struct Turn {
    deadline: Option<Instant>,
    inputs: usize,
}

impl Turn {
    /// A turn starting now, after the outputs were drained (with outputs
    /// queued, the deadline is the last `now`: due at once).
    pub fn new(machine: &Worker) -> Turn {
        Turn { deadline: machine.poll_timeout().map(|(at, _why)| at), inputs: 0 }
    }

    /// When the pump should wake up if no input comes: `None` once the
    /// turn's deadline has been handled (the next one is known after the
    /// outputs are drained, at the next turn).
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// The turn took [`MAX_TURN_INPUTS`]: more input may be waiting, so the
    /// pump should not block before the next turn.
    pub fn is_full(&self) -> bool {
        self.inputs >= MAX_TURN_INPUTS
    }
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
    /// `Instant::now`, except in this module's tests (simulated time).
    clock: fn() -> Instant,
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
            clock: Instant::now,
        }
    }

    /// The time every input is fed with.
    pub fn now(&self) -> Instant {
        (self.clock)()
    }

    pub fn limits(&self) -> Limits {
        self.config.limits
    }

    /// Record a fatal error (the first one wins) and report CLOSED.
    pub fn set_fatal(&self, msg: String) {
        self.record_fatal(msg);
        self.report_closed();
    }

    /// Record a fatal error (the first one wins); CLOSED is reported when the
    /// incarnation has finished closing its sockets.
    fn record_fatal(&self, msg: String) {
        self.fatal.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert(msg);
    }

    /// Report CLOSED: the user's `closed()` returns and the process may exit,
    /// so only once the close frames are out (or their grace has passed).
    pub fn report_closed(&self) {
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
        let now = self.now();
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
            Ok(()) => {
                // `run` returns after the last close frames were flushed.
                self.report_closed();
                Exit::Finished
            }
            Err(p) => {
                carry.durable = machine.take_durable();
                Exit::Crashed { carry, panic: panic_message(&*p) }
            }
        }
    }

    fn dials(&self) -> std::sync::MutexGuard<'_, HashMap<ConnId, Option<(u16, String)>>> {
        self.dials.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Handle the turn's deadline if it has passed. True if it did: the
    /// pump then drains the outputs (the heartbeat) before anything else.
    pub fn handle_due(&self, machine: &mut Worker, turn: &mut Turn) -> bool {
        let Some(at) = turn.deadline else { return false };
        let now = self.now();
        if at > now {
            return false;
        }
        turn.deadline = None;
        machine.handle_timeout(now);
        true
    }

    /// Feed one input into the machine, then the turn's deadline if it has
    /// passed meanwhile.
    pub fn apply<R, W: FrameSink>(
        &self,
        machine: &mut Worker,
        carry: &mut Carry<R>,
        writers: &mut HashMap<ConnId, W>,
        epoch: u64,
        turn: &mut Turn,
        input: Input<W>,
    ) {
        turn.inputs += 1;
        self.feed(machine, carry, writers, epoch, input);
        self.handle_due(machine, turn);
    }

    /// Feed what `next` has ready (it must not wait: `try_recv`) until it has
    /// nothing or the turn is full, each input as [`Session::apply`] does.
    pub fn apply_ready<R, W: FrameSink>(
        &self,
        machine: &mut Worker,
        carry: &mut Carry<R>,
        writers: &mut HashMap<ConnId, W>,
        epoch: u64,
        turn: &mut Turn,
        mut next: impl FnMut(&mut R) -> Option<Input<W>>,
    ) {
        while !turn.is_full() {
            let Some(input) = next(&mut carry.inbox) else { return };
            self.apply(machine, carry, writers, epoch, turn, input);
        }
    }

    fn feed<R, W: FrameSink>(
        &self,
        machine: &mut Worker,
        carry: &mut Carry<R>,
        writers: &mut HashMap<ConnId, W>,
        epoch: u64,
        input: Input<W>,
    ) {
        let now = self.now();
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
                    if event == Event::StateChanged(ConnectionState::Reconnecting) && !shutting_down {
                        // Visible without DEBUG logs; the machine's last error says why
                        // (a lost connection, a failed attempt, or a gateway drain).
                        let reason = machine.last_error().unwrap_or("unknown");
                        tracing::info!(reason, "reconnecting");
                    }
                    if matches!(event, Event::Ready { .. }) && machine.using_fallback_key() {
                        tracing::warn!(
                            "connected with the fallback signing key: the primary key was refused (finish the \
                             rotation: make the new key INNGEST_SIGNING_KEY)"
                        );
                    }
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
                // CLOSED is reported once the sockets are closed (see `Event::Closed`).
                if state != ConnectionState::Closed {
                    (self.on_state)(state);
                }
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
            Event::Abandoned { request_id } => {
                tracing::warn!(%request_id, "abandoning the handler: the worker is stopping before it finished");
                if let Some(c) = carry.cancels.get(request_id.as_str()) {
                    c.cancel(CancelReason::ShutdownDeadline);
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
                self.record_fatal(error.to_string());
            }
            // Reported CLOSED by `run_guarded` (or the same-runtime task) once
            // the pump has flushed the sockets' close frames: reported here,
            // `closed()` returned and the process could exit before the
            // gateway heard WORKER_SHUTDOWN.
            Event::Closed => return false,
        }
        true
    }
}

/// `1 run`, `2 runs`.
fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

#[cfg(test)]
mod tests {
    //! The session on simulated time, with a fake IO layer: no sockets, no
    //! threads, no sleeping.

    use std::cell::{Cell, RefCell};
    use std::collections::VecDeque;
    use std::rc::Rc;

    use connect_core::payload::{FunctionConfig, Trigger};
    use connect_core::wire::{GatewayConnectionReadyData, Message, StartResponse, encode_body};

    use super::*;

    thread_local! {
        static NOW: Cell<Option<Instant>> = const { Cell::new(None) };
    }

    fn sim_now() -> Instant {
        NOW.with(|n| n.get().expect("the test sets the clock"))
    }

    fn advance(d: Duration) {
        NOW.with(|n| n.set(Some(sim_now() + d)));
    }

    #[derive(Debug, Clone, Default)]
    struct Sink(Rc<RefCell<Vec<Bytes>>>);

    impl FrameSink for Sink {
        fn send(&mut self, frame: Bytes) {
            self.0.borrow_mut().push(frame);
        }
        fn close(self, _code: u16, _reason: String) {}
    }

    #[derive(Default)]
    struct FakeIo {
        http: RefCell<Vec<HttpId>>,
        dials: RefCell<Vec<ConnId>>,
    }

    impl Io for FakeIo {
        fn http(&self, _epoch: u64, id: HttpId, _request: HttpRequest) {
            self.http.borrow_mut().push(id);
        }
        fn connect(&self, _epoch: u64, conn: ConnId, _url: String, _proto: &'static str, _timeout: Duration) {
            self.dials.borrow_mut().push(conn);
        }
    }

    type Inbox = VecDeque<Input<Sink>>;

    struct Pump {
        session: Session<()>,
        machine: Worker,
        carry: Carry<Inbox>,
        writers: HashMap<ConnId, Sink>,
        io: FakeIo,
        epoch: u64,
    }

    impl Pump {
        /// A session whose machine is ACTIVE on one connection, heartbeats every second.
        fn active(sink: &Sink) -> (Pump, ConnId) {
            NOW.with(|n| n.set(Some(Instant::now())));
            let f = FunctionConfig::new("app-hello", "hello", Trigger::event("test/hello"));
            let config = WorkerConfig::new("app", vec![f], "instance-1", SystemTime::now());
            let mut session = Session::new(config, HashMap::new(), tracing::Span::none(), |_| {});
            session.clock = sim_now;
            let machine = session.new_machine(&mut Durable::default()).expect("valid config");
            let epoch = session.next_epoch();
            let mut p = Pump {
                session,
                machine,
                carry: Carry::new(Inbox::new()),
                writers: HashMap::new(),
                io: FakeIo::default(),
                epoch,
            };
            p.drain();
            let http = p.io.http.borrow_mut().pop().expect("a start call");
            let start = StartResponse {
                connection_id: "01JZ0000000000000000000000".into(),
                gateway_endpoint: "ws://gateway/v0/connect".into(),
                gateway_group: "gw".into(),
                session_token: "jwt".into(),
                sync_token: "sync".into(),
            };
            let ok = HttpResponse { status: 200, body: encode_body(&start) };
            p.feed(IoEvent::Http(http, Ok(ok)));
            let conn = p.io.dials.borrow_mut().pop().expect("a dial");
            p.feed(IoEvent::Connected(conn, sink.clone()));
            p.feed(IoEvent::Frame(conn, encode(Message::GatewayHello)));
            let ready = GatewayConnectionReadyData {
                heartbeat_interval: "1s".into(),
                extend_lease_interval: "30s".into(),
                status_interval: "0s".into(),
            };
            p.feed(IoEvent::Frame(conn, encode(Message::GatewayConnectionReady(ready))));
            assert_eq!(p.machine.state(), ConnectionState::Active, "the handshake ends ACTIVE");
            (p, conn)
        }

        fn drain(&mut self) {
            let open = self.session.drain_outputs(
                &mut self.machine,
                &mut self.carry,
                &mut self.writers,
                &self.io,
                self.epoch,
                |_, _, _| {},
            );
            assert!(open, "the machine closed");
        }

        fn feed(&mut self, event: IoEvent<Sink>) {
            let mut turn = Turn::new(&self.machine);
            let input = Input::Io { epoch: self.epoch, event };
            self.session.apply(
                &mut self.machine,
                &mut self.carry,
                &mut self.writers,
                self.epoch,
                &mut turn,
                input,
            );
            self.drain();
        }
    }

    fn encode(msg: Message) -> Bytes {
        msg.encode(&Default::default()).expect("encodes")
    }

    fn heartbeats(sink: &Sink) -> usize {
        let frames = sink.0.borrow();
        let decoded =
            frames.iter().map(|f| Message::decode(f.clone(), &Default::default()).expect("decodes"));
        decoded.filter(|m| matches!(m, Message::WorkerHeartbeat)).count()
    }

    /// Under load the inbox is never empty: every time the pump looks, a
    /// frame or a reply is waiting (here one arrives every 20 us of simulated
    /// time, as fast as they are handled). The pump loop below is an
    /// adapter's, with the wait replaced by "the inbox is ready". Serving the
    /// inbox first used to keep the heartbeat timer from ever running; now
    /// each turn handles the deadline once it has passed, and the heartbeats
    /// go out on time, one a second.
    #[test]
    fn a_never_empty_inbox_does_not_starve_the_heartbeat() {
        let sink = Sink::default();
        let (mut p, conn) = Pump::active(&sink);
        let flood = |inbox: &mut Inbox| {
            advance(Duration::from_micros(20));
            inbox.push_back(Input::Io {
                epoch: 1,
                event: IoEvent::Frame(conn, encode(Message::GatewayHeartbeat)),
            });
            inbox.pop_front()
        };
        let end = sim_now() + Duration::from_millis(3500);
        let mut turns = 0;
        while sim_now() < end {
            p.drain();
            let mut turn = Turn::new(&p.machine);
            if p.session.handle_due(&mut p.machine, &mut turn) {
                continue;
            }
            // What the adapter's wait returns: the inbox is ready, never the timer.
            let first = flood(&mut p.carry.inbox).expect("an input");
            p.session.apply(&mut p.machine, &mut p.carry, &mut p.writers, p.epoch, &mut turn, first);
            p.session.apply_ready(&mut p.machine, &mut p.carry, &mut p.writers, p.epoch, &mut turn, flood);
            assert!(turn.is_full(), "a never-empty inbox fills every turn");
            turns += 1;
        }
        assert!(turns > 1000, "{turns} turns");
        assert_eq!(heartbeats(&sink), 3, "one heartbeat a second for 3.5 s");
    }

    /// A turn takes at most MAX_TURN_INPUTS inputs, then hands back to the
    /// pump (which carries out their outputs and lets its sockets run).
    #[test]
    fn a_turn_takes_a_bounded_batch() {
        let sink = Sink::default();
        let (mut p, conn) = Pump::active(&sink);
        for _ in 0..MAX_TURN_INPUTS * 3 {
            let frame = encode(Message::GatewayHeartbeat);
            p.carry.inbox.push_back(Input::Io { epoch: p.epoch, event: IoEvent::Frame(conn, frame) });
        }
        let mut turn = Turn::new(&p.machine);
        p.session.apply_ready(
            &mut p.machine,
            &mut p.carry,
            &mut p.writers,
            p.epoch,
            &mut turn,
            VecDeque::pop_front,
        );
        assert!(turn.is_full());
        assert_eq!(p.carry.inbox.len(), MAX_TURN_INPUTS * 2);
    }
}
