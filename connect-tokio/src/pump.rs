//! The pump loop: feeds socket, HTTP, timer and handler events into the
//! sans-IO [`Worker`] machine and carries out what it asks for.
//!
//! It runs on the connection thread (or, in same-runtime mode, as a task on
//! the user's runtime). It never runs user code: invocations are spawned on
//! the user's runtime and their replies come back through the inbox.

use std::collections::HashMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use connect_adapter::supervisor::{Exit, Health, panic_message};
use connect_adapter::{
    CancelReason, CancelSignal, Ctx, HandlerResult, HttpClient, reply_for, reply_for_panic,
};
use connect_core::worker::{
    ConnId, ConnectionState, Durable, Event, HttpId, HttpResponse, Output, Reply, Worker, WorkerConfig,
};
use futures_util::FutureExt;
use tokio::sync::{mpsc, watch};

use crate::socket::{self, Writer};

pub(crate) type BoxFuture = Pin<Box<dyn Future<Output = HandlerResult> + Send>>;
pub(crate) type Handler = Arc<dyn Fn(Ctx) -> BoxFuture + Send + Sync>;

/// What reaches the pump loop.
pub(crate) enum Input {
    /// From this incarnation's sockets and HTTP calls. `epoch` tells stale
    /// events of a crashed incarnation apart, since its ids mean nothing to
    /// the new machine.
    Io {
        epoch: u64,
        event: IoEvent,
    },
    /// A handler finished. Valid across incarnations.
    Reply {
        request_id: String,
        reply: Reply,
    },
    Shutdown,
    /// Test hook: panic on the connection thread.
    Panic,
}

pub(crate) enum IoEvent {
    Http(HttpId, Result<HttpResponse, String>),
    Connected(ConnId, Writer),
    ConnectFailed(ConnId, String),
    Frame(ConnId, Bytes),
    Closed(ConnId, Option<(u16, String)>),
}

/// What every incarnation shares with the user's handle.
pub(crate) struct Shared {
    pub config: WorkerConfig,
    pub handlers: HashMap<String, Handler>,
    pub user_rt: tokio::runtime::Handle,
    pub state_tx: watch::Sender<ConnectionState>,
    pub fatal: Mutex<Option<String>>,
    pub health: Arc<Health>,
    pub inbox_tx: mpsc::UnboundedSender<Input>,
    pub http: HttpClient,
    pub shutdown_requested: AtomicBool,
    pub epoch: AtomicU64,
    pub span: tracing::Span,
}

/// What one incarnation hands to the next after a crash.
pub(crate) struct Carry {
    pub durable: Durable,
    pub inbox: mpsc::UnboundedReceiver<Input>,
    pub cancels: HashMap<String, CancelSignal>,
}

impl Shared {
    pub(crate) fn set_fatal(&self, msg: String) {
        let mut slot = self.fatal.lock().unwrap_or_else(|p| p.into_inner());
        slot.get_or_insert(msg);
        drop(slot);
        self.state_tx.send_replace(ConnectionState::Closed);
    }
}

/// One incarnation of the connection thread: a fresh current-thread runtime
/// and a fresh machine resumed from the carried durable state.
pub(crate) fn run_incarnation(shared: Arc<Shared>, mut carry: Carry) -> Exit<Carry> {
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            shared.set_fatal(format!("could not build the connection runtime: {e}"));
            return Exit::Finished;
        }
    };
    let mut machine = match new_machine(&shared, &mut carry) {
        Some(m) => m,
        None => return Exit::Finished,
    };
    let _span = shared.span.enter();
    let result =
        std::panic::catch_unwind(AssertUnwindSafe(|| rt.block_on(pump(&shared, &mut machine, &mut carry))));
    // Blocking HTTP calls of this incarnation finish on their own (bounded by
    // their timeout); their answers are dropped as stale.
    rt.shutdown_background();
    match result {
        Ok(()) => Exit::Finished,
        Err(p) => {
            carry.durable = machine.take_durable();
            Exit::Crashed { carry, panic: panic_message(&*p) }
        }
    }
}

pub(crate) fn new_machine(shared: &Shared, carry: &mut Carry) -> Option<Worker> {
    let now = Instant::now();
    let mut config = shared.config.clone();
    config.started_at = SystemTime::now();
    config.seed = config.seed.wrapping_add(shared.epoch.load(Ordering::Relaxed));
    match Worker::new(config, std::mem::take(&mut carry.durable), now) {
        Ok(mut m) => {
            if shared.shutdown_requested.load(Ordering::Acquire) {
                m.shutdown(now);
            }
            Some(m)
        }
        Err(e) => {
            shared.set_fatal(format!("invalid worker configuration: {e}"));
            None
        }
    }
}

