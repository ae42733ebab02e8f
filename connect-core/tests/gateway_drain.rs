//! Gateway drain: GATEWAY_CLOSING, the 25 s drain timeout and its 1001
//! close, a fresh gateway group for replacement connections, and work moving
//! to the replacement (PROTOCOL.md 2.7).

mod gateway_sim;

use connect_core::gateway::run::RunStatus;
use connect_core::gateway::{CloseFrame, Event};
use connect_core::wire::*;
use gateway_sim::*;

fn closing(code: u16, reason: &str) -> Option<Option<(u16, String)>> {
    Some(Some((code, reason.to_owned())))
}

/// A worker that ignores GATEWAY_CLOSING is closed 1001 after the drain timeout.
#[test]
fn drain_sends_closing_then_closes_1001_after_the_timeout() {
    let mut sim = Sim::new(origin(), config());
    let conn = sim.connect("host", &[function("app-f", "e", 0)]);
    assert_eq!(sim.server.drain(sim.now), 1);
    sim.drain();
    assert_eq!(sim.recv(conn), Some(Message::GatewayClosing));
    assert!(sim.events.iter().any(|e| matches!(e, Event::Draining { .. })));
    sim.advance(ms(24_999));
    assert_eq!(sim.closed_with(conn), None);
    sim.advance(ms(1));
    assert_eq!(sim.closed_with(conn), closing(1001, "connect_gateway_closing"));
    assert_eq!(sim.disconnect_of(conn).as_deref(), Some("GATEWAY_DRAINING"));
}

/// The make-before-break dance: the worker connects a replacement (which
/// joins a fresh group), work goes to it, the old socket still acks replies,
/// and the worker closes the old one itself with 1000 WORKER_SHUTDOWN.
#[test]
fn a_replacement_connection_takes_over_during_a_drain() {
    let mut sim = Sim::new(origin(), config());
    let old = sim.connect("host", &[function("app-f", "e", 0)]);
    let event = sim.send_event("e");
    let in_flight = sim.recv_request(old).expect("request before the drain");
    sim.ack(old, &in_flight);
    sim.server.drain(sim.now);
    sim.drain();
    assert_eq!(sim.recv(old), Some(Message::GatewayClosing));

    let queued = sim.send_event("e");
    assert!(sim.recv_request(old).is_none(), "a draining connection gets no new work");
    let start = sim.start();
    assert_eq!(start.gateway_group, "gw-dev-2");
    let new = sim.connect("host", &[function("app-f", "e", 0)]);
    let req = sim.recv_request(new).expect("queued work goes to the replacement");
    sim.ack(new, &req);
    sim.reply(new, &req, SdkResponseStatus::Done, "\"new\"");
    assert_eq!(sim.status_of(&queued), RunStatus::Completed);

    // The old request's reply still lands on the old socket and is acked there.
    sim.reply(old, &in_flight, SdkResponseStatus::Done, "\"old\"");
    assert!(matches!(sim.recv(old), Some(Message::WorkerReplyAck(_))));
    assert_eq!(sim.status_of(&event), RunStatus::Completed);
    sim.close(old, Some(CloseFrame::new(1000, "WORKER_SHUTDOWN")));
    assert_eq!(sim.disconnect_of(old).as_deref(), Some("WORKER_SHUTDOWN"));
    sim.advance(secs(30));
    assert_eq!(sim.closed_with(old), None, "it closed itself: no drain-timeout close");
    assert_eq!(sim.closed_with(new), None, "the replacement is not drained");
}

/// WORKER_READY on a draining connection is answered with 1001.
#[test]
fn worker_ready_during_a_drain_closes_1001() {
    let mut sim = Sim::new(origin(), config());
    let conn = sim.connect("host", &[function("app-f", "e", 0)]);
    sim.server.drain(sim.now);
    sim.drain();
    sim.send(conn, Message::WorkerReady);
    assert_eq!(sim.closed_with(conn), closing(1001, "connect_gateway_closing"));
}

/// Sockets still in the handshake when the drain starts are closed at once.
#[test]
fn a_drain_closes_handshaking_sockets_immediately() {
    let mut sim = Sim::new(origin(), config());
    let conn = sim.accept();
    sim.server.drain(sim.now);
    sim.drain();
    assert_eq!(sim.closed_with(conn), closing(1001, "connect_gateway_closing"));
    let fresh = sim.accept();
    assert_eq!(sim.closed_with(fresh), None, "a new socket joins the fresh group");
}

/// Unacked requests on a draining socket that closes go to the replacement.
#[test]
fn unacked_work_on_a_drained_socket_is_rerouted() {
    let mut sim = Sim::new(origin(), config());
    let old = sim.connect("host", &[function("app-f", "e", 0)]);
    let event = sim.send_event("e");
    let req = sim.recv_request(old).expect("request");
    sim.server.drain(sim.now);
    sim.drain();
    let new = sim.connect("host", &[function("app-f", "e", 0)]);
    for _ in 0..2 {
        sim.advance(secs(10));
        sim.heartbeat(new);
    }
    sim.advance(secs(5));
    assert_eq!(sim.closed_with(old), closing(1001, "connect_gateway_closing"));
    let again = sim.recv_request(new).expect("re-routed after the drain close");
    assert_eq!(again.request_id, req.request_id);
    sim.ack(new, &again);
    sim.reply(new, &again, SdkResponseStatus::Done, "1");
    assert_eq!(sim.status_of(&event), RunStatus::Completed);
}
