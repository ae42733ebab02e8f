//! The pump loop on the connection thread: [`timer::block_on`] running a
//! thread-local executor, which also drives this incarnation's sockets. It
//! waits for an input or the machine's next deadline (the thread parks until
//! then); everything that is not IO is the shared [`Session`].
//!
//! async-io's reactor is what async-std and smol both run on, so this loop
//! is the same under either; it never runs user code: invocations go to the
//! user's executor through the spawner, and their replies come back through
//! the inbox.

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_executor::{LocalExecutor, Task};
use connect_adapter::session::{self, Carry, Io, IoEvent, Session, Turn};
use connect_adapter::supervisor::Exit;
use connect_adapter::{Ctx, HandlerResult, HttpClient, SignalListener, StateWatch, invoke_async};
use connect_core::worker::{ConnId, HttpId, HttpRequest, Worker};

use crate::socket::{self, Writer};
use crate::timer::{self, Deadline};

pub(crate) type BoxFuture = Pin<Box<dyn Future<Output = HandlerResult> + Send>>;
pub(crate) type Handler = Arc<dyn Fn(Ctx) -> BoxFuture + Send + Sync>;
/// Runs a handler's future on the user's executor.
pub(crate) type Spawner = Arc<dyn Fn(Pin<Box<dyn Future<Output = ()> + Send>>) + Send + Sync>;
pub(crate) type Input = session::Input<Writer>;
pub(crate) type Inbox = async_channel::Receiver<Input>;

/// How long, once the machine is done, its sockets get to finish their close handshakes.
const CLOSE_LINGER: Duration = Duration::from_secs(1);

/// What every incarnation shares with the user's handle.
pub(crate) struct Shared {
    pub session: Session<Handler>,
    pub spawner: Spawner,
    pub inbox_tx: async_channel::Sender<Input>,
    pub http: HttpClient,
    pub state: Arc<StateWatch>,
    /// Closed once the worker is done, so its thread ends.
    pub signals: Mutex<Option<SignalListener>>,
}

impl Shared {
    /// Queue an input for the connection thread; false once it is gone.
    pub fn send(&self, input: Input) -> bool {
        self.inbox_tx.try_send(input).is_ok()
    }

    /// The worker closed for good: let the signal thread go.
    pub fn finish(&self) {
        if let Some(s) = self.signals.lock().unwrap_or_else(|p| p.into_inner()).take() {
            s.close();
        }
    }
}

/// One incarnation of the connection thread: a fresh executor (its socket
/// tasks die with it) and a fresh machine resumed from the carried state.
pub(crate) fn run_incarnation(shared: &Shared, carry: Carry<Inbox>) -> Exit<Carry<Inbox>> {
    let exit = shared.session.run_guarded(carry, |machine, carry| {
        let ex = LocalExecutor::new();
        timer::block_on(ex.run(pump(shared, &ex, machine, carry)));
    });
    if matches!(exit, Exit::Finished) {
        shared.finish();
    }
    exit
}

/// Starts this incarnation's IO on its executor.
struct LocalIo<'a> {
    shared: &'a Shared,
    /// Everything it spawns owns its data, hence `'static`.
    ex: &'a LocalExecutor<'static>,
    /// Socket tasks, kept (not detached) so that the end can wait for their close handshakes.
    sockets: RefCell<Vec<Task<()>>>,
}

impl Io for LocalIo<'_> {
    fn http(&self, epoch: u64, id: HttpId, request: HttpRequest) {
        let (tx, http) = (self.shared.inbox_tx.clone(), self.shared.http.clone());
        // ureq blocks: on the `blocking` crate's thread pool, never on this thread.
        self.ex
            .spawn(async move {
                let result = blocking::unblock(move || http.perform(&request)).await;
                let _ = tx.try_send(Input::Io { epoch, event: IoEvent::Http(id, result) });
            })
            .detach();
    }

    fn connect(&self, epoch: u64, conn: ConnId, url: String, subprotocol: &'static str, timeout: Duration) {
        let tx = self.shared.inbox_tx.clone();
        let limits = self.shared.session.limits();
        let task = self.ex.spawn(socket::connect(conn, url, subprotocol, timeout, limits, move |event| {
            tx.try_send(Input::Io { epoch, event }).is_ok()
        }));
        let mut sockets = self.sockets.borrow_mut();
        sockets.retain(|t| !t.is_finished());
        sockets.push(task);
    }
}

/// Run until the machine reports `Closed`.
async fn pump(shared: &Shared, ex: &LocalExecutor<'static>, machine: &mut Worker, carry: &mut Carry<Inbox>) {
    let session = &shared.session;
    let epoch = session.next_epoch();
    let io = LocalIo { shared, ex, sockets: RefCell::default() };
    let mut writers: HashMap<ConnId, Writer> = HashMap::new();
    loop {
        let open =
            session.drain_outputs(machine, carry, &mut writers, &io, epoch, |handler, request, cancel| {
                let (handler, tx) = (handler.cloned(), shared.inbox_tx.clone());
                (shared.spawner)(Box::pin(async move {
                    let (request_id, reply) =
                        invoke_async(handler.map(|h| move |ctx| h(ctx)), request, cancel).await;
                    let _ = tx.try_send(Input::Reply { request_id, reply });
                }));
            });
        if !open {
            drop(writers);
            linger(io.sockets.take()).await;
            return;
        }
        // A deadline already passed goes first: under load the inbox is never
        // empty, and the heartbeat must not wait for it to be.
        let mut turn = Turn::new(machine);
        if session.handle_due(machine, &mut turn) {
            continue;
        }
        let deadline = turn.deadline();
        // The inbox first, as a biased select; the turn handles a deadline
        // that passes while it feeds inputs.
        let input = futures_lite::future::or(async { Some(carry.inbox.recv().await) }, async {
            match deadline {
                Some(at) => Deadline(at).await,
                None => std::future::pending().await,
            };
            None
        })
        .await;
        match input {
            // Closed cannot happen while `shared` holds a sender; treat it as shutdown.
            Some(input) => {
                let input = input.unwrap_or(Input::Shutdown);
                session.apply(machine, carry, &mut writers, epoch, &mut turn, input);
                session.apply_ready(machine, carry, &mut writers, epoch, &mut turn, |inbox| {
                    inbox.try_recv().ok()
                });
                // Let the executor run this thread's socket tasks before the next
                // turn (a ready channel never makes this future wait by itself).
                futures_lite::future::yield_now().await;
            }
            None => machine.handle_timeout(session.now()),
        }
    }
}

/// Let the sockets we closed finish their close handshakes, within a bound.
async fn linger(sockets: Vec<Task<()>>) {
    let all = async {
        futures_util::future::join_all(sockets).await;
    };
    let bound = Deadline(Instant::now() + CLOSE_LINGER);
    futures_lite::future::or(all, bound).await;
}
