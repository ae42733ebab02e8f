//! The model of the worker shared by the proptest (`tests/worker_model.rs`)
//! and the `worker_ops` fuzz target: operations against the scripted gateway
//! of [`worker_sim`](super::worker_sim) (time jumps, link down/up, heartbeat
//! silence, extension NACKs, reply ACK loss, flush failures, GATEWAY_CLOSING,
//! duplicate deliveries, raw and malformed frames, start calls answered with
//! errors or garbage, app replies, shutdown, respawns), with the invariants
//! checked after every step:
//!
//! - no spin (in `Sim::pump`): drained means the next deadline is later than `now`;
//! - nothing is written to a retired connection (in `Sim::record`);
//! - `Closed` is the last event (in `Sim::record`);
//! - the heartbeat gap on an ACTIVE connection never exceeds the interval
//!   (unless the clock jumped past it in one step);
//! - a request id is handed to the app at most once, even across a respawn;
//! - `max_worker_concurrency` is never exceeded;
//! - a lease is lost only after a NACK, a local expiry (two minutes without a
//!   renewal) or the end of the machine;
//! - every reply ends acked, flushed or reported, and none is reported twice.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::Reader;
use super::worker_sim::*;
use crate::wire::{ConnectMessage, Limits, Message, encode_body};
use crate::worker::{CommandError, ConnId, ConnectionState, Event, HttpResponse, Reply};

/// Close codes and reasons a gateway (or a proxy) may end a connection with.
pub const CLOSES: [(u16, &str); 8] = [
    (1000, ""),
    (1001, "connect_gateway_closing"),
    (1011, "connect_internal_error"),
    (1008, "connect_authentication_failed"),
    (1007, "failed to unmarshal Protobuf"),
    (1009, "read limited at 8388609 bytes"),
    (1008, "connect_worker_hello_invalid_payload"),
    (4001, "whatever"),
];

/// How a pending HTTP call (start or flush) is answered by [`Op::AnswerHttp`].
pub const HTTP_ANSWERS: [(u16, &str); 7] = [
    (200, ""), // the script's proper answer
    (200, "garbage"),
    (401, "{\"error\":\"unauthorized\"}"),
    (429, "{\"error\":\"too many connections\"}"),
    (500, "<html>oops</html>"),
    (503, ""),
    (0, "connection refused"), // a transport error
];

/// One step of the model.
#[derive(Clone, Debug)]
pub enum Op {
    /// Let this many milliseconds pass, firing every timer at its time.
    Advance(u64),
    /// The wall and monotonic clock jump forward this many seconds at once
    /// (a suspended laptop, a stopped VM): one `handle_timeout` at the end.
    Jump(u64),
    /// An input stamped this many milliseconds before the last one.
    Backwards(u64),
    /// The network drops the oldest open connection without a close frame.
    LinkDown,
    /// The gateway closes the newest open connection with `CLOSES[i]`.
    GatewayClose(u8),
    HeartbeatsAnswered(bool),
    RepliesAcked(bool),
    /// 0: renew, 1: NACK, 2: ignore extension requests.
    Extend(u8),
    /// Answer start calls at once with this status, or leave them pending (`None`).
    StartStatus(Option<u16>),
    /// Answer flush calls at once with this status, or leave them pending (`None`).
    FlushStatus(Option<u16>),
    /// Answer the oldest pending HTTP call with `HTTP_ANSWERS[i]`.
    AnswerHttp(u8),
    /// Deliver request `r{n}` (again, maybe) on the active connection.
    Deliver(u8),
    /// The app replies to `r{n}`.
    Reply(u8),
    /// GATEWAY_CLOSING on the active connection.
    Closing,
    /// A frame of any kind number with any payload on the newest open connection.
    Raw {
        kind: i32,
        payload: Vec<u8>,
    },
    /// Bytes that may not be a frame at all, on the newest open connection.
    Garbage(Vec<u8>),
    Shutdown,
    /// The connection thread crashed: a fresh machine gets the durable state.
    Respawn,
}

