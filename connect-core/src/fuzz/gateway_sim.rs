//! Simulated time and hand-driven worker sockets for the gateway [`Server`].
//!
//! [`Sim`] owns a `Server` (gateway + executor) and a simulated clock. Tests
//! play the workers frame by frame: `send` a message on a connection, `recv`
//! what the gateway sent there. Every output is recorded; after every step
//! the harness checks the run-loop invariants (DESIGN.md "no-spin"): once the
//! queue is drained the next deadline is later than now, and nothing is sent
//! on a connection after its close.
#![allow(dead_code)]

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::gateway::executor::{ExecutorConfig, RunEvent};
use crate::gateway::run::{Run, RunStatus};
use crate::gateway::{CloseFrame, ConnId, Event, GatewayConfig, Server, ServerOutput};
use crate::payload::{FunctionConfig, Trigger};
use crate::wire::*;
use bytes::Bytes;

pub fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

pub fn ms(m: u64) -> Duration {
    Duration::from_millis(m)
}

pub fn wall_base() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_750_000_000)
}

/// Inngest's defaults (10 s heartbeats, 30 s extensions, 2 min leases), seed 7.
pub fn config() -> GatewayConfig {
    GatewayConfig { seed: 7, ..GatewayConfig::default() }
}

pub fn function(slug: &str, event: &str, retries: u32) -> FunctionConfig {
    FunctionConfig::new(slug, slug, Trigger::event(event)).with_retries(retries)
}

pub struct Sim {
    pub server: Server,
    pub now: Instant,
    base: Instant,
    inbox: HashMap<ConnId, VecDeque<Message>>,
    pub closes: HashMap<ConnId, Option<CloseFrame>>,
    pub events: Vec<Event>,
    pub runs: Vec<RunEvent>,
    closed: HashSet<ConnId>,
}

impl Sim {
    /// A gateway whose simulated time starts at `origin`.
    pub fn new(origin: Instant, gateway: GatewayConfig) -> Sim {
        Sim::with(origin, gateway, ExecutorConfig { seed: 7, ..ExecutorConfig::default() })
    }

    pub fn with(origin: Instant, gateway: GatewayConfig, executor: ExecutorConfig) -> Sim {
        let base = origin;
        let mut sim = Sim {
            server: Server::new(gateway, executor, base, wall_base()),
            now: base,
            base,
            inbox: HashMap::new(),
            closes: HashMap::new(),
            events: Vec::new(),
            runs: Vec::new(),
            closed: HashSet::new(),
        };
        sim.drain();
        sim
    }

    /// Simulated time since the start.
    pub fn elapsed(&self) -> Duration {
        self.now - self.base
    }

    pub fn wall(&self) -> SystemTime {
        wall_base() + self.elapsed()
    }

    /// Move time forward by `d`, firing every deadline on the way at its own instant.
    pub fn advance(&mut self, d: Duration) {
        let target = self.now + d;
        while let Some((at, _why)) = self.server.poll_timeout() {
            if at > target {
                break;
            }
            self.now = self.now.max(at);
            self.server.handle_timeout(self.now);
            self.drain();
        }
        self.now = target;
        self.server.handle_timeout(self.now);
        self.drain();
    }

    /// Record every output and check the no-spin invariants.
    pub fn drain(&mut self) {
        while let Some(out) = self.server.poll_output() {
            match out {
                ServerOutput::Send { conn, frame } => {
                    assert!(!self.closed.contains(&conn), "sent on {conn} after closing it");
                    let msg = Message::decode(frame, &Limits::default()).expect("gateway frames decode");
                    self.inbox.entry(conn).or_default().push_back(msg);
                }
                ServerOutput::Close { conn, frame } => {
                    assert!(self.closed.insert(conn), "{conn} closed twice");
                    self.closes.insert(conn, frame);
                }
                ServerOutput::Gateway(e) => self.events.push(e),
                ServerOutput::Run(r) => self.runs.push(r),
            }
        }
        if let Some((at, why)) = self.server.poll_timeout() {
            assert!(at > self.now, "spin: deadline {why:?} at {at:?} is not after now {:?}", self.now);
        }
    }

    // ---- playing a worker ----

    pub fn start(&mut self) -> StartResponse {
        let r = self.server.handle_start(self.now, None, Bytes::new(), "ws://gw/v0/connect".into());
        self.drain();
        r.expect("start call")
    }

    /// Accept a socket and read its HELLO.
    pub fn accept(&mut self) -> ConnId {
        let conn = self.server.accept(self.now);
        self.drain();
        assert_eq!(self.recv(conn), Some(Message::GatewayHello));
        conn
    }

    pub fn send(&mut self, conn: ConnId, msg: Message) {
        let frame = msg.encode(&Limits::default()).expect("encode");
        self.send_raw(conn, frame);
    }

    pub fn send_raw(&mut self, conn: ConnId, frame: impl Into<Bytes>) {
        self.server.handle_frame(self.now, conn, frame.into());
        self.drain();
    }

    /// The worker closes its socket.
    pub fn close(&mut self, conn: ConnId, frame: Option<CloseFrame>) {
        self.server.handle_closed(self.now, conn, frame);
        self.drain();
    }

    /// The next message the gateway sent on `conn`, if any.
    pub fn recv(&mut self, conn: ConnId) -> Option<Message> {
        self.inbox.get_mut(&conn)?.pop_front()
    }

