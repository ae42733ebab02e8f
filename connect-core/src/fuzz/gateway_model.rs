//! The model of the gateway and executor shared by the proptest
//! (`tests/gateway_model.rs`) and the `gateway_ops` fuzz target: random
//! sockets doing random things (valid and broken handshakes, garbage frames,
//! every worker kind with random payloads, acks, replies and extensions for
//! real and made-up requests, closes), random time jumps, drains and events.
//! After every step the harness checks the run-loop invariants (no spin,
//! nothing sent after a close) and that every event with a registered
//! function started exactly one run; at the end every socket is closed, time
//! runs past every lease, and no request may still be counted in flight: all
//! work is either finished or waiting in the queue.

use std::time::Instant;

use bytes::Bytes;

use super::Reader;
use super::gateway_sim::*;
use crate::gateway::run::RunStatus;
use crate::gateway::{CloseFrame, ConnId, Event, GatewayConfig};
use crate::wire::*;

/// One step of the model. Socket and request numbers pick among those seen (modulo).
#[derive(Clone, Debug)]
pub enum Op {
    Accept,
    Connect { instance: u8, manual: bool },
    Hello { sock: u8 },
    Garbage { sock: u8, bytes: Vec<u8> },
    Kind { sock: u8, kind: i32, payload: Vec<u8> },
    Heartbeat { sock: u8 },
    Ready { sock: u8 },
    Pause { sock: u8 },
    Ack { sock: u8, req: u8 },
    Reply { sock: u8, req: u8, status: i32, no_retry: bool },
    Extend { sock: u8, req: u8, stale: bool },
    Close { sock: u8, clean: bool },
    Advance { ms: u32 },
    Drain,
    Event { fast: bool },
}

impl Op {
    /// Decode one operation from fuzz bytes (every byte string decodes).
    pub fn decode(r: &mut Reader<'_>) -> Op {
        match r.u8() % 34 {
            0 | 1 => Op::Accept,
            2..=5 => Op::Connect { instance: r.u8() % 3, manual: r.bool() },
            6 => Op::Hello { sock: r.u8() },
            7 => Op::Garbage { sock: r.u8(), bytes: r.bytes(48).to_vec() },
            8 | 9 => Op::Kind { sock: r.u8(), kind: i32::from(r.u8() % 20), payload: r.bytes(48).to_vec() },
            10..=13 => Op::Heartbeat { sock: r.u8() },
            14 => Op::Ready { sock: r.u8() },
            15 => Op::Pause { sock: r.u8() },
            16..=19 => Op::Ack { sock: r.u8(), req: r.u8() },
            20..=23 => {
                Op::Reply { sock: r.u8(), req: r.u8(), status: i32::from(r.u8() % 4), no_retry: r.bool() }
            }
            24 | 25 => Op::Extend { sock: r.u8(), req: r.u8(), stale: r.bool() },
            26 => Op::Close { sock: r.u8(), clean: r.bool() },
            27..=30 => Op::Advance { ms: r.u32() % 200_000 },
            31 => Op::Drain,
            _ => Op::Event { fast: r.bool() },
        }
    }
}

pub struct Model {
    pub sim: Sim,
    socks: Vec<ConnId>,
    requests: Vec<GatewayExecutorRequestData>,
    /// Events that found their function registered (the others start no run, as in Inngest).
    events: Vec<String>,
    unmatched: usize,
}

/// Run `ops` on a fresh gateway (seeded), checking the invariants after every step and at the end.
pub fn run(origin: Instant, seed: u64, ops: &[Op]) {
    let mut m = Model::new(origin, seed);
    for op in ops {
        m.apply(op);
        m.check();
    }
    m.finish();
}

/// The fuzz target body: 8 bytes of seed, then operations.
pub fn run_bytes(origin: Instant, data: &[u8]) {
    let mut r = Reader::new(data);
    let seed = r.u64();
    let mut ops = Vec::new();
    while !r.is_empty() && ops.len() < 256 {
        ops.push(Op::decode(&mut r));
    }
    run(origin, seed, &ops);
}

impl Model {
    pub fn new(origin: Instant, seed: u64) -> Model {
        let config = GatewayConfig { seed, heartbeat_interval: secs(10), ..config() };
        Model {
            sim: Sim::new(origin, config),
            socks: Vec::new(),
            requests: Vec::new(),
            events: Vec::new(),
            unmatched: 0,
        }
    }

    fn sock(&self, i: u8) -> Option<ConnId> {
        (!self.socks.is_empty()).then(|| self.socks[i as usize % self.socks.len()])
    }

    fn req(&self, i: u8) -> Option<GatewayExecutorRequestData> {
        (!self.requests.is_empty()).then(|| self.requests[i as usize % self.requests.len()].clone())
    }

    fn functions() -> Vec<crate::payload::FunctionConfig> {
        vec![function("app-fast", "fast", 1), function("app-slow", "slow", 2)]
    }

