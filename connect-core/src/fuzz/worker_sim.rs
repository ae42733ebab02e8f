//! A scripted gateway and simulated time for driving the worker machine.
//!
//! [`Sim`] owns a [`Worker`], a simulated clock and a [`Script`]: a
//! gateway counterpart that answers the worker's outputs on the spot (start
//! calls, dials, HELLO/READY, heartbeats, lease extensions, reply ACKs,
//! flushes), each behaviour switchable so that a test can take over by hand.
//! Every output is recorded, and after every step the harness checks the
//! run-loop invariants (DESIGN.md "no-spin"), that nothing is written to a
//! retired connection and that `Closed` is the last event.
#![allow(dead_code)]

use std::collections::{HashSet, VecDeque};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::payload::{FunctionConfig, Trigger};
use crate::wire::{
    GatewayConnectionReadyData, GatewayExecutorRequestData, Limits, Message, SdkResponse, StartRequest,
    StartResponse, SystemError, WorkerReplyAckData, WorkerRequestExtendLeaseAckData, decode_body,
    encode_body,
};
use crate::worker::{
    ConnId, ConnectionState, Durable, Event, HttpId, HttpRequest, HttpResponse, Output, Reply, Timer, Worker,
    WorkerConfig,
};
use bytes::Bytes;
use ulid::Ulid;

pub const SECOND: Duration = Duration::from_secs(1);

pub fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

pub fn ms(m: u64) -> Duration {
    Duration::from_millis(m)
}

/// The wall clock at the simulation's base instant.
pub fn wall_base() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_750_000_000)
}

/// A worker config for tests: one app with one function, seed 1.
pub fn config() -> WorkerConfig {
    let f = FunctionConfig::new("app-hello", "hello", Trigger::event("test/hello"));
    let mut c = WorkerConfig::new("app", vec![f], "instance-1", wall_base());
    c.seed = 1;
    c
}

/// How the scripted gateway extends leases.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Extend {
    /// Answer with a fresh lease id.
    Renew,
    /// Answer without a lease id (lease lost).
    Nack,
    /// Do not answer.
    Ignore,
}

/// The gateway's behaviour. Every switch defaults to "behave like Inngest".
#[derive(Clone, Debug)]
pub struct Script {
    /// Answer start calls with this status (200 = a StartResponse), or leave them pending (None).
    pub start_status: Option<u16>,
    pub accept_dials: bool,
    pub send_hello: bool,
    pub send_ready: bool,
    pub ready: GatewayConnectionReadyData,
    pub answer_heartbeats: bool,
    pub ack_replies: bool,
    pub extend: Extend,
    /// Answer flush calls with this status, or leave them pending (None).
    pub flush_status: Option<u16>,
}

impl Default for Script {
    fn default() -> Self {
        Script {
            start_status: Some(200),
            accept_dials: true,
            send_hello: true,
            send_ready: true,
            ready: GatewayConnectionReadyData {
                heartbeat_interval: "10s".into(),
                extend_lease_interval: "30s".into(),
                status_interval: "0s".into(),
            },
            answer_heartbeats: true,
            ack_replies: true,
            extend: Extend::Renew,
            flush_status: Some(200),
        }
    }
}

/// One thing the worker did, decoded for assertions.
#[derive(Clone, Debug, PartialEq)]
pub enum Did {
    Http {
        id: HttpId,
        request: HttpRequest,
    },
    Connect {
        conn: ConnId,
        url: String,
    },
    Send {
        conn: ConnId,
        msg: Message,
    },
    Close {
        conn: ConnId,
        code: u16,
        reason: String,
    },
    Event(Event),
    /// Not the worker's doing: the gateway or the network closed `conn`.
    PeerClosed {
        conn: ConnId,
    },
}

pub struct Sim {
    pub w: Worker,
    pub base: Instant,
    pub now: Instant,
    pub script: Script,
    /// Everything the worker did, in order, with the time.
    pub log: Vec<(Duration, Did)>,
    /// Start/flush calls not answered by the script.
    pub pending_http: VecDeque<(HttpId, HttpRequest)>,
    /// Dials not answered by the script.
    pub pending_dials: VecDeque<ConnId>,
    /// Connections the gateway considers open.
    pub open: Vec<ConnId>,
    /// Connections the worker must never write to again.
    pub retired: HashSet<ConnId>,
    /// Which gateway group each start response handed out, by connection order.
    pub groups: Vec<String>,
    pub start_bodies: Vec<StartRequest>,
    pub flushed: Vec<SdkResponse>,
    /// Every lease the gateway handed out (delivery or renewal): request id and time.
    pub lease_grants: Vec<(String, Duration)>,
    /// Every NACK the gateway sent: request id and time.
    pub nacks: Vec<(String, Duration)>,
    lease_counter: u128,
    group_counter: u32,
    closed_seen: bool,
}

