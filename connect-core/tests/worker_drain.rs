//! Gateway drain, make-before-break (issue 3, item 4).

mod sim;

use connect_core::wire::Message;
use connect_core::worker::{ConnectionState, Event, Reply};
use sim::*;

/// GATEWAY_CLOSING: a replacement is started at once, excluding the draining
/// group; the old connection is closed 1000 WORKER_SHUTDOWN only once the
/// new one is ACTIVE.
#[test]
fn drain_connects_a_replacement_before_closing_the_old_connection() {
    let mut sim = Sim::new(origin(), config());
    let old = sim.active_conn();
    sim.script.send_ready = false;
    sim.send(old, Message::GatewayClosing);
    assert_eq!(sim.start_bodies.last().map(|b| b.exclude_gateways.clone()), Some(vec!["gw-1".to_owned()]));
    assert_eq!(sim.state(), ConnectionState::Reconnecting);
    assert_eq!(sim.w.last_error(), Some("the gateway is draining this connection (GATEWAY_CLOSING)"));
    assert!(sim.closes().is_empty(), "old connection kept until the replacement is up");
    let new = *sim.open.last().expect("replacement dialed");
    sim.send(new, Message::GatewayConnectionReady(sim.script.ready.clone()));
    assert_eq!(sim.closes(), [(old, 1000, "WORKER_SHUTDOWN".into())]);
    assert_eq!(sim.state(), ConnectionState::Active);
    assert_eq!(sim.active_conn(), new);
}

/// While the replacement connects, replies and extensions still go out on the
/// draining connection; heartbeats do not.
#[test]
fn draining_connection_carries_replies_and_extensions_meanwhile() {
    let mut sim = Sim::new(origin(), config());
    let old = sim.invoke("r1");
    sim.invoke("r2");
    sim.script.start_status = None; // the replacement hangs in its start call
    sim.send(old, Message::GatewayClosing);
    sim.reply("r1", Reply::done("1"));
    assert!(sim.has_event(&Event::ReplyAcked { request_id: "r1".into() }));
    sim.advance(secs(9));
    let on_old = sim.sent_on(old);
    assert!(on_old.iter().any(is_reply));
    let heartbeats_before = sim.sent_on(old).iter().filter(|m| is_heartbeat(m)).count();
    assert_eq!(heartbeats_before, 0, "no heartbeats on a draining connection");
}

/// Extensions move to the new connection once it is ACTIVE.
#[test]
fn extensions_move_to_the_replacement() {
    let mut sim = Sim::new(origin(), config());
    let old = sim.invoke("r1");
    sim.advance(secs(20));
    sim.send(old, Message::GatewayClosing);
    let new = sim.active_conn();
    assert_ne!(new, old);
    sim.advance(secs(10));
    assert_eq!(sim.sent_on(new).iter().filter(|m| is_extend(m)).count(), 1);
    assert_eq!(sim.sent_on(old).iter().filter(|m| is_extend(m)).count(), 0);
}

/// A reply sent on the draining connection and not yet acked is re-sent on
/// the replacement when it becomes ACTIVE.
#[test]
fn unacked_reply_moves_to_the_replacement() {
    let mut sim = Sim::new(origin(), config());
    let old = sim.invoke("r1");
    sim.script.ack_replies = false;
    sim.script.start_status = None;
    sim.send(old, Message::GatewayClosing);
    sim.reply("r1", Reply::done("1"));
    sim.script.ack_replies = true;
    sim.script.start_status = Some(200);
    let (id, req) = sim.pending_http.pop_front().expect("replacement start");
    sim.answer_http(id, &req, 200);
    sim.pump();
    let new = sim.active_conn();
    assert!(sim.sent_on(new).iter().any(is_reply));
    assert!(sim.has_event(&Event::ReplyAcked { request_id: "r1".into() }));
}

/// If the replacement does not become ACTIVE in time, the draining
/// connection is closed anyway after the bounded wait.
#[test]
fn draining_connection_is_closed_after_the_replacement_deadline() {
    let mut sim = Sim::new(origin(), config());
    let old = sim.active_conn();
    sim.script.start_status = None;
    sim.send(old, Message::GatewayClosing);
    sim.advance(secs(9));
    assert!(sim.closes().is_empty());
    sim.advance(secs(1));
    assert_eq!(sim.closes(), [(old, 1000, "WORKER_SHUTDOWN".into())]);
}