impl Op {
    /// Decode one operation from fuzz bytes (every byte string decodes).
    pub fn decode(r: &mut Reader<'_>) -> Op {
        match r.u8() % 24 {
            0..=4 => Op::Advance(u64::from(r.u16())),
            5 => Op::Jump(u64::from(r.u16() % 7200)),
            6 => Op::Backwards(u64::from(r.u16())),
            7 => Op::LinkDown,
            8 => Op::GatewayClose(r.u8()),
            9 => Op::HeartbeatsAnswered(r.bool()),
            10 => Op::RepliesAcked(r.bool()),
            11 => Op::Extend(r.u8() % 3),
            12 => Op::StartStatus([Some(200), Some(200), Some(500), Some(429), None][r.u8() as usize % 5]),
            13 => Op::FlushStatus([Some(200), Some(503), None][r.u8() as usize % 3]),
            14 => Op::AnswerHttp(r.u8()),
            15 | 16 => Op::Deliver(r.u8() % 12),
            17 | 18 => Op::Reply(r.u8() % 12),
            19 => Op::Closing,
            20 => Op::Raw { kind: i32::from(r.u8() % 20), payload: r.bytes(64).to_vec() },
            21 => Op::Garbage(r.bytes(64).to_vec()),
            22 => Op::Shutdown,
            _ => Op::Respawn,
        }
    }
}

/// The model: the sim plus what the invariants need to remember.
pub struct Model {
    pub sim: Sim,
    seed: u64,
    max: Option<u32>,
    drained: HashMap<ConnId, Duration>,
    replied: HashSet<String>,
    /// Request ids that arrived in raw frames (their leases say anything).
    wild: HashSet<String>,
    /// Clock jumps: (from, to) in simulated time.
    jumps: Vec<(Duration, Duration)>,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model").field("seed", &self.seed).field("max", &self.max).finish_non_exhaustive()
    }
}

/// Run `ops` from a fresh worker (seeded, with an optional concurrency limit),
/// checking the invariants after every step and at a final shutdown.
pub fn run(origin: Instant, seed: u64, max: Option<u32>, ops: &[Op]) {
    let mut m = Model::new(origin, seed, max);
    for op in ops {
        m.apply(op);
        m.check();
    }
    m.finish();
}

/// The fuzz target body: 8 bytes of seed, one for the limit, then operations.
pub fn run_bytes(origin: Instant, data: &[u8]) {
    let mut r = Reader::new(data);
    let seed = r.u64();
    let max = match r.u8() % 5 {
        0 | 4 => None,
        n => Some(u32::from(n)),
    };
    let mut ops = Vec::new();
    while !r.is_empty() && ops.len() < 256 {
        ops.push(Op::decode(&mut r));
    }
    run(origin, seed, max, &ops);
}

impl Model {
    pub fn new(origin: Instant, seed: u64, max: Option<u32>) -> Model {
        let mut c = config();
        c.seed = seed;
        c.max_worker_concurrency = max;
        Model {
            sim: Sim::new(origin, c),
            seed,
            max,
            drained: HashMap::new(),
            replied: HashSet::new(),
            wild: HashSet::new(),
            jumps: Vec::new(),
        }
    }

