//! Bad input the other scenario files do not pin, each with what the worker
//! does (the README's "Bad input" table lists every case and its test):
//! a frame over the receive limit, an unknown kind, a request before READY,
//! a request whose payload is not JSON, and the clock jumping forward.

mod sim;

use bytes::Bytes;
use connect_core::wire::{ConnectMessage, Message, encode_body};
use connect_core::worker::{ConnectionState, Event, Reply};
use sim::*;

/// A frame over `limits.max_recv_frame` closes the connection 1007 and the worker reconnects; its work survives.
#[test]
fn an_oversized_frame_closes_the_connection_and_work_survives() {
    let mut c = config();
    c.limits.max_recv_frame = 1024;
    let mut sim = Sim::new(origin(), c);
    let conn = sim.invoke("r1");
    sim.send_raw(conn, Bytes::from(vec![0u8; 2048]));
    assert_eq!(sim.closes()[0], (conn, 1007, "failed to unmarshal Protobuf".into()));
    sim.run_until(secs(10), |s| s.state() == ConnectionState::Active && s.active_conn() != conn);
    sim.reply("r1", Reply::done("1"));
    assert!(sim.has_event(&Event::ReplyAcked { request_id: "r1".into() }));
}

/// An unknown kind (from a newer gateway) is ignored: no close, no event.
#[test]
fn an_unknown_kind_is_ignored() {
    let mut sim = Sim::new(origin(), config());
    let conn = sim.active_conn();
    let before = sim.events().len();
    sim.send_raw(conn, encode_body(&ConnectMessage { kind: 99, payload: Bytes::from_static(b"\x01\x02") }));
    sim.send(conn, Message::Unknown { kind: 42, payload: Bytes::new() });
    assert!(sim.closes().is_empty(), "{:?}", sim.closes());
    assert_eq!(sim.events().len(), before);
    assert_eq!(sim.state(), ConnectionState::Active);
}

/// A request before READY breaks the handshake order: the attempt fails and
/// is retried; the request is not run (it was never acked, so the gateway
/// routes it again).
#[test]
fn a_request_before_ready_fails_the_handshake() {
    let mut sim = Sim::scripted(origin(), config(), Script { send_ready: false, ..Script::default() });
    let conn = sim.open[0];
    let req = sim.request("early");
    sim.send(conn, Message::GatewayExecutorRequest(Box::new(req)));
    assert!(sim.invocations().is_empty());
    assert_eq!(sim.closes()[0], (conn, 4001, "UNEXPECTED".into()));
    assert_ne!(sim.state(), ConnectionState::Active);
}

/// A payload that is not JSON is the app's business (the adapter fails that
/// request): the machine hands it over as bytes and the connection stays up.
#[test]
fn a_payload_that_is_not_json_reaches_the_app_as_bytes() {
    let mut sim = Sim::new(origin(), config());
    let conn = sim.active_conn();
    let mut req = sim.request("bad-json");
    req.request_payload = Bytes::from_static(b"{not json");
    sim.send(conn, Message::GatewayExecutorRequest(Box::new(req)));
    assert_eq!(sim.invocations(), ["bad-json"]);
    assert!(sim.closes().is_empty());
}

/// The clock jumps an hour forward in one step (a suspended VM): no spin, a
/// heartbeat goes out at once, leases older than their two minutes are
/// reported lost (the gateway has given them away), and a gateway that still
/// answers keeps the connection ACTIVE.
#[test]
fn a_clock_jump_forward_loses_stale_leases_and_keeps_a_live_connection() {
    let mut sim = Sim::new(origin(), config());
    let conn = sim.invoke("r1");
    let heartbeats = sim.count_sent(is_heartbeat);
    sim.now += secs(3600);
    sim.w.handle_timeout(sim.now);
    sim.pump(); // asserts no spin
    assert!(sim.count_sent(is_heartbeat) > heartbeats, "a heartbeat right after the jump");
    assert!(sim.has_event(&Event::LeaseLost { request_id: "r1".into() }));
    sim.advance(secs(30));
    assert_eq!(sim.state(), ConnectionState::Active);
    assert_eq!(sim.active_conn(), conn);
}