/// Run until the machine reports `Closed`.
pub(crate) async fn pump(shared: &Shared, machine: &mut Worker, carry: &mut Carry) {
    let epoch = shared.epoch.fetch_add(1, Ordering::Relaxed) + 1;
    let mut writers: HashMap<ConnId, Writer> = HashMap::new();
    loop {
        while let Some(out) = machine.poll_output() {
            if !carry_out(shared, epoch, out, &mut writers, carry) {
                for c in carry.cancels.values() {
                    c.cancel(CancelReason::ShutdownDeadline);
                }
                return;
            }
        }
        let deadline = machine.poll_timeout().map(|(at, _why)| tokio::time::Instant::from_std(at));
        let input = tokio::select! {
            biased;
            input = carry.inbox.recv() => input,
            () = sleep_until(deadline) => {
                machine.handle_timeout(Instant::now());
                continue;
            }
        };
        let now = Instant::now();
        match input {
            // Every sender is gone: the handle was dropped without shutdown.
            None | Some(Input::Shutdown) => {
                shared.shutdown_requested.store(true, Ordering::Release);
                machine.shutdown(now);
            }
            Some(Input::Panic) => panic!("connection thread panic injected by a test"),
            Some(Input::Reply { request_id, reply }) => {
                carry.cancels.remove(&request_id);
                if let Err(e) = machine.reply(now, &request_id, reply) {
                    tracing::warn!(%request_id, "reply refused: {e}");
                }
            }
            Some(Input::Io { epoch: e, .. }) if e != epoch => {}
            Some(Input::Io { event, .. }) => match event {
                IoEvent::Http(id, result) => machine.handle_http_response(now, id, result),
                IoEvent::Connected(conn, writer) => {
                    writers.insert(conn, writer);
                    machine.handle_connected(now, conn);
                }
                IoEvent::ConnectFailed(conn, error) => machine.handle_connect_failed(now, conn, error),
                IoEvent::Frame(conn, frame) => machine.handle_frame(now, conn, frame),
                IoEvent::Closed(conn, close) => {
                    writers.remove(&conn);
                    machine.handle_closed(now, conn, close);
                }
            },
        }
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Carry out one output. Returns false once the machine is closed for good.
fn carry_out(
    shared: &Shared,
    epoch: u64,
    out: Output,
    writers: &mut HashMap<ConnId, Writer>,
    carry: &mut Carry,
) -> bool {
    match out {
        Output::Http { id, request } => {
            let tx = shared.inbox_tx.clone();
            let http = shared.http.clone();
            tokio::task::spawn_blocking(move || {
                let result = http.perform(&request);
                let _ = tx.send(Input::Io { epoch, event: IoEvent::Http(id, result) });
            });
        }
        Output::Connect { conn, url, subprotocol, timeout } => {
            let tx = shared.inbox_tx.clone();
            let limits = shared.config.limits;
            tokio::spawn(socket::connect(conn, url, subprotocol, timeout, limits, move |event| {
                tx.send(Input::Io { epoch, event }).is_ok()
            }));
        }
        Output::Send { conn, frame } => {
            if let Some(w) = writers.get(&conn) {
                w.send(frame);
            }
        }
        Output::Close { conn, code, reason } => {
            if let Some(w) = writers.remove(&conn) {
                w.close(code, reason);
            }
        }
        Output::Event(event) => return on_event(shared, event, carry),
    }
    true
}

fn on_event(shared: &Shared, event: Event, carry: &mut Carry) -> bool {
    match event {
        Event::StateChanged(state) => {
            tracing::debug!(?state, "connection state");
            shared.state_tx.send_replace(state);
        }
        Event::Ready { conn, connection_id } => {
            tracing::info!(conn = conn.0, %connection_id, "connection active");
            shared.health.mark_ready();
        }
        Event::Invocation(request) => {
            let cancel = CancelSignal::new();
            carry.cancels.insert(request.request_id.clone(), cancel.clone());
            let handler = shared.handlers.get(&request.function_slug).cloned();
            let tx = shared.inbox_tx.clone();
            shared.user_rt.spawn(invoke(handler, request, cancel, tx));
        }
        Event::LeaseLost { request_id } => {
            tracing::warn!(%request_id, "lease lost; cancelling the handler");
            if let Some(c) = carry.cancels.get(&request_id) {
                c.cancel(CancelReason::LeaseLost);
            }
        }
        Event::ReplyAcked { request_id } => {
            tracing::trace!(%request_id, "reply acked");
        }
        Event::ReplyFailed { request_id, error } => {
            tracing::error!(%request_id, "reply could not be delivered: {error}");
        }
        Event::Fatal(error) => {
            tracing::error!("worker stopped: {error}");
            shared.set_fatal(error.to_string());
        }
        Event::Closed => {
            shared.state_tx.send_replace(ConnectionState::Closed);
            return false;
        }
    }
    true
}

/// Run a handler on the user's runtime and send its reply back. A missing
/// handler, a bad payload and a panic each fail only this request.
async fn invoke(
    handler: Option<Handler>,
    request: Box<connect_core::wire::GatewayExecutorRequestData>,
    cancel: CancelSignal,
    tx: mpsc::UnboundedSender<Input>,
) {
    let request_id = request.request_id.clone();
    let reply = match handler {
        None => {
            let msg = format!("no handler for function {:?} on this worker", request.function_slug);
            reply_for(&Err(connect_adapter::HandlerError::non_retriable(msg).named("FunctionNotFound")))
        }
        Some(handler) => match Ctx::new(request, cancel) {
            Err(e) => reply_for(&Err(connect_adapter::HandlerError::non_retriable(format!(
                "request payload is not valid JSON: {e}"
            )))),
            Ok(ctx) => match AssertUnwindSafe(handler(ctx)).catch_unwind().await {
                Ok(result) => reply_for(&result),
                Err(panic) => reply_for_panic(&*panic),
            },
        },
    };
    let _ = tx.send(Input::Reply { request_id, reply });
}