    pub fn apply(&mut self, op: &Op) {
        let sim = &mut self.sim;
        match op {
            Op::Advance(ms_) => sim.advance(ms(*ms_)),
            Op::Jump(s) => {
                let from = sim.elapsed();
                sim.now += secs(*s);
                self.jumps.push((from, sim.elapsed()));
                sim.w.handle_timeout(sim.now);
                sim.pump();
            }
            Op::Backwards(ms_) => {
                let earlier = sim.now.checked_sub(ms(*ms_)).unwrap_or(sim.base).max(sim.base);
                sim.w.handle_timeout(earlier);
                sim.pump();
            }
            Op::LinkDown => {
                if let Some(&conn) = sim.open.first() {
                    sim.close(conn, None);
                }
            }
            Op::GatewayClose(i) => {
                if let Some(&conn) = sim.open.last() {
                    let (code, reason) = CLOSES[*i as usize % CLOSES.len()];
                    sim.close(conn, Some((code, reason)));
                }
            }
            Op::HeartbeatsAnswered(on) => sim.script.answer_heartbeats = *on,
            Op::RepliesAcked(on) => sim.script.ack_replies = *on,
            Op::Extend(n) => {
                sim.script.extend = [Extend::Renew, Extend::Nack, Extend::Ignore][*n as usize % 3]
            }
            Op::StartStatus(s) => sim.script.start_status = *s,
            Op::FlushStatus(s) => sim.script.flush_status = *s,
            Op::AnswerHttp(i) => {
                let Some((id, request)) = sim.pending_http.pop_front() else { return };
                match HTTP_ANSWERS[*i as usize % HTTP_ANSWERS.len()] {
                    (0, error) => sim.w.handle_http_response(sim.now, id, Err(error.to_owned())),
                    (200, "") => {
                        if request.url.ends_with("/flush") {
                            sim.flushed.push(
                                crate::wire::decode_body(request.body.clone(), "flush").expect("flush body"),
                            );
                        }
                        sim.answer_http(id, &request, 200);
                    }
                    (status, body) => {
                        let response = HttpResponse { status, body: Bytes::from_static(body.as_bytes()) };
                        sim.w.handle_http_response(sim.now, id, Ok(response));
                    }
                }
                sim.pump();
            }
            Op::Deliver(n) => {
                if let Some(conn) = self.active() {
                    let req = self.sim.request(&format!("r{n}"));
                    self.sim.send(conn, Message::GatewayExecutorRequest(Box::new(req)));
                }
            }
            Op::Reply(n) => {
                let id = format!("r{n}");
                let seen = sim.invocations().contains(&id);
                match sim.w.reply(sim.now, &id, Reply::done("1")) {
                    Ok(()) => {
                        assert!(seen, "reply accepted for {id}, never delivered");
                        self.replied.insert(id);
                    }
                    Err(CommandError::UnknownRequest(_)) => assert!(!seen, "{id} was delivered"),
                    Err(CommandError::Closed) => assert!(sim.closed()),
                }
                sim.pump();
            }
            Op::Closing => {
                if let Some(conn) = self.active() {
                    self.drained.insert(conn, self.sim.elapsed());
                    self.sim.send(conn, Message::GatewayClosing);
                }
            }
            Op::Raw { kind, payload } => {
                let frame =
                    encode_body(&ConnectMessage { kind: *kind, payload: Bytes::from(payload.clone()) });
                self.raw(frame);
            }
            Op::Garbage(bytes) => self.raw(Bytes::from(bytes.clone())),
            Op::Shutdown => sim.shutdown(),
            Op::Respawn => {
                if !sim.closed() {
                    let mut c = config();
                    c.seed = self.seed.wrapping_add(sim.elapsed().as_nanos() as u64);
                    c.max_worker_concurrency = self.max;
                    sim.respawn(c);
                }
            }
        }
    }

    /// Send raw bytes on the newest open connection, noting what they mean
    /// for the invariants (a drain, a NACK, a request with a made-up lease).
    fn raw(&mut self, frame: Bytes) {
        let Some(&conn) = self.sim.open.last() else { return };
        match Message::decode(frame.clone(), &Limits::default()) {
            Ok(Message::GatewayClosing) => {
                self.drained.entry(conn).or_insert(self.sim.elapsed());
            }
            Ok(Message::GatewayExecutorRequest(r)) => {
                self.wild.insert(r.request_id.clone());
            }
            Ok(Message::WorkerRequestExtendLeaseAck(a)) => {
                self.wild.insert(a.request_id.clone());
            }
            _ => {}
        }
        self.sim.send_raw(conn, frame);
    }

    /// The primary ACTIVE connection, as the gateway sees it.
    fn active(&self) -> Option<ConnId> {
        if self.sim.state() != ConnectionState::Active && self.sim.state() != ConnectionState::Paused {
            return None;
        }
        self.sim.w.writable_conn().filter(|c| self.sim.open.contains(c) && !self.drained.contains_key(c))
    }

    fn jumped(&self, from: Duration, to: Duration) -> bool {
        self.jumps.iter().any(|&(a, b)| a < to && b > from)
    }

