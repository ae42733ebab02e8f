//! The blocking pump loop on the connection thread: one `mio::Poll` waits
//! on every open socket (two during a make-before-break drain, plus any
//! still closing) and on a waker, with the machine's next deadline as its
//! timeout; everything that is not IO is the shared [`Session`].
//!
//! It never blocks on anything but that wait: dials and HTTP calls run on
//! helper threads, handlers on the pool, and they all report back through
//! the [`Mailbox`], which wakes the wait at once.

use std::collections::HashMap;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use connect_adapter::session::{self, Carry, Io, Session, Turn};
use connect_adapter::supervisor::Exit;
use connect_adapter::{Ctx, HandlerResult, HttpClient, SignalListener, StateWatch, invoke_blocking};
use connect_core::wire::Limits;
use connect_core::worker::{ConnId, HttpId, HttpRequest, Worker};

use crate::pool::Pool;
use crate::socket::{self, Conn, IoEvent};

pub(crate) type Handler = Arc<dyn Fn(Ctx) -> HandlerResult + Send + Sync>;
pub(crate) type Input = session::Input<Conn>;
pub(crate) type Inbox = mpsc::Receiver<Input>;

/// The waker's token; sockets use their connection id.
const WAKE: mio::Token = mio::Token(usize::MAX);
/// How long a socket we closed waits for the peer's close frame.
const CLOSE_LINGER: Duration = Duration::from_secs(1);

/// What every incarnation shares with the user's handle.
pub(crate) struct Shared {
    pub session: Session<Handler>,
    pub mailbox: Mailbox,
    pub pool: Pool,
    pub http: HttpClient,
    pub state: Arc<StateWatch>,
    /// Closed once the worker is done, so its thread ends.
    pub signals: Mutex<Option<SignalListener>>,
}

impl Shared {
    /// The worker closed for good: let the pool and signal threads go.
    pub fn finish(&self) {
        self.pool.close();
        if let Some(s) = self.signals.lock().unwrap_or_else(|p| p.into_inner()).take() {
            s.close();
        }
    }
}

/// The channel to the connection thread: every send wakes its poll.
#[derive(Clone, Debug)]
pub(crate) struct Mailbox(Arc<MailboxInner>);

#[derive(Debug)]
struct MailboxInner {
    tx: mpsc::Sender<Input>,
    /// The current incarnation's waker (a new poll per incarnation).
    waker: Mutex<Option<Arc<mio::Waker>>>,
}

impl Mailbox {
    pub fn new() -> (Mailbox, Inbox) {
        let (tx, rx) = mpsc::channel();
        (Mailbox(Arc::new(MailboxInner { tx, waker: Mutex::new(None) })), rx)
    }

    /// Queue `input` and wake the connection thread; false once it is gone.
    pub fn send(&self, input: Input) -> bool {
        let sent = self.0.tx.send(input).is_ok();
        if let Some(w) = self.0.waker.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            let _ = w.wake();
        }
        sent
    }

    fn install(&self, waker: Arc<mio::Waker>) {
        *self.0.waker.lock().unwrap_or_else(|p| p.into_inner()) = Some(waker);
    }
}

/// One incarnation of the connection thread.
pub(crate) fn run_incarnation(shared: &Shared, carry: Carry<Inbox>) -> Exit<Carry<Inbox>> {
    let exit = shared.session.run_guarded(carry, |machine, carry| {
        if let Err(e) = pump(shared, machine, carry) {
            shared.session.set_fatal(format!("connection thread cannot poll: {e}"));
        }
    });
    if matches!(exit, Exit::Finished) {
        shared.finish();
    }
    exit
}

/// Starts this incarnation's IO on helper threads.
struct ThreadIo {
    mailbox: Mailbox,
    http: HttpClient,
    limits: Limits,
    retired: mpsc::Sender<Conn>,
}

impl Io for ThreadIo {
    fn http(&self, epoch: u64, id: HttpId, request: HttpRequest) {
        let (mailbox, http) = (self.mailbox.clone(), self.http.clone());
        helper("connect-http", move || {
            let result = http.perform(&request);
            mailbox.send(Input::Io { epoch, event: IoEvent::Http(id, result) });
        });
    }

    fn connect(&self, epoch: u64, conn: ConnId, url: String, subprotocol: &'static str, timeout: Duration) {
        let (mailbox, limits, retired) = (self.mailbox.clone(), self.limits, self.retired.clone());
        helper("connect-dial", move || {
            let event = match socket::dial(conn, &url, subprotocol, timeout, limits, retired) {
                Ok(c) => IoEvent::Connected(conn, c),
                Err(e) => IoEvent::ConnectFailed(conn, e),
            };
            mailbox.send(Input::Io { epoch, event });
        });
    }
}

/// A short-lived thread for one blocking call, in the caller's dispatcher and span.
fn helper(name: &str, f: impl FnOnce() + Send + 'static) {
    let dispatch = tracing::dispatcher::get_default(|d| d.clone());
    let span = tracing::Span::current();
    let spawned = std::thread::Builder::new()
        .name(name.into())
        .spawn(move || tracing::dispatcher::with_default(&dispatch, || span.in_scope(f)));
    if let Err(e) = spawned {
        // The call's own deadline in the machine turns this into a retry.
        tracing::error!("could not start a {name} thread: {e}");
    }
}

