//! The one task that owns the sans-IO [`Server`]: every socket and HTTP
//! handler talks to it through [`Cmd`]s, it sleeps until the machine's next
//! deadline, and it hands frames to each connection's writer. Nothing else
//! touches protocol state, so there are no locks on the frame path.

use std::collections::HashMap;
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use connect_core::gateway::executor::RunEvent;
use connect_core::gateway::run::{ConnStatus, ConnectionInfo, Run, RunStatus};
use connect_core::gateway::{CloseFrame, ConnId, Event, HttpError, Server, ServerOutput};
use connect_core::wire::{FlushResponse, StartResponse};
use serde_json::Value;
use tokio::sync::mpsc;

/// A way back to whoever asked: a blocking caller's channel or an async caller's oneshot.
pub(crate) type Reply<T> = Box<dyn FnOnce(T) + Send>;

/// What a connection task is told to do with its socket.
#[derive(Debug)]
pub(crate) enum WsOut {
    Frame(Bytes),
    /// Send this close frame, or drop the socket without one.
    Close(Option<CloseFrame>),
}

/// One event of a `POST /e/{key}` body.
#[derive(Debug, Clone, serde::Deserialize)]
pub(crate) struct EventIn {
    pub name: String,
    #[serde(default)]
    pub data: Value,
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub ts: Option<i64>,
}

/// A condition a caller waits for, checked after every step until it holds or its deadline passes.
pub(crate) struct Waiter {
    pub deadline: Instant,
    /// Returns true once it has replied.
    pub check: Box<dyn FnMut(&Server) -> bool + Send>,
}

pub(crate) enum Cmd {
    Accept {
        writer: mpsc::UnboundedSender<WsOut>,
        reply: Reply<ConnId>,
    },
    /// `at`: when the socket task read it, so that queueing here does not stretch heartbeat gaps.
    Frame {
        conn: ConnId,
        frame: Bytes,
        at: Instant,
    },
    TooLarge {
        conn: ConnId,
    },
    Closed {
        conn: ConnId,
        close: Option<CloseFrame>,
    },
    Start {
        auth: Option<String>,
        body: Bytes,
        endpoint: String,
        reply: Reply<Result<StartResponse, HttpError>>,
    },
    Flush {
        auth: Option<String>,
        body: Bytes,
        reply: Reply<Result<FlushResponse, HttpError>>,
    },
    Events {
        events: Vec<EventIn>,
        reply: Reply<Vec<String>>,
    },
    Query(Box<dyn FnOnce(&Server) + Send>),
    Cancel {
        run_id: String,
        reply: Reply<bool>,
    },
    Drain {
        reply: Reply<usize>,
    },
    /// Refuse the next `n` lease extensions (fault injection); replaces an unused budget.
    NackExtensions {
        n: usize,
        reply: Reply<()>,
    },
    Wait(Waiter),
    /// Tell this channel about every run end from now on.
    WatchRunEnds(std::sync::mpsc::Sender<crate::RunEnd>),
    Shutdown {
        reply: Reply<()>,
    },
}

/// How long shutdown waits for sockets to send their close frames.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_millis(500);