    pub fn check(&self) {
        let sim = &self.sim;
        let events = sim.events();
        // Capacity.
        if let Some(max) = self.max {
            assert!(
                sim.w.in_flight() <= max as usize,
                "{} in flight over a limit of {max}",
                sim.w.in_flight()
            );
        }
        // Handed to the app at most once.
        let inv = sim.invocations();
        let unique: HashSet<&String> = inv.iter().collect();
        assert_eq!(unique.len(), inv.len(), "a request was run twice: {inv:?}");
        // Heartbeat gaps on ACTIVE connections.
        let interval = secs(10);
        for (t_ready, conn) in sim.log.iter().filter_map(|(t, d)| match d {
            Did::Event(Event::Ready { conn, .. }) => Some((*t, *conn)),
            _ => None,
        }) {
            let closed_at = sim.log.iter().find_map(|(t, d)| match d {
                Did::Close { conn: c, .. } | Did::PeerClosed { conn: c } if *c == conn => Some(*t),
                _ => None,
            });
            let ended = [closed_at, self.drained.get(&conn).copied()].into_iter().flatten().min();
            let end = ended.unwrap_or(sim.elapsed());
            let mut last = t_ready;
            for (t, _, _) in sim.sent().iter().filter(|(t, c, m)| *c == conn && is_heartbeat(m) && *t <= end)
            {
                assert!(
                    *t - last <= interval || self.jumped(last, *t),
                    "heartbeat gap {:?} on {conn:?} at {t:?}",
                    *t - last
                );
                last = *t;
            }
            assert!(
                end - last <= interval || self.jumped(last, end),
                "no heartbeat on {conn:?} from {last:?} to {end:?}"
            );
        }
        // Leases lost only after a NACK or a local expiry (or in the machine's end).
        for (t, d) in &sim.log {
            if let Did::Event(Event::LeaseLost { request_id }) = d {
                if self.wild.contains(request_id.as_str()) {
                    continue;
                }
                let latest = |list: &[(String, Duration)], until: &dyn Fn(&Duration) -> bool| {
                    list.iter().filter(|(id, at)| id == request_id && until(at)).map(|(_, at)| *at).max()
                };
                // A grant at the very instant of the loss came after it (a redelivery).
                let granted = latest(&sim.lease_grants, &|at| at < t).unwrap_or_default();
                let expired = *t >= granted + secs(120);
                let nacked = latest(&sim.nacks, &|at| at <= t).is_some();
                assert!(
                    nacked || expired || sim.closed(),
                    "lease of {request_id} lost at {t:?}, granted at {granted:?}, never NACKed"
                );
            }
        }
        // A request is abandoned only by a machine that is closing.
        if !sim.closed() {
            assert!(
                !sim.log.iter().any(|(_, d)| matches!(d, Did::Event(Event::Abandoned { .. }))),
                "a request abandoned by a machine that is still running"
            );
        }
        // Replies: never both acked and failed, nothing reported twice.
        let mut settled = HashSet::new();
        for e in &events {
            if let Event::ReplyAcked { request_id } | Event::ReplyFailed { request_id, .. } = e {
                assert!(settled.insert(request_id.clone()), "{request_id} settled twice");
                assert!(self.replied.contains(request_id.as_str()), "{request_id} settled but never replied");
            }
        }
        if !sim.closed() {
            assert_eq!(self.replied.len() - settled.len(), sim.w.unacked_replies(), "pending replies");
        }
    }

    /// Let the gateway behave, shut down, and check that every reply settled.
    pub fn finish(&mut self) {
        let sim = &mut self.sim;
        sim.script = Script::default();
        while let Some((id, request)) = sim.pending_http.pop_front() {
            sim.answer_http(id, &request, 200);
        }
        sim.pump();
        let running: Vec<String> =
            sim.invocations().into_iter().filter(|id| !self.replied.contains(id)).collect();
        for id in running {
            if sim.w.reply(sim.now, &id, Reply::done("1")).is_ok() {
                self.replied.insert(id);
            }
        }
        sim.pump();
        sim.shutdown();
        sim.advance(secs(120));
        assert!(sim.closed(), "shutdown is bounded");
        self.check();
        let settled: HashSet<String> = self
            .sim
            .events()
            .into_iter()
            .filter_map(|e| match e {
                Event::ReplyAcked { request_id } | Event::ReplyFailed { request_id, .. } => {
                    Some(request_id.into())
                }
                _ => None,
            })
            .collect();
        for id in &self.replied {
            assert!(settled.contains(id), "reply {id} neither acked, flushed nor reported");
        }
    }
}