    pub fn apply(&mut self, op: &Op) {
        match op.clone() {
            Op::Accept => self.socks.push(self.sim.accept()),
            Op::Connect { instance, manual } => {
                let start = self.sim.start();
                let conn = self.sim.accept();
                let mut data = hello_data(&start, &format!("host-{instance}"), &Self::functions());
                data.worker_manual_readiness_ack = manual;
                data.max_worker_concurrency = (instance == 2).then_some(1);
                self.sim.send(conn, Message::WorkerConnect(Box::new(data)));
                self.socks.push(conn);
            }
            Op::Hello { sock } => {
                if let Some(conn) = self.sock(sock) {
                    let start = self.sim.start();
                    self.sim.send(conn, hello(&start, "host-x", &Self::functions()));
                }
            }
            Op::Garbage { sock, bytes } => {
                if let Some(conn) = self.sock(sock) {
                    self.sim.send_raw(conn, bytes);
                }
            }
            Op::Kind { sock, kind, payload } => {
                if let Some(conn) = self.sock(sock) {
                    let frame = encode_body(&ConnectMessage { kind, payload: Bytes::from(payload) });
                    self.sim.send_raw(conn, frame);
                }
            }
            Op::Heartbeat { sock } => self.each(sock, |sim, c| sim.heartbeat(c)),
            Op::Ready { sock } => self.each(sock, |sim, c| sim.send(c, Message::WorkerReady)),
            Op::Pause { sock } => self.each(sock, |sim, c| sim.send(c, Message::WorkerPause)),
            Op::Ack { sock, req } => {
                if let (Some(conn), Some(req)) = (self.sock(sock), self.req(req)) {
                    self.sim.ack(conn, &req);
                }
            }
            Op::Reply { sock, req, status, no_retry } => {
                if let (Some(conn), Some(req)) = (self.sock(sock), self.req(req)) {
                    let mut resp = response(&req, SdkResponseStatus::Done, "1");
                    resp.status = status;
                    resp.no_retry = no_retry;
                    self.sim.reply_with(conn, resp);
                }
            }
            Op::Extend { sock, req, stale } => {
                if let (Some(conn), Some(req)) = (self.sock(sock), self.req(req)) {
                    let current = self.sim.server.gateway().lease_of(&req.request_id).map(str::to_owned);
                    let lease = match (stale, current) {
                        (false, Some(current)) => current,
                        _ => req.lease_id.clone(),
                    };
                    self.sim.extend(conn, &req, &lease);
                }
            }
            Op::Close { sock, clean } => {
                if let Some(conn) = self.sock(sock) {
                    let frame = clean.then(|| CloseFrame::new(1000, "WORKER_SHUTDOWN"));
                    self.sim.close(conn, frame);
                }
            }
            Op::Advance { ms } => self.sim.advance(std::time::Duration::from_millis(ms.into())),
            Op::Drain => {
                self.sim.server.drain(self.sim.now);
                self.sim.drain();
            }
            Op::Event { fast } => {
                let registered = !self.sim.server.executor().functions().is_empty();
                let id = self.sim.send_event(if fast { "fast" } else { "slow" });
                if registered {
                    self.events.push(id);
                } else {
                    assert!(self.sim.server.runs_for_event(&id).is_empty());
                    self.unmatched += 1;
                }
            }
        }
        for &conn in &self.socks {
            while let Some(req) = self.sim.recv_request(conn) {
                self.requests.push(req);
            }
            self.sim.recv_all(conn);
        }
    }

    /// Apply to one socket (a heartbeat storm on one is as interesting as on all).
    fn each(&mut self, sock: u8, f: impl FnOnce(&mut Sim, ConnId)) {
        if let Some(conn) = self.sock(sock) {
            f(&mut self.sim, conn);
        }
    }

    pub fn check(&self) {
        // Every socket the gateway closed has reported its disconnect.
        for conn in self.sim.closes.keys() {
            let reported =
                self.sim.events.iter().any(|e| matches!(e, Event::Disconnected { conn: c, .. } if c == conn));
            assert!(reported, "{conn} closed without a Disconnected event");
        }
        let counts = self.sim.server.executor().run_counts();
        let total = counts.running + counts.completed + counts.failed + counts.cancelled;
        assert_eq!(
            total,
            self.events.len(),
            "every event with a registered function started exactly one run"
        );
    }

    pub fn finish(mut self) {
        for conn in self.socks.clone() {
            self.sim.close(conn, None);
        }
        self.sim.advance(std::time::Duration::from_secs(600));
        for c in self.sim.server.connections() {
            assert_eq!(c.in_flight, 0, "nothing in flight once every socket is gone: {c:?}");
        }
        for e in &self.events {
            let run = self.sim.run_of(e);
            assert!(run.attempts.len() as u32 <= run.max_attempts, "{run:?}");
            if run.status == RunStatus::Running {
                assert!(
                    run.attempts.iter().all(|a| a.outcome.is_some() || !a.connections.is_empty()),
                    "{run:?}"
                );
            }
        }
    }
}
