//! The tokio pump loop: waits for an input or the machine's next deadline,
//! and hands everything else to the shared [`Session`].
//!
//! It runs on the connection thread (or, in same-runtime mode, as a task on
//! the user's runtime). It never runs user code: invocations are spawned on
//! the user's runtime and their replies come back through the inbox.

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use connect_adapter::session::{self, Carry, Io, IoEvent, Session, Turn};
use connect_adapter::supervisor::Exit;
use connect_adapter::{Ctx, HandlerResult, HttpClient, invoke_async};
use connect_core::worker::{ConnId, HttpId, HttpRequest, Worker};
use tokio::sync::mpsc;

use crate::socket::{self, Writer};

pub(crate) type BoxFuture = Pin<Box<dyn Future<Output = HandlerResult> + Send>>;
pub(crate) type Handler = Arc<dyn Fn(Ctx) -> BoxFuture + Send + Sync>;
pub(crate) type Input = session::Input<Writer>;
pub(crate) type Inbox = mpsc::UnboundedReceiver<Input>;

/// What every incarnation shares with the user's handle.
pub(crate) struct Shared {
    pub session: Session<Handler>,
    pub user_rt: tokio::runtime::Handle,
    pub inbox_tx: mpsc::UnboundedSender<Input>,
    pub http: HttpClient,
}

/// One incarnation of the connection thread: a fresh current-thread runtime
/// and a fresh machine resumed from the carried durable state.
pub(crate) fn run_incarnation(shared: Arc<Shared>, carry: Carry<Inbox>) -> Exit<Carry<Inbox>> {
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            shared.session.set_fatal(format!("could not build the connection runtime: {e}"));
            return Exit::Finished;
        }
    };
    let exit = shared.session.run_guarded(carry, |machine, carry| rt.block_on(pump(&shared, machine, carry)));
    // Blocking HTTP calls of this incarnation finish on their own (bounded by
    // their timeout); their answers are dropped as stale.
    rt.shutdown_background();
    exit
}

/// Starts this incarnation's IO on the current (connection) runtime.
struct TokioIo<'a> {
    shared: &'a Shared,
    /// The socket tasks, so that the last close frames are flushed before the
    /// runtime goes away (each task ends within `CLOSE_GRACE` of its close).
    sockets: RefCell<Vec<tokio::task::JoinHandle<()>>>,
}

impl Io for TokioIo<'_> {
    fn http(&self, epoch: u64, id: HttpId, request: HttpRequest) {
        let tx = self.shared.inbox_tx.clone();
        let http = self.shared.http.clone();
        tokio::task::spawn_blocking(move || {
            let result = http.perform(&request);
            let _ = tx.send(Input::Io { epoch, event: IoEvent::Http(id, result) });
        });
    }

    fn connect(&self, epoch: u64, conn: ConnId, url: String, subprotocol: &'static str, timeout: Duration) {
        let tx = self.shared.inbox_tx.clone();
        let limits = self.shared.session.limits();
        let task = tokio::spawn(socket::connect(conn, url, subprotocol, timeout, limits, move |event| {
            tx.send(Input::Io { epoch, event }).is_ok()
        }));
        let mut sockets = self.sockets.borrow_mut();
        sockets.retain(|t| !t.is_finished());
        sockets.push(task);
    }
}

/// Run until the machine reports `Closed`.
pub(crate) async fn pump(shared: &Shared, machine: &mut Worker, carry: &mut Carry<Inbox>) {
    let session = &shared.session;
    let epoch = session.next_epoch();
    let io = TokioIo { shared, sockets: RefCell::default() };
    let mut writers: HashMap<ConnId, Writer> = HashMap::new();
    loop {
        let open =
            session.drain_outputs(machine, carry, &mut writers, &io, epoch, |handler, request, cancel| {
                let handler = handler.cloned();
                let tx = shared.inbox_tx.clone();
                shared.user_rt.spawn(async move {
                    let (request_id, reply) =
                        invoke_async(handler.map(|h| move |ctx| h(ctx)), request, cancel).await;
                    let _ = tx.send(Input::Reply { request_id, reply });
                });
            });
        if !open {
            // Closed for good: let the sockets send their close frames (1000
            // WORKER_SHUTDOWN) before the connection runtime is dropped.
            let sockets = io.sockets.take();
            let _ =
                tokio::time::timeout(socket::CLOSE_GRACE * 2, futures_util::future::join_all(sockets)).await;
            return;
        }
        // A deadline already passed goes first: under load the inbox is never
        // empty, and the heartbeat must not wait for it to be.
        let mut turn = Turn::new(machine);
        if session.handle_due(machine, &mut turn) {
            continue;
        }
        let deadline = turn.deadline().map(tokio::time::Instant::from_std);
        tokio::select! {
            biased;
            input = carry.inbox.recv() => {
                // `None` cannot happen while `shared` holds a sender; treat it as shutdown.
                let input = input.unwrap_or(Input::Shutdown);
                session.apply(machine, carry, &mut writers, epoch, &mut turn, input);
                session.apply_ready(machine, carry, &mut writers, epoch, &mut turn, |inbox| inbox.try_recv().ok());
                // Let this thread's socket tasks run before the next turn: they
                // write what the turn queued and read what came in.
                tokio::task::yield_now().await;
            }
            () = sleep_until(deadline) => machine.handle_timeout(session.now()),
        }
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
