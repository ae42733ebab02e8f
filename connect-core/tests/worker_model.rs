//! A proptest model of the worker: random operations against the scripted
//! gateway (time jumps, link down/up, heartbeat silence, extension NACKs,
//! reply ACK loss, flush failures, GATEWAY_CLOSING, duplicate deliveries,
//! app replies, shutdown), with the invariants checked after every step:
//!
//! - no spin (in `Sim::pump`): drained means the next deadline is later than `now`;
//! - nothing is written to a retired connection (in `Sim::record`);
//! - `Closed` is the last event (in `Sim::record`);
//! - the heartbeat gap on an ACTIVE connection never exceeds the interval;
//! - a request id is handed to the app at most once, even across a respawn;
//! - `max_worker_concurrency` is never exceeded;
//! - a lease is lost only after a NACK, a local expiry (two minutes without a
//!   renewal) or the end of the machine;
//! - every reply ends acked, flushed or reported, and none is reported twice.

mod sim;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use connect_core::wire::Message;
use connect_core::worker::{CommandError, ConnId, ConnectionState, Event, Reply};
use proptest::prelude::*;
use sim::*;

#[derive(Clone, Debug)]
enum Op {
    Advance(u64),
    LinkDown,
    GatewayClose(u16),
    HeartbeatsAnswered(bool),
    RepliesAcked(bool),
    Extend(u8),
    StartStatus(u16),
    FlushStatus(u16),
    Deliver(u8),
    Reply(u8),
    Closing,
    Shutdown,
    Respawn,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0u64..40_000).prop_map(Op::Advance),
        1 => Just(Op::LinkDown),
        1 => prop_oneof![Just(1000u16), Just(1001), Just(1011)].prop_map(Op::GatewayClose),
        1 => any::<bool>().prop_map(Op::HeartbeatsAnswered),
        1 => any::<bool>().prop_map(Op::RepliesAcked),
        1 => (0u8..3).prop_map(Op::Extend),
        1 => prop_oneof![Just(200u16), Just(200), Just(500), Just(429)].prop_map(Op::StartStatus),
        1 => prop_oneof![Just(200u16), Just(503)].prop_map(Op::FlushStatus),
        4 => (0u8..12).prop_map(Op::Deliver),
        4 => (0u8..12).prop_map(Op::Reply),
        1 => Just(Op::Closing),
        1 => Just(Op::Shutdown),
        1 => Just(Op::Respawn),
    ]
}

struct Model {
    sim: Sim,
    seed: u64,
    max: Option<u32>,
    drained: HashMap<ConnId, Duration>,
    replied: HashSet<String>,
}

impl Model {
    fn apply(&mut self, op: &Op) {
        let sim = &mut self.sim;
        match *op {
            Op::Advance(ms_) => sim.advance(ms(ms_)),
            Op::LinkDown => {
                if let Some(&conn) = sim.open.first() {
                    sim.close(conn, None);
                }
            }
            Op::GatewayClose(code) => {
                if let Some(&conn) = sim.open.last() {
                    sim.close(conn, Some((code, "connect_gateway_closing")));
                }
            }
            Op::HeartbeatsAnswered(on) => sim.script.answer_heartbeats = on,
            Op::RepliesAcked(on) => sim.script.ack_replies = on,
            Op::Extend(n) => sim.script.extend = [Extend::Renew, Extend::Nack, Extend::Ignore][n as usize],
            Op::StartStatus(s) => sim.script.start_status = Some(s),
            Op::FlushStatus(s) => sim.script.flush_status = Some(s),
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
            Op::Shutdown => sim.shutdown(),
            Op::Respawn => {
                // The connection thread crashed: its sockets die, the durable
                // state moves to a fresh machine (unless this one finished).
                if !sim.closed() {
                    let mut c = config();
                    c.seed = self.seed.wrapping_add(sim.elapsed().as_nanos() as u64);
                    c.max_worker_concurrency = self.max;
                    sim.respawn(c);
                }
            }
        }
    }

    /// The primary ACTIVE connection, as the gateway sees it.
    fn active(&self) -> Option<ConnId> {
        if self.sim.state() != ConnectionState::Active && self.sim.state() != ConnectionState::Paused {
            return None;
        }
        self.sim.w.writable_conn().filter(|c| self.sim.open.contains(c) && !self.drained.contains_key(c))
    }

    fn check(&self) {
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
                assert!(*t - last <= interval, "heartbeat gap {:?} on {conn:?} at {t:?}", *t - last);
                last = *t;
            }
            assert!(end - last <= interval, "no heartbeat on {conn:?} from {last:?} to {end:?}");
        }
        // Leases lost only after a NACK, a local expiry, or the machine's end.
        for (t, d) in &sim.log {
            if let Did::Event(Event::LeaseLost { request_id }) = d {
                let before = |list: &[(String, Duration)]| {
                    list.iter().filter(|(id, at)| id == request_id && at <= t).map(|(_, at)| *at).max()
                };
                let granted = before(&sim.lease_grants).unwrap_or_default();
                let expired = *t >= granted + secs(120);
                let nacked = before(&sim.nacks).is_some();
                assert!(
                    nacked || expired || sim.closed(),
                    "lease of {request_id} lost at {t:?}, granted at {granted:?}, never NACKed"
                );
            }
        }
        // Replies: never both acked and failed, nothing reported twice.
        let mut settled = HashSet::new();
        for e in &events {
            if let Event::ReplyAcked { request_id } | Event::ReplyFailed { request_id, .. } = e {
                assert!(settled.insert(request_id.clone()), "{request_id} settled twice");
                assert!(self.replied.contains(request_id), "{request_id} settled but never replied");
            }
        }
        if !sim.closed() {
            assert_eq!(self.replied.len() - settled.len(), sim.w.unacked_replies(), "pending replies");
        }
    }

    /// Let the gateway behave, shut down, and check that every reply settled.
    fn finish(&mut self) {
        let sim = &mut self.sim;
        sim.script = Script::default();
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
                Event::ReplyAcked { request_id } | Event::ReplyFailed { request_id, .. } => Some(request_id),
                _ => None,
            })
            .collect();
        for id in &self.replied {
            assert!(settled.contains(id), "reply {id} neither acked, flushed nor reported");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Random operations keep every invariant, and a final shutdown settles every reply.
    #[test]
    fn random_operations_keep_the_invariants(
        seed in any::<u64>(),
        max in proptest::option::of(1u32..4),
        ops in proptest::collection::vec(op(), 1..80),
    ) {
        let mut c = config();
        c.seed = seed;
        c.max_worker_concurrency = max;
        let mut m = Model { sim: Sim::new(c), seed, max, drained: HashMap::new(), replied: HashSet::new() };
        for op in &ops {
            m.apply(op);
            m.check();
        }
        m.finish();
    }
}