/// Run until the machine reports `Closed`.
fn pump(shared: &Shared, machine: &mut Worker, carry: &mut Carry<Inbox>) -> std::io::Result<()> {
    let session = &shared.session;
    let epoch = session.next_epoch();
    let mut poll = mio::Poll::new()?;
    shared.mailbox.install(Arc::new(mio::Waker::new(poll.registry(), WAKE)?));
    let (retired_tx, retired) = mpsc::channel();
    let io = ThreadIo {
        mailbox: shared.mailbox.clone(),
        http: shared.http.clone(),
        limits: session.limits(),
        retired: retired_tx,
    };
    let mut writers: HashMap<ConnId, Conn> = HashMap::new();
    let mut closing: Vec<(Conn, Instant)> = Vec::new();
    let mut events = mio::Events::with_capacity(64);
    let mut ready: Vec<ConnId> = Vec::new();
    let mut io_events: Vec<IoEvent> = Vec::new();
    // The last turn stopped at its bound: more input may be waiting, do not block.
    let mut more_input = false;
    loop {
        let open =
            session.drain_outputs(machine, carry, &mut writers, &io, epoch, |handler, request, cancel| {
                let (handler, mailbox) = (handler.cloned(), shared.mailbox.clone());
                shared.pool.execute(move || {
                    let (request_id, reply) =
                        invoke_blocking(handler.map(|h| move |ctx| h(ctx)), request, cancel);
                    mailbox.send(Input::Reply { request_id, reply });
                });
            });
        closing.extend(retired.try_iter().map(|c| (c, Instant::now() + CLOSE_LINGER)));
        if !open {
            linger(&mut poll, &mut events, closing);
            return Ok(());
        }
        // Write what the outputs queued; a socket that failed is closed.
        for conn in writers.values_mut() {
            conn.flush();
            if conn.broken {
                conn.deregister(poll.registry());
                io_events.push(IoEvent::Closed(conn.id, None));
            }
        }
        // A deadline already passed goes first: under load there is always
        // input, and the heartbeat must not wait for it to stop.
        let mut turn = Turn::new(machine);
        if !io_events.is_empty() {
            apply_io(session, machine, carry, &mut writers, epoch, &mut turn, &mut io_events);
            continue;
        }
        if session.handle_due(machine, &mut turn) {
            continue;
        }

        let deadline = closing.iter().map(|c| c.1).chain(turn.deadline()).min();
        let timeout = match more_input {
            true => Some(Duration::ZERO),
            false => deadline.map(|d| d.saturating_duration_since(Instant::now())),
        };
        if let Err(e) = poll.poll(&mut events, timeout) {
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
        ready.clear();
        ready.extend(events.iter().map(|e| e.token()).filter(|t| *t != WAKE).map(|t| ConnId(t.0 as u64)));

        // Inputs from user threads and helpers, a bounded batch of them.
        session.apply_ready(machine, carry, &mut writers, epoch, &mut turn, |inbox| inbox.try_recv().ok());
        more_input = turn.is_full();
        // A new socket is registered and read at once: it may have data
        // already (edge-triggered poll).
        for conn in writers.values_mut().filter(|c| !c.is_registered()) {
            match conn.register(poll.registry()) {
                Ok(()) => ready.push(conn.id),
                Err(e) => {
                    tracing::warn!(conn = conn.id.0, "cannot poll the socket: {e}");
                    conn.broken = true;
                }
            }
        }
        for id in &ready {
            if let Some(conn) = writers.get_mut(id) {
                if !conn.read_ready(&mut io_events) {
                    conn.deregister(poll.registry());
                }
            } else if let Some(i) = closing.iter().position(|c| c.0.id == *id) {
                if closing[i].0.drain_closing() {
                    closing.swap_remove(i).0.deregister(poll.registry());
                }
            }
        }
        apply_io(session, machine, carry, &mut writers, epoch, &mut turn, &mut io_events);
        let now = Instant::now();
        let mut i = 0;
        while i < closing.len() {
            if closing[i].1 <= now {
                closing.swap_remove(i).0.deregister(poll.registry());
            } else {
                i += 1;
            }
        }
        // The poll timed out at the deadline (or it passed meanwhile).
        session.handle_due(machine, &mut turn);
    }
}

/// Feed what the sockets read (every frame they had: the kernel's buffer
/// bounds it), the turn's deadline handled as soon as it passes.
fn apply_io(
    session: &Session<Handler>,
    machine: &mut Worker,
    carry: &mut Carry<Inbox>,
    writers: &mut HashMap<ConnId, Conn>,
    epoch: u64,
    turn: &mut Turn,
    events: &mut Vec<IoEvent>,
) {
    for event in events.drain(..) {
        session.apply(machine, carry, writers, epoch, turn, session::Input::Io { epoch, event });
    }
}

/// The machine is done: give the sockets we closed a bounded moment to
/// finish their close handshakes, so the gateway sees our close reason.
fn linger(poll: &mut mio::Poll, events: &mut mio::Events, mut closing: Vec<(Conn, Instant)>) {
    while let Some(until) = closing.iter().map(|c| c.1).max() {
        let now = Instant::now();
        if until <= now {
            return;
        }
        if poll.poll(events, Some(until - now)).is_err() {
            return;
        }
        closing.retain_mut(|(c, _)| !c.drain_closing());
    }
}