pub(crate) async fn run(mut server: Server, mut rx: mpsc::UnboundedReceiver<Cmd>) {
    let mut writers: HashMap<ConnId, mpsc::UnboundedSender<WsOut>> = HashMap::new();
    let mut waiters: Vec<Waiter> = Vec::new();
    let mut forced_nacks = 0usize;
    let mut watchers: Vec<std::sync::mpsc::Sender<crate::RunEnd>> = Vec::new();
    loop {
        let machine = server.poll_timeout().map(|(at, _)| at);
        // Waiters past their deadline are dropped, which tells their caller it timed out.
        let waiter = waiters.iter().map(|w| w.deadline).min();
        let deadline = machine.into_iter().chain(waiter).min().map(tokio::time::Instant::from_std);
        let step = tokio::select! {
            cmd = rx.recv() => match cmd {
                Some(cmd) => Step::Cmd(cmd),
                None => Step::Closed,
            },
            _ = sleep_until(deadline) => Step::Timer,
        };
        let mut shutdown = None;
        let mut closing: Vec<mpsc::UnboundedSender<WsOut>> = Vec::new();
        match step {
            Step::Cmd(cmd) => match cmd {
                Cmd::Accept { writer, reply } => {
                    let conn = server.accept(Instant::now());
                    writers.insert(conn, writer);
                    reply(conn);
                }
                Cmd::Frame { conn, frame, at } => {
                    let frame = match forced_nacks {
                        0 => frame,
                        _ => match lose_lease(&frame) {
                            Some(stale) => {
                                forced_nacks -= 1;
                                stale
                            }
                            None => frame,
                        },
                    };
                    server.handle_frame(at, conn, frame)
                }
                Cmd::TooLarge { conn } => server.handle_frame_too_large(Instant::now(), conn),
                Cmd::Closed { conn, close } => server.handle_closed(Instant::now(), conn, close),
                Cmd::Start { auth, body, endpoint, reply } => {
                    reply(server.handle_start(Instant::now(), auth.as_deref(), body, endpoint))
                }
                Cmd::Flush { auth, body, reply } => {
                    reply(server.handle_flush(Instant::now(), auth.as_deref(), body))
                }
                Cmd::Events { events, reply } => {
                    let now = Instant::now();
                    let ids = events
                        .into_iter()
                        .map(|e| server.send_event(now, &e.name, e.data, e.id, e.ts))
                        .collect();
                    reply(ids)
                }
                Cmd::Query(f) => f(&server),
                Cmd::Cancel { run_id, reply } => reply(server.cancel(Instant::now(), &run_id)),
                Cmd::Drain { reply } => {
                    let n = server.drain(Instant::now());
                    tracing::info!(
                        connections = n,
                        "drain: GATEWAY_CLOSING sent, new connections join a fresh gateway group"
                    );
                    reply(n)
                }
                Cmd::NackExtensions { n, reply } => {
                    forced_nacks = n;
                    reply(())
                }
                Cmd::Wait(w) => waiters.push(w),
                Cmd::WatchRunEnds(tx) => watchers.push(tx),
                Cmd::Shutdown { reply } => {
                    closing = writers.values().cloned().collect();
                    server.close_all(Instant::now());
                    shutdown = Some(reply);
                }
            },
            Step::Closed => break,
            Step::Timer => server.handle_timeout(Instant::now()),
        }
        dispatch(&mut server, &mut writers, &mut watchers);
        if !waiters.is_empty() {
            let now = Instant::now();
            waiters.retain_mut(|w| w.deadline > now && !(w.check)(&server));
        }
        if let Some(reply) = shutdown {
            // Give the socket tasks a moment to send their 1001 close frames before the runtime goes.
            let end = Instant::now() + SHUTDOWN_GRACE;
            while Instant::now() < end && closing.iter().any(|w| !w.is_closed()) {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            reply(());
            break;
        }
    }
}

impl std::fmt::Debug for Cmd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Cmd")
    }
}

/// A WORKER_REQUEST_EXTEND_LEASE rewritten to name a lease id that is not the
/// current one, so that the gateway NACKs it as it would a lease it lost, and
/// the lease then expires and the request is retried elsewhere. `None` for
/// every other frame.
fn lose_lease(frame: &Bytes) -> Option<Bytes> {
    use connect_core::wire::{Limits, Message};
    let Ok(Message::WorkerRequestExtendLease(mut ext)) = Message::decode(frame.clone(), &Limits::default())
    else {
        return None;
    };
    let expiry = connect_core::gateway::lease::lease_expiry(&ext.lease_id)?;
    let ms = expiry.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
    ext.lease_id = ulid::Ulid::from_parts(ms, 0).to_string();
    Message::WorkerRequestExtendLease(ext)
        .encode(&Limits { max_send_frame: usize::MAX, max_recv_frame: 0 })
        .ok()
}