/// The gateway force-closing the draining connection (1001) does not start
/// another reconnect: the replacement is already on its way.
#[test]
fn gateway_closing_the_draining_connection_starts_no_extra_attempt() {
    let mut sim = Sim::new(origin(), config());
    let old = sim.active_conn();
    sim.script.start_status = None;
    sim.send(old, Message::GatewayClosing);
    sim.close(old, Some((1001, "connect_gateway_closing")));
    assert_eq!(sim.start_calls().len(), 2);
    sim.script.start_status = Some(200);
    let (id, req) = sim.pending_http.pop_front().expect("replacement");
    sim.answer_http(id, &req, 200);
    sim.pump();
    assert_eq!(sim.state(), ConnectionState::Active);
}

/// Two drains in a row: each replacement excludes the group being drained,
/// and every old connection is closed exactly once.
#[test]
fn two_drains_in_a_row() {
    let mut sim = Sim::new(origin(), config());
    let first = sim.active_conn();
    sim.send(first, Message::GatewayClosing);
    let second = sim.active_conn();
    sim.send(second, Message::GatewayClosing);
    let third = sim.active_conn();
    assert!(first != second && second != third);
    assert_eq!(
        sim.closes(),
        [(first, 1000, "WORKER_SHUTDOWN".into()), (second, 1000, "WORKER_SHUTDOWN".into())]
    );
    let excluded: Vec<Vec<String>> = sim.start_bodies.iter().map(|b| b.exclude_gateways.clone()).collect();
    assert_eq!(excluded, [vec![], vec!["gw-1".to_owned()], vec!["gw-2".to_owned()]]);
}

/// A second GATEWAY_CLOSING on the replacement before the first drain
/// finished: the oldest connection is let go at once, the middle one drains.
#[test]
fn drain_of_the_replacement_before_the_first_drain_finished() {
    let mut sim = Sim::new(origin(), config());
    let first = sim.active_conn();
    sim.send(first, Message::GatewayClosing);
    let second = sim.active_conn();
    sim.script.start_status = None;
    sim.send(second, Message::GatewayClosing);
    assert_eq!(sim.closes(), [(first, 1000, "WORKER_SHUTDOWN".into())]);
    assert_eq!(sim.w.writable_conn(), Some(second));
}

/// A drain during our own shutdown: the replacement sends WORKER_PAUSE, not
/// WORKER_READY, in-flight work goes on, and the shutdown completes.
#[test]
fn drain_during_shutdown_pauses_the_replacement_and_completes() {
    let mut sim = Sim::new(origin(), config());
    let old = sim.invoke("r1");
    sim.shutdown();
    assert_eq!(sim.state(), ConnectionState::Paused);
    sim.send(old, Message::GatewayClosing);
    let new = sim.active_conn();
    let sent = sim.sent_on(new);
    assert!(sent.contains(&Message::WorkerPause));
    assert!(!sent.contains(&Message::WorkerReady));
    sim.reply("r1", Reply::done("1"));
    assert!(sim.has_event(&Event::ReplyAcked { request_id: "r1".into() }));
    assert!(sim.closed());
    assert_eq!(sim.closes().last().map(|c| c.0), Some(new));
}

/// GATEWAY_CLOSING during the handshake: give up that connection and try
/// again, avoiding its group.
#[test]
fn gateway_closing_during_the_handshake_retries_elsewhere() {
    let mut sim = Sim::scripted(origin(), config(), Script { send_ready: false, ..Script::default() });
    let conn = sim.open[0];
    sim.send(conn, Message::GatewayClosing);
    assert_eq!(sim.closes()[0].0, conn);
    sim.script.send_ready = true;
    sim.run_until(secs(10), |s| s.state() == ConnectionState::Active);
    assert_eq!(sim.start_bodies[1].exclude_gateways, ["gw-1"]);
}

/// Requests that arrive on the draining connection are still ACKed there.
#[test]
fn request_on_the_draining_connection_is_acked_there() {
    let mut sim = Sim::new(origin(), config());
    let old = sim.active_conn();
    sim.script.start_status = None;
    sim.send(old, Message::GatewayClosing);
    let req = sim.request("late");
    sim.send(old, Message::GatewayExecutorRequest(Box::new(req)));
    assert!(sim.sent_on(old).iter().any(is_ack));
    assert_eq!(sim.invocations(), ["late"]);
}