    /// Everything the gateway sent on `conn` since the last look.
    pub fn recv_all(&mut self, conn: ConnId) -> Vec<Message> {
        self.inbox.get_mut(&conn).map(|q| q.drain(..).collect()).unwrap_or_default()
    }

    /// The next executor request on `conn`, skipping heartbeats and acks.
    pub fn recv_request(&mut self, conn: ConnId) -> Option<GatewayExecutorRequestData> {
        let q = self.inbox.get_mut(&conn)?;
        let at = q.iter().position(|m| matches!(m, Message::GatewayExecutorRequest(_)))?;
        match q.remove(at) {
            Some(Message::GatewayExecutorRequest(r)) => Some(*r),
            _ => None,
        }
    }

    /// How the gateway closed `conn`: `Some(Some(frame))`, `Some(None)` for a drop without a frame.
    pub fn closed_with(&self, conn: ConnId) -> Option<Option<(u16, String)>> {
        self.closes.get(&conn).map(|f| f.as_ref().map(|f| (f.code, f.reason.clone())))
    }

    /// Start, accept, WORKER_CONNECT (manual readiness ack like the JS SDK), READY, WORKER_READY.
    pub fn connect(&mut self, instance: &str, functions: &[FunctionConfig]) -> ConnId {
        let start = self.start();
        let conn = self.accept();
        self.send(conn, hello(&start, instance, functions));
        match self.recv(conn) {
            Some(Message::GatewayConnectionReady(_)) => {}
            other => panic!("expected READY, got {other:?}"),
        }
        self.send(conn, Message::WorkerReady);
        conn
    }

    pub fn heartbeat(&mut self, conn: ConnId) {
        self.send(conn, Message::WorkerHeartbeat);
    }

    pub fn ack(&mut self, conn: ConnId, req: &GatewayExecutorRequestData) {
        self.send(
            conn,
            Message::WorkerRequestAck(Box::new(WorkerRequestAckData {
                request_id: req.request_id.clone(),
                run_id: req.run_id.clone(),
                function_slug: req.function_slug.clone(),
                ..Default::default()
            })),
        );
    }

    pub fn reply(
        &mut self,
        conn: ConnId,
        req: &GatewayExecutorRequestData,
        status: SdkResponseStatus,
        body: &str,
    ) {
        self.reply_with(conn, response(req, status, body));
    }

    pub fn reply_with(&mut self, conn: ConnId, resp: SdkResponse) {
        self.send(conn, Message::WorkerReply(Box::new(resp)));
    }

    pub fn extend(&mut self, conn: ConnId, req: &GatewayExecutorRequestData, lease_id: &str) {
        self.send(
            conn,
            Message::WorkerRequestExtendLease(Box::new(WorkerRequestExtendLeaseData {
                request_id: req.request_id.clone(),
                function_slug: req.function_slug.clone(),
                lease_id: lease_id.to_owned(),
                ..Default::default()
            })),
        );
    }

    pub fn send_event(&mut self, name: &str) -> String {
        let id = self.server.send_event(self.now, name, serde_json::json!({}), None, None);
        self.drain();
        id
    }

    pub fn run_of(&self, event_id: &str) -> Run {
        self.server.runs_for_event(event_id).first().map(|r| (*r).clone()).expect("event started a run")
    }

    pub fn status_of(&self, event_id: &str) -> RunStatus {
        self.run_of(event_id).status
    }

    pub fn disconnect_of(&self, conn: ConnId) -> Option<String> {
        self.events.iter().find_map(|e| match e {
            Event::Disconnected { conn: c, disconnect, .. } if *c == conn => Some(disconnect.reason.clone()),
            _ => None,
        })
    }
}

pub fn hello(start: &StartResponse, instance: &str, functions: &[FunctionConfig]) -> Message {
    Message::WorkerConnect(Box::new(hello_data(start, instance, functions)))
}

pub fn hello_data(
    start: &StartResponse,
    instance: &str,
    functions: &[FunctionConfig],
) -> WorkerConnectRequestData {
    WorkerConnectRequestData {
        connection_id: start.connection_id.clone(),
        instance_id: instance.into(),
        auth_data: Some(AuthData { session_token: start.session_token.clone(), sync_token: String::new() }),
        capabilities: Bytes::from_static(br#"{"trust_probe":"v1","connect":"v1"}"#),
        apps: vec![AppConfiguration {
            app_name: "app".into(),
            app_version: None,
            functions: Bytes::from(serde_json::to_vec(functions).expect("json")),
            feature_observations: None,
        }],
        worker_manual_readiness_ack: true,
        system_attributes: None,
        environment: None,
        framework: "connect".into(),
        platform: None,
        sdk_version: "v0.0.0".into(),
        sdk_language: "sim".into(),
        started_at: None,
        max_worker_concurrency: None,
    }
}

pub fn response(req: &GatewayExecutorRequestData, status: SdkResponseStatus, body: &str) -> SdkResponse {
    SdkResponse {
        request_id: req.request_id.clone(),
        status: status as i32,
        body: Bytes::from(body.to_owned()),
        system_trace_ctx: req.system_trace_ctx.clone(),
        run_id: req.run_id.clone(),
        ..Default::default()
    }
}

/// The wall-clock expiry a lease id encodes.
pub fn lease_expiry(lease_id: &str) -> SystemTime {
    crate::gateway::lease::lease_expiry(lease_id).expect("lease id is a ULID")
}
