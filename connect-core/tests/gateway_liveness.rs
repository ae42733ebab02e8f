//! Heartbeats at the gateway: answers, exact gap records, the five-interval
//! miss close, and routing only to connections heard from within two intervals.

mod gateway_sim;

use connect_core::gateway::run::RunStatus;
use connect_core::gateway::{Event, GatewayConfig};
use connect_core::wire::*;
use gateway_sim::*;

/// Every heartbeat is answered, and every gap is recorded exactly; gaps over
/// 1.25 intervals count as late.
#[test]
fn heartbeat_gaps_are_recorded_exactly_and_late_ones_counted() {
    let mut sim = Sim::new(origin(), config());
    let conn = sim.connect("host", &[function("app-f", "e", 0)]);
    for gap in [10_000, 10_000, 12_500, 12_501, 9_000] {
        sim.advance(ms(gap));
        sim.heartbeat(conn);
        assert_eq!(sim.recv(conn), Some(Message::GatewayHeartbeat));
    }
    let info = &sim.server.connections()[0];
    assert_eq!(info.heartbeats, 5);
    assert_eq!(info.gaps, [10_000, 10_000, 12_500, 12_501, 9_000].map(ms));
    assert_eq!(info.max_gap, ms(12_501));
    assert_eq!(info.late, 1, "12.5 s is exactly 1.25 x 10 s, not over it");
    let gaps: Vec<_> = sim
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Heartbeat { gap, .. } => Some(*gap),
            _ => None,
        })
        .collect();
    assert_eq!(gaps.len(), 5);
}

/// A worker that goes silent is dropped (no close frame, as Inngest's
/// `CloseNow`) at the first interval check more than five intervals after its
/// last heartbeat: between 50 and 60 s with the defaults.
#[test]
fn five_missed_intervals_drop_the_connection() {
    let mut sim = Sim::new(origin(), config());
    let conn = sim.connect("host", &[function("app-f", "e", 0)]);
    sim.advance(ms(3_000));
    sim.heartbeat(conn); // last sign of life at t = 3 s
    sim.advance(ms(49_999));
    assert_eq!(sim.closed_with(conn), None, "not yet 5 intervals");
    sim.advance(secs(10));
    assert_eq!(sim.closed_with(conn), Some(None), "dropped without a close frame");
    assert_eq!(sim.disconnect_of(conn).as_deref(), Some("CONSECUTIVE_HEARTBEATS_MISSED"));
    let closed_at = sim.elapsed();
    assert!(closed_at > secs(53) && closed_at <= secs(63), "{closed_at:?}");
    // The silence that got it dropped is on its record as a late gap.
    let info = &sim.server.connections()[0];
    assert_eq!(info.heartbeats, 1);
    assert_eq!(info.late, 1, "the 3 s first gap is on time; the silence is not");
    let silence = info.gaps.last().copied().expect("a last gap");
    assert!(silence > secs(50) && silence <= closed_at - secs(3), "{silence:?}");
    assert_eq!(info.max_gap, silence);
}

/// A connection quiet for more than two intervals is skipped by the router
/// (and counted as marked unhealthy); the run waits and goes out with the
/// next heartbeat.
#[test]
fn a_stale_connection_is_not_routed_to_until_it_heartbeats_again() {
    let mut sim = Sim::new(origin(), GatewayConfig { heartbeat_interval: secs(1), ..config() });
    let conn = sim.connect("host", &[function("app-f", "e", 0)]);
    sim.advance(ms(2_500));
    let event = sim.send_event("e");
    assert_eq!(sim.recv_request(conn), None, "stale connection skipped");
    assert_eq!(sim.server.connections()[0].marked_unhealthy, 1);
    assert_eq!(sim.server.executor().queued(), 1);
    sim.heartbeat(conn);
    let req = sim.recv_request(conn).expect("routed once healthy again");
    sim.ack(conn, &req);
    sim.reply(conn, &req, SdkResponseStatus::Done, "true");
    assert_eq!(sim.status_of(&event), RunStatus::Completed);
}

/// Heartbeats keep being answered while the worker is paused or the gateway draining.
#[test]
fn heartbeats_are_answered_while_paused_and_draining() {
    let mut sim = Sim::new(origin(), config());
    let conn = sim.connect("host", &[function("app-f", "e", 0)]);
    sim.send(conn, Message::WorkerPause);
    sim.heartbeat(conn);
    assert_eq!(sim.recv(conn), Some(Message::GatewayHeartbeat));
    sim.server.drain(sim.now);
    sim.drain();
    assert_eq!(sim.recv(conn), Some(Message::GatewayClosing));
    sim.heartbeat(conn);
    assert_eq!(sim.recv(conn), Some(Message::GatewayHeartbeat));
}

/// A connection's record carries when READY was sent and when it closed, so
/// heartbeat times can be laid out on a timeline (READY + the running sum of
/// gaps) and the silence between the last heartbeat and the close measured.
#[test]
fn connection_records_place_heartbeats_and_the_close_in_time() {
    let mut sim = Sim::new(origin(), config());
    let ready_at = sim.now;
    let conn = sim.connect("host", &[function("app-f", "e", 0)]);
    sim.advance(ms(10_000));
    sim.heartbeat(conn);
    sim.advance(ms(9_000));
    sim.heartbeat(conn);
    let info = &sim.server.connections()[0];
    assert_eq!(info.connected_at, ready_at);
    assert_eq!(info.connected_at + info.gaps.iter().sum::<std::time::Duration>(), sim.now);
    assert_eq!(info.disconnected_at, None);
    let last = sim.now;
    sim.advance(secs(60));
    assert_eq!(sim.disconnect_of(conn).as_deref(), Some("CONSECUTIVE_HEARTBEATS_MISSED"));
    let closed = sim.server.connections()[0].disconnected_at.expect("closed");
    let silence = closed - last;
    assert!(silence > secs(50) && silence <= secs(60), "{silence:?}");
}
