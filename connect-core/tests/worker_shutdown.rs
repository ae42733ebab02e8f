//! Graceful shutdown (issue 3, item 6) and handing the durable state to a
//! new machine (item 8).

mod sim;

use connect_core::wire::Message;
use connect_core::worker::{ConnectionState, Event, Reply};
use sim::*;

/// Shutdown with nothing in flight: WORKER_PAUSE, close 1000
/// WORKER_SHUTDOWN, Closed last.
#[test]
fn idle_shutdown_pauses_closes_and_ends_with_closed() {
    let mut sim = Sim::new(origin(), config());
    let conn = sim.active_conn();
    sim.shutdown();
    assert!(sim.sent_on(conn).contains(&Message::WorkerPause));
    assert_eq!(sim.closes(), [(conn, 1000, "WORKER_SHUTDOWN".into())]);
    assert_eq!(sim.events().last(), Some(&Event::Closed));
    assert_eq!(sim.w.poll_timeout(), None);
    use ConnectionState::*;
    assert_eq!(sim.states(), [Connecting, Active, Closing, Closed]);
}

/// Shutdown waits for in-flight requests while heartbeating and extending,
/// then sends the reply and closes once it is acknowledged.
#[test]
fn shutdown_waits_for_in_flight_work_while_heartbeating_and_extending() {
    let mut sim = Sim::new(origin(), config());
    let conn = sim.invoke("r1");
    sim.shutdown();
    assert_eq!(sim.state(), ConnectionState::Paused);
    sim.advance(secs(45));
    assert!(sim.count_sent(is_heartbeat) >= 4);
    assert!(sim.count_sent(is_extend) >= 1);
    assert!(sim.closes().is_empty());
    sim.reply("r1", Reply::done("1"));
    assert!(sim.has_event(&Event::ReplyAcked { request_id: "r1".into() }));
    assert_eq!(sim.closes(), [(conn, 1000, "WORKER_SHUTDOWN".into())]);
    assert!(sim.closed());
}

/// Shutdown is idempotent: a second call sends nothing more.
#[test]
fn shutdown_twice_is_one_shutdown() {
    let mut sim = Sim::new(origin(), config());
    sim.invoke("r1");
    sim.shutdown();
    let n = sim.log.len();
    sim.shutdown();
    assert_eq!(sim.log.len(), n);
    assert_eq!(sim.count_sent(|m| *m == Message::WorkerPause), 1);
}

/// Requests arriving after WORKER_PAUSE are neither ACKed nor run.
#[test]
fn requests_after_pause_are_not_taken() {
    let mut sim = Sim::new(origin(), config());
    let conn = sim.invoke("r1");
    sim.shutdown();
    let req = sim.request("r2");
    sim.send(conn, Message::GatewayExecutorRequest(Box::new(req)));
    assert_eq!(sim.invocations(), ["r1"]);
    assert_eq!(sim.count_sent(is_ack), 1);
}

/// A handler that never finishes: the shutdown deadline bounds the wait, the
/// app hears that the request is abandoned (not that its lease was lost:
/// the handler is told why), and the machine closes.
#[test]
fn shutdown_deadline_bounds_the_wait_for_in_flight_work() {
    let mut sim = Sim::new(origin(), config());
    sim.invoke("stuck");
    sim.shutdown();
    sim.advance(secs(59));
    assert!(!sim.closed());
    sim.advance(secs(1));
    assert!(sim.has_event(&Event::Abandoned { request_id: "stuck".into() }));
    assert!(!sim.events().iter().any(|e| matches!(e, Event::LeaseLost { .. })));
    assert!(sim.closed());
    assert_eq!(sim.events().last(), Some(&Event::Closed));
}

/// Replies not acknowledged by the gateway are flushed before the close.
#[test]
fn shutdown_flushes_unacked_replies() {
    let mut sim = Sim::new(origin(), config());
    sim.script.ack_replies = false;
    sim.invoke("r1");
    sim.shutdown();
    sim.reply("r1", Reply::done("1"));
    assert_eq!(sim.state(), ConnectionState::Closing);
    assert!(!sim.closed());
    sim.advance(secs(5));
    assert_eq!(sim.flushed.len(), 1);
    assert!(sim.has_event(&Event::ReplyAcked { request_id: "r1".into() }));
    assert!(sim.closed());
}

/// A reply that can neither be acked nor flushed before the deadline is
/// reported failed: every reply ends acked, flushed or reported.
#[test]
fn reply_unflushable_by_the_shutdown_deadline_is_reported() {
    let mut sim = Sim::new(origin(), config());
    sim.script.ack_replies = false;
    sim.script.flush_status = Some(500);
    sim.invoke("r1");
    sim.shutdown();
    sim.reply("r1", Reply::done("1"));
    sim.advance(secs(60));
    assert!(
        sim.events().iter().any(|e| matches!(e, Event::ReplyFailed { request_id, .. } if request_id == "r1"))
    );
    assert!(sim.closed());
}