impl Sim {
    /// A worker whose simulated time starts at `origin`.
    pub fn new(origin: Instant, config: WorkerConfig) -> Sim {
        Sim::with_durable(origin, config, Durable::default())
    }

    pub fn with_durable(origin: Instant, config: WorkerConfig, durable: Durable) -> Sim {
        Sim::build(origin, config, durable, Script::default())
    }

    /// A sim from a durable state and a script set before the first output is handled.
    pub fn build(origin: Instant, config: WorkerConfig, durable: Durable, script: Script) -> Sim {
        let base = origin;
        let w = Worker::new(config, durable, base).expect("valid config");
        Sim::wrap(w, base, base, script)
    }

    /// Start a new machine at the same simulated time (a respawn).
    pub fn respawn(&mut self, config: WorkerConfig) {
        let durable = self.w.take_durable();
        let mut config = config;
        config.started_at = self.wall(self.now);
        self.w = Worker::new(config, durable, self.now).expect("valid config");
        let t = self.elapsed();
        for conn in std::mem::take(&mut self.open) {
            self.retired.insert(conn);
            self.log.push((t, Did::PeerClosed { conn }));
        }
        self.pending_http.clear();
        self.pending_dials.clear();
        self.closed_seen = false;
        self.pump();
    }

    fn wrap(w: Worker, base: Instant, now: Instant, script: Script) -> Sim {
        let mut sim = Sim {
            w,
            base,
            now,
            script,
            log: Vec::new(),
            pending_http: VecDeque::new(),
            pending_dials: VecDeque::new(),
            open: Vec::new(),
            retired: HashSet::new(),
            groups: Vec::new(),
            start_bodies: Vec::new(),
            flushed: Vec::new(),
            lease_grants: Vec::new(),
            nacks: Vec::new(),
            lease_counter: 0,
            group_counter: 0,
            closed_seen: false,
        };
        sim.pump();
        sim
    }

    /// A sim whose script is set before the first output is handled.
    pub fn scripted(origin: Instant, config: WorkerConfig, script: Script) -> Sim {
        let base = origin;
        let w = Worker::new(config, Durable::default(), base).expect("valid config");
        Sim::wrap(w, base, base, script)
    }

    pub fn elapsed(&self) -> Duration {
        self.now - self.base
    }

    pub fn wall(&self, at: Instant) -> SystemTime {
        wall_base() + (at - self.base)
    }

    /// A lease id as the executor makes them: a ULID whose time is the expiry (now + 2 min).
    pub fn new_lease(&mut self) -> String {
        self.lease_counter += 1;
        let expiry = self.wall(self.now) + Duration::from_secs(120);
        let ms = expiry.duration_since(UNIX_EPOCH).expect("after epoch").as_millis() as u64;
        Ulid::from_parts(ms, self.lease_counter).to_string()
    }

    // ---- driving --------------------------------------------------------

    /// Drain the worker's outputs, let the script answer them, repeat until quiet.
    pub fn pump(&mut self) {
        for _ in 0..10_000 {
            let Some(out) = self.w.poll_output() else {
                self.check_quiet();
                return;
            };
            self.record(out);
        }
        panic!("the worker produced outputs without end (spin)");
    }

    fn check_quiet(&self) {
        match self.w.poll_timeout() {
            None => {}
            Some((at, why)) => {
                assert!(why != Timer::Output, "drained but poll_timeout says outputs are queued");
                assert!(
                    at > self.now,
                    "drained at {:?} but {why:?} is due at {:?}: a spin",
                    self.elapsed(),
                    at - self.base
                );
            }
        }
    }