enum Step {
    Cmd(Cmd),
    Closed,
    Timer,
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

fn dispatch(
    server: &mut Server,
    writers: &mut HashMap<ConnId, mpsc::UnboundedSender<WsOut>>,
    watchers: &mut Vec<std::sync::mpsc::Sender<crate::RunEnd>>,
) {
    while let Some(out) = server.poll_output() {
        match out {
            ServerOutput::Send { conn, frame } => {
                if let Some(w) = writers.get(&conn) {
                    let _ = w.send(WsOut::Frame(frame));
                }
            }
            ServerOutput::Close { conn, frame } => {
                if let Some(w) = writers.get(&conn) {
                    let _ = w.send(WsOut::Close(frame));
                }
            }
            ServerOutput::Gateway(event) => {
                if let Event::Disconnected { conn, .. } = &event {
                    writers.remove(conn);
                }
                log_gateway(server, &event);
            }
            ServerOutput::Run(event) => {
                if let RunEvent::Ended { run_id, event_id, status } = &event
                    && !watchers.is_empty()
                {
                    let end = crate::RunEnd {
                        run_id: run_id.clone(),
                        event_id: event_id.clone(),
                        status: *status,
                        at: Instant::now(),
                    };
                    watchers.retain(|w| w.send(end.clone()).is_ok());
                }
                log_run(server, &event)
            }
        }
    }
}

fn log_gateway(server: &Server, event: &Event) {
    match event {
        Event::Connected { conn, worker } => {
            let apps: Vec<&str> = worker.apps.iter().map(|a| a.name.as_str()).collect();
            let functions: usize = worker.apps.iter().map(|a| a.functions.len()).sum();
            tracing::info!(%conn, instance = %worker.instance_id, ?apps, functions,
                sdk = %format!("{}:{}", worker.sdk_language, worker.sdk_version), group = %worker.group,
                "connection: worker connected");
        }
        Event::Disconnected { conn, disconnect, released } => {
            let info = server.executor().connection(*conn);
            let (heartbeats, late, max_gap_ms) =
                info.map_or((0, 0, 0.0), |c| (c.heartbeats, c.late, c.max_gap.as_secs_f64() * 1000.0));
            tracing::info!(%conn, reason = %disconnect.reason, by_gateway = disconnect.by_gateway,
                close = ?disconnect.close, released = released.len(), heartbeats, late, max_gap_ms,
                "connection: closed");
        }
        Event::Draining { conn } => tracing::debug!(%conn, "connection: GATEWAY_CLOSING sent"),
        Event::Paused { conn, .. } => tracing::debug!(%conn, "connection: worker paused"),
        _ => tracing::trace!(?event, "gateway event"),
    }
}

fn log_run(server: &Server, event: &RunEvent) {
    match event {
        RunEvent::Ended { run_id, status, .. } => {
            let run = server.run(run_id);
            let function = run.map_or("", |r| r.function_id.as_str());
            let attempts = run.map_or(0, |r| r.attempts.len());
            match status {
                RunStatus::Completed => tracing::info!(%run_id, function, attempts, "run: Completed"),
                _ => {
                    tracing::warn!(%run_id, function, attempts, output = ?run.and_then(|r| r.output.as_ref()),
                    "run: {status:?}")
                }
            }
        }
        RunEvent::Retrying { run_id, attempt, error } => {
            tracing::info!(%run_id, attempt, %error, "run: retrying")
        }
        _ => tracing::debug!(?event, "run event"),
    }
}

/// A waiter that replies with the runs of `id` (a run id, or an event id's runs) once all have ended.
pub(crate) fn run_end_waiter(id: String, deadline: Instant, reply: Reply<Vec<Run>>) -> Waiter {
    let mut reply = Some(reply);
    Waiter {
        deadline,
        check: Box::new(move |server: &Server| {
            let runs: Vec<Run> = match server.run(&id) {
                Some(run) => vec![run.clone()],
                None => server.runs_for_event(&id).into_iter().cloned().collect(),
            };
            let known = !runs.is_empty() || server.executor().event(&id).is_some();
            if known && runs.iter().all(|r| r.status.is_end()) {
                if let Some(reply) = reply.take() {
                    reply(runs);
                }
                return true;
            }
            false
        }),
    }
}

/// A waiter that replies with every connection seen once `pred` holds for them.
pub(crate) fn connections_waiter(
    mut pred: impl FnMut(&Server, &[ConnectionInfo]) -> bool + Send + 'static,
    deadline: Instant,
    reply: Reply<Vec<ConnectionInfo>>,
) -> Waiter {
    let mut reply = Some(reply);
    Waiter {
        deadline,
        check: Box::new(move |server: &Server| {
            let conns = server.connections();
            if pred(server, &conns) {
                if let Some(reply) = reply.take() {
                    reply(conns);
                }
                return true;
            }
            false
        }),
    }
}

/// `n` Ready connections, and (if named) a registered `function`.
pub(crate) fn ready(
    n: usize,
    function: Option<String>,
) -> impl FnMut(&Server, &[ConnectionInfo]) -> bool + Send {
    move |server, conns| {
        conns.iter().filter(|c| c.status == ConnStatus::Ready).count() >= n
            && function.as_ref().is_none_or(|f| server.executor().functions().contains(f))
    }
}

pub(crate) fn new_server(config: &crate::DevConfig) -> Server {
    Server::new(config.gateway_config(), config.executor_config(), Instant::now(), SystemTime::now())
}