/// Shutdown before the first connection: nothing in flight, so it closes at once.
#[test]
fn shutdown_while_connecting_closes_at_once() {
    let mut sim = Sim::scripted(origin(), config(), Script { start_status: None, ..Script::default() });
    sim.shutdown();
    assert!(sim.closed());
    assert_eq!(sim.states().last(), Some(&ConnectionState::Closed));
}

/// Connection lost during shutdown with work in flight: reconnect, send
/// WORKER_PAUSE instead of WORKER_READY, keep extending, then finish.
#[test]
fn connection_lost_during_shutdown_reconnects_paused() {
    let mut sim = Sim::new(origin(), config());
    let old = sim.invoke("r1");
    sim.shutdown();
    sim.close(old, None);
    sim.run_until(secs(10), |s| s.w.writable_conn().is_some());
    let new = sim.w.writable_conn().expect("new conn");
    let sent = sim.sent_on(new);
    assert!(sent.contains(&Message::WorkerPause) && !sent.contains(&Message::WorkerReady));
    sim.reply("r1", Reply::done("1"));
    assert!(sim.closed());
}

/// Commands after Closed are local errors, not panics.
#[test]
fn reply_after_close_is_an_error() {
    let mut sim = Sim::new(origin(), config());
    sim.invoke("r1");
    sim.shutdown();
    sim.advance(secs(60));
    assert!(sim.w.reply(sim.now, "r1", Reply::done("1")).is_err());
}

/// Respawn: the durable state moves to a new machine, which keeps extending
/// the in-flight lease with its newest id and accepts the reply.
#[test]
fn respawned_machine_keeps_extending_and_accepts_the_reply() {
    let mut sim = Sim::new(origin(), config());
    sim.invoke("r1");
    sim.advance(secs(31)); // one extension renewed the lease
    assert_eq!(sim.count_sent(is_extend), 1);
    let durable = sim.w.take_durable();
    assert_eq!(durable.in_flight_ids().collect::<Vec<_>>(), ["r1"]);
    let mut sim2 = Sim::with_durable(origin(), config(), durable);
    sim2.advance(secs(6));
    assert!(sim2.count_sent(is_extend) >= 1, "the new machine extends the lease");
    assert!(sim2.invocations().is_empty(), "not handed to the app again");
    sim2.reply("r1", Reply::done("1"));
    assert!(sim2.has_event(&Event::ReplyAcked { request_id: "r1".into() }));
}

/// Respawn with an unacknowledged reply: the new machine re-sends it once
/// connected.
#[test]
fn respawned_machine_resends_unacked_replies() {
    let mut sim = Sim::new(origin(), config());
    sim.script.ack_replies = false;
    sim.invoke("r1");
    sim.reply("r1", Reply::done("1"));
    let durable = sim.w.take_durable();
    assert_eq!(durable.unacked_reply_ids().collect::<Vec<_>>(), ["r1"]);
    let sim2 = Sim::with_durable(origin(), config(), durable);
    let conn = sim2.active_conn();
    assert!(sim2.sent_on(conn).iter().any(is_reply));
    assert!(sim2.has_event(&Event::ReplyAcked { request_id: "r1".into() }));
}

/// Respawn: a request id the old machine already had is not run again.
#[test]
fn respawned_machine_does_not_rerun_known_requests() {
    let mut sim = Sim::new(origin(), config());
    sim.invoke("running");
    sim.invoke("done");
    sim.reply("done", Reply::done("1"));
    let durable = sim.w.take_durable();
    let mut sim2 = Sim::with_durable(origin(), config(), durable);
    sim2.invoke("running");
    sim2.invoke("done");
    sim2.invoke("new");
    assert_eq!(sim2.invocations(), ["new"]);
}

/// Respawn with no connection up: the unacked reply is flushed at its deadline.
#[test]
fn respawned_machine_flushes_when_it_cannot_connect() {
    let mut sim = Sim::new(origin(), config());
    sim.script.ack_replies = false;
    sim.invoke("r1");
    sim.reply("r1", Reply::done("1"));
    let durable = sim.w.take_durable();
    let mut sim2 =
        Sim::build(origin(), config(), durable, Script { start_status: Some(503), ..Script::default() });
    sim2.advance(secs(5));
    assert_eq!(sim2.flushed.len(), 1);
    assert_eq!(sim2.flushed[0].request_id, "r1");
    assert!(sim2.has_event(&Event::ReplyAcked { request_id: "r1".into() }));
}

/// The machine and its durable state can move to another thread (the
/// adapters run the machine on a connection thread and respawn it).
#[test]
fn machine_and_durable_state_are_send() {
    fn is_send<T: Send + 'static>() {}
    is_send::<connect_core::worker::Worker>();
    is_send::<connect_core::worker::Durable>();
    fn is_clone_default<T: Clone + Default + std::fmt::Debug>() {}
    is_clone_default::<connect_core::worker::Durable>();
}