    fn record(&mut self, out: Output) {
        assert!(!self.closed_seen, "output after Closed: {out:?}");
        let t = self.elapsed();
        match out {
            Output::Http { id, request } => {
                self.log.push((t, Did::Http { id, request: request.clone() }));
                self.on_http(id, request);
            }
            Output::Connect { conn, url, subprotocol, .. } => {
                assert_eq!(subprotocol, "v0.connect.inngest.com");
                assert!(!self.retired.contains(&conn), "dial on a retired id");
                self.log.push((t, Did::Connect { conn, url }));
                if self.script.accept_dials {
                    self.accept(conn);
                } else {
                    self.pending_dials.push_back(conn);
                }
            }
            Output::Send { conn, frame } => {
                assert!(!self.retired.contains(&conn), "write on retired connection {conn:?}");
                assert!(self.open.contains(&conn), "write on a connection that is not open: {conn:?}");
                let msg = Message::decode(frame, &Limits::default()).expect("worker frames decode");
                self.log.push((t, Did::Send { conn, msg: msg.clone() }));
                self.on_gateway_receive(conn, msg);
            }
            Output::Close { conn, code, reason } => {
                assert!(!self.retired.contains(&conn), "close of retired connection {conn:?}");
                self.retired.insert(conn);
                self.open.retain(|c| *c != conn);
                self.pending_dials.retain(|c| *c != conn);
                self.log.push((t, Did::Close { conn, code, reason }));
            }
            Output::Event(e) => {
                if e == Event::Closed {
                    self.closed_seen = true;
                }
                self.log.push((t, Did::Event(e)));
            }
        }
    }

    fn on_http(&mut self, id: HttpId, request: HttpRequest) {
        let status = if request.url.ends_with("/v0/connect/start") {
            self.start_bodies.push(decode_body(request.body.clone(), "StartRequest").expect("start body"));
            self.script.start_status
        } else {
            assert!(request.url.ends_with("/v0/connect/flush"), "unknown url {}", request.url);
            let resp: SdkResponse = decode_body(request.body.clone(), "SDKResponse").expect("flush body");
            if self.script.flush_status == Some(200) {
                self.flushed.push(resp);
            }
            self.script.flush_status
        };
        match status {
            Some(status) => self.answer_http(id, &request, status),
            None => self.pending_http.push_back((id, request)),
        }
    }

    /// Answer an HTTP call the way the script's status says.
    pub fn answer_http(&mut self, id: HttpId, request: &HttpRequest, status: u16) {
        let body = if status == 200 && request.url.ends_with("/start") {
            self.group_counter += 1;
            let group = format!("gw-{}", self.group_counter);
            self.groups.push(group.clone());
            encode_body(&StartResponse {
                connection_id: Ulid::from_parts(1, u128::from(self.group_counter)).to_string(),
                gateway_endpoint: format!("ws://{group}/v0/connect"),
                gateway_group: group,
                session_token: "jwt".into(),
                sync_token: "sync".into(),
            })
        } else {
            Bytes::from_static(b"{\"error\":\"nope\"}")
        };
        self.w.handle_http_response(self.now, id, Ok(HttpResponse { status, body }));
    }

    /// Answer the oldest pending HTTP call with a raw result.
    pub fn answer_pending_http(&mut self, result: Result<HttpResponse, String>) -> HttpRequest {
        let (id, req) = self.pending_http.pop_front().expect("a pending HTTP call");
        self.w.handle_http_response(self.now, id, result);
        self.pump();
        req
    }

    /// Accept a dial: the upgrade succeeds and (per script) HELLO follows.
    pub fn accept(&mut self, conn: ConnId) {
        self.open.push(conn);
        self.w.handle_connected(self.now, conn);
        if self.script.send_hello {
            self.w.handle_frame(self.now, conn, Bytes::new());
        }
    }

    fn on_gateway_receive(&mut self, conn: ConnId, msg: Message) {
        match msg {
            Message::WorkerConnect(_) if self.script.send_ready => {
                let ready = Message::GatewayConnectionReady(self.script.ready.clone());
                self.deliver(conn, ready);
            }
            Message::WorkerHeartbeat if self.script.answer_heartbeats => {
                self.deliver(conn, Message::GatewayHeartbeat);
            }
            Message::WorkerReply(r) if self.script.ack_replies => {
                let ack = Message::WorkerReplyAck(WorkerReplyAckData { request_id: r.request_id.clone() });
                self.deliver(conn, ack);
            }
            Message::WorkerRequestExtendLease(e) => {
                let new_lease_id = match self.script.extend {
                    Extend::Ignore => return,
                    Extend::Nack => {
                        self.nacks.push((e.request_id.clone(), self.elapsed()));
                        None
                    }
                    Extend::Renew => {
                        self.lease_grants.push((e.request_id.clone(), self.elapsed()));
                        Some(self.new_lease())
                    }
                };
                let ack = WorkerRequestExtendLeaseAckData {
                    request_id: e.request_id.clone(),
                    account_id: e.account_id.clone(),
                    env_id: e.env_id.clone(),
                    app_id: e.app_id.clone(),
                    function_slug: e.function_slug.clone(),
                    new_lease_id,
                };
                self.deliver(conn, Message::WorkerRequestExtendLeaseAck(Box::new(ack)));
            }
            _ => {}
        }
    }

    /// The gateway sends `msg` on `conn` (no pump).
    pub fn deliver(&mut self, conn: ConnId, msg: Message) {
        assert!(self.open.contains(&conn), "gateway sending on a closed connection");
        if let Message::GatewayExecutorRequest(r) = &msg {
            self.lease_grants.push((r.request_id.clone(), self.elapsed()));
        }
        let frame = msg.encode(&Limits::default()).expect("encodes");
        self.w.handle_frame(self.now, conn, frame);
    }

    /// The gateway sends `msg` on `conn`, then the sim pumps.
    pub fn send(&mut self, conn: ConnId, msg: Message) {
        self.deliver(conn, msg);
        self.pump();
    }

    /// The gateway sends raw bytes.
    pub fn send_raw(&mut self, conn: ConnId, frame: Bytes) {
        self.w.handle_frame(self.now, conn, frame);
        self.pump();
    }

    /// The gateway (or the network) closes `conn`.
    pub fn close(&mut self, conn: ConnId, close: Option<(u16, &str)>) {
        self.log.push((self.elapsed(), Did::PeerClosed { conn }));
        self.open.retain(|c| *c != conn);
        self.retired.insert(conn);
        self.w.handle_closed(self.now, conn, close.map(|(c, r)| (c, r.to_owned())));
        self.pump();
    }

    /// Let `d` of simulated time pass, firing timers in order.
    pub fn advance(&mut self, d: Duration) {
        let target = self.now + d;
        self.pump();
        for _ in 0..1_000_000 {
            match self.w.poll_timeout() {
                Some((at, _)) if at <= target => {
                    self.now = self.now.max(at);
                    self.w.handle_timeout(self.now);
                    self.pump();
                }
                _ => break,
            }
        }
        self.now = target;
        self.w.handle_timeout(self.now);
        self.pump();
    }

    /// Run until `cond` holds, at most `limit` of simulated time.
    pub fn run_until(&mut self, limit: Duration, mut cond: impl FnMut(&Sim) -> bool) {
        let end = self.now + limit;
        while !cond(self) {
            assert!(self.now < end, "condition not met within {limit:?}");
            let step = match self.w.poll_timeout() {
                Some((at, _)) if at <= end => at.saturating_duration_since(self.now).max(ms(1)),
                _ => end - self.now,
            };
            self.advance(step);
        }
    }

    pub fn reply(&mut self, request_id: &str, reply: Reply) {
        self.w.reply(self.now, request_id, reply).expect("known request");
        self.pump();
    }

    pub fn shutdown(&mut self) {
        self.w.shutdown(self.now);
        self.pump();
    }

    // ---- requests ---------------------------------------------------------

    /// A request as the executor makes one.
    pub fn request(&mut self, request_id: &str) -> GatewayExecutorRequestData {
        GatewayExecutorRequestData {
            request_id: request_id.into(),
            account_id: "acct".into(),
            env_id: "env".into(),
            app_id: "app-uuid".into(),
            app_name: "app".into(),
            function_id: "fn-uuid".into(),
            function_slug: "app-hello".into(),
            step_id: Some("step".into()),
            request_payload: Bytes::from_static(b"{\"event\":{\"name\":\"test/hello\"}}"),
            system_trace_ctx: Bytes::from_static(b"{\"traceparent\":\"00-abc-def-01\"}"),
            user_trace_ctx: Bytes::from_static(b"{\"traceparent\":\"00-123-456-01\"}"),
            run_id: "01JRUN0000000000000000000".into(),
            lease_id: self.new_lease(),
            job_id: String::new(),
        }
    }

    /// Deliver a fresh request on the active connection.
    pub fn invoke(&mut self, request_id: &str) -> ConnId {
        let conn = self.active_conn();
        let req = self.request(request_id);
        self.send(conn, Message::GatewayExecutorRequest(Box::new(req)));
        conn
    }

    // ---- queries ----------------------------------------------------------

    pub fn state(&self) -> ConnectionState {
        self.w.state()
    }

    /// The connection that last became ACTIVE.
    pub fn active_conn(&self) -> ConnId {
        self.events()
            .iter()
            .rev()
            .find_map(|e| match e {
                Event::Ready { conn, .. } => Some(*conn),
                _ => None,
            })
            .expect("a connection became ready")
    }

    pub fn events(&self) -> Vec<Event> {
        self.log
            .iter()
            .filter_map(|(_, d)| match d {
                Did::Event(e) => Some(e.clone()),
                _ => None,
            })
            .collect()
    }

    pub fn states(&self) -> Vec<ConnectionState> {
        self.events()
            .into_iter()
            .filter_map(|e| match e {
                Event::StateChanged(s) => Some(s),
                _ => None,
            })
            .collect()
    }

    /// Messages the worker sent on `conn`.
    pub fn sent_on(&self, conn: ConnId) -> Vec<Message> {
        self.log
            .iter()
            .filter_map(|(_, d)| match d {
                Did::Send { conn: c, msg } if *c == conn => Some(msg.clone()),
                _ => None,
            })
            .collect()
    }

    /// Every message the worker sent, with its connection and time.
    pub fn sent(&self) -> Vec<(Duration, ConnId, Message)> {
        self.log
            .iter()
            .filter_map(|(t, d)| match d {
                Did::Send { conn, msg } => Some((*t, *conn, msg.clone())),
                _ => None,
            })
            .collect()
    }

    pub fn count_sent(&self, f: impl Fn(&Message) -> bool) -> usize {
        self.sent().iter().filter(|(_, _, m)| f(m)).count()
    }

    pub fn closes(&self) -> Vec<(ConnId, u16, String)> {
        self.log
            .iter()
            .filter_map(|(_, d)| match d {
                Did::Close { conn, code, reason } => Some((*conn, *code, reason.clone())),
                _ => None,
            })
            .collect()
    }

    pub fn dials(&self) -> Vec<(Duration, ConnId, String)> {
        self.log
            .iter()
            .filter_map(|(t, d)| match d {
                Did::Connect { conn, url } => Some((*t, *conn, url.clone())),
                _ => None,
            })
            .collect()
    }

    pub fn http_calls(&self) -> Vec<(Duration, HttpRequest)> {
        self.log
            .iter()
            .filter_map(|(t, d)| match d {
                Did::Http { request, .. } => Some((*t, request.clone())),
                _ => None,
            })
            .collect()
    }

    pub fn start_calls(&self) -> Vec<(Duration, HttpRequest)> {
        self.http_calls().into_iter().filter(|(_, r)| r.url.ends_with("/start")).collect()
    }

    pub fn invocations(&self) -> Vec<String> {
        self.events()
            .into_iter()
            .filter_map(|e| match e {
                Event::Invocation(r) => Some(r.request_id().to_owned()),
                _ => None,
            })
            .collect()
    }

    pub fn has_event(&self, want: &Event) -> bool {
        self.events().iter().any(|e| e == want)
    }

    pub fn closed(&self) -> bool {
        self.closed_seen
    }
}

/// Messages of a kind, for assertions.
pub fn is_heartbeat(m: &Message) -> bool {
    matches!(m, Message::WorkerHeartbeat)
}
pub fn is_extend(m: &Message) -> bool {
    matches!(m, Message::WorkerRequestExtendLease(_))
}
pub fn is_reply(m: &Message) -> bool {
    matches!(m, Message::WorkerReply(_))
}
pub fn is_ack(m: &Message) -> bool {
    matches!(m, Message::WorkerRequestAck(_))
}

pub fn sync_failed(code: &str) -> Message {
    Message::SyncFailed(SystemError { code: code.into(), data: None, message: "bad config".into() })
}
