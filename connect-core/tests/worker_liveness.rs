//! Heartbeats, reconnects and connection states (issue 3, items 2, 5 and 7).

mod sim;

use std::time::Duration;

use connect_core::backoff::BackoffConfig;
use connect_core::wire::Message;
use connect_core::worker::{ConnectionState, Event, Reply, Timer};
use sim::*;

/// Heartbeats go out every heartbeat interval from READY, the first one
/// interval after READY.
#[test]
fn heartbeats_every_interval_from_ready() {
    let mut sim = Sim::new(origin(), config());
    sim.advance(secs(35));
    let times: Vec<u64> =
        sim.sent().iter().filter(|(_, _, m)| is_heartbeat(m)).map(|(t, _, _)| t.as_secs()).collect();
    assert_eq!(times, [10, 20, 30]);
    assert_eq!(sim.w.poll_timeout().map(|(_, t)| t), Some(Timer::Heartbeat));
}

/// An adapter's wake-up always comes a little after the deadline it asked
/// for (here 3 ms, every time). The next heartbeat is scheduled from the
/// deadline, not from the late moment it was handled, so the lateness does
/// not add up: every heartbeat is 3 ms late, not the n-th one n x 3 ms.
#[test]
fn late_wakeups_do_not_push_later_heartbeats_back() {
    let mut sim = Sim::new(origin(), config());
    let late = ms(3);
    while let Some((at, _why)) = sim.w.poll_timeout() {
        if at - sim.base > secs(50) {
            break;
        }
        sim.now = sim.now.max(at + late);
        sim.w.handle_timeout(sim.now);
        sim.pump();
    }
    let times: Vec<Duration> =
        sim.sent().iter().filter(|(_, _, m)| is_heartbeat(m)).map(|(t, _, _)| *t).collect();
    assert_eq!(times, [1, 2, 3, 4, 5].map(|n| secs(10 * n) + late));
}

/// A long stall (the connection thread not scheduled for 25 s, or the clock
/// jumping forward) sends one heartbeat when it ends and the interval starts
/// over from there: no burst of heartbeats to catch up with the schedule.
#[test]
fn a_long_stall_sends_one_heartbeat_then_resumes_the_interval() {
    let mut sim = Sim::new(origin(), config());
    let conn = sim.active_conn();
    sim.advance(secs(10));
    sim.now += secs(25);
    sim.w.handle_timeout(sim.now);
    sim.pump();
    sim.advance(secs(20));
    let times: Vec<u64> =
        sim.sent().iter().filter(|(_, _, m)| is_heartbeat(m)).map(|(t, _, _)| t.as_secs()).collect();
    assert_eq!(times, [10, 35, 45, 55]);
    assert_eq!(sim.active_conn(), conn);
}

/// Two unanswered heartbeats: at the next tick the connection is declared
/// dead, closed, and a new one is built.
#[test]
fn two_unanswered_heartbeats_mean_reconnect() {
    let mut sim = Sim::new(origin(), config());
    let conn = sim.active_conn();
    sim.script.answer_heartbeats = false;
    sim.advance(secs(29));
    assert!(sim.closes().is_empty());
    sim.advance(secs(1));
    assert_eq!(sim.closes()[0], (conn, 4001, "CONSECUTIVE_HEARTBEATS_MISSED".into()));
    assert_eq!(sim.state(), ConnectionState::Reconnecting);
    sim.script.answer_heartbeats = true;
    sim.run_until(secs(10), |s| s.state() == ConnectionState::Active);
    assert_ne!(sim.active_conn(), conn);
}

/// The miss limit is configurable.
#[test]
fn heartbeat_miss_limit_is_configurable() {
    let mut c = config();
    c.heartbeat_miss_limit = 4;
    let mut sim = Sim::new(origin(), c);
    sim.script.answer_heartbeats = false;
    sim.advance(secs(49));
    assert!(sim.closes().is_empty());
    sim.advance(secs(1));
    assert_eq!(sim.closes().len(), 1);
}

/// One late heartbeat answer resets the count.
#[test]
fn an_answer_resets_the_unanswered_count() {
    let mut sim = Sim::new(origin(), config());
    let conn = sim.active_conn();
    sim.script.answer_heartbeats = false;
    sim.advance(secs(25));
    sim.send(conn, Message::GatewayHeartbeat);
    sim.advance(secs(20));
    assert!(sim.closes().is_empty());
}

/// A clean 1000 close we did not ask for still leads to a reconnect.
#[test]
fn clean_close_from_the_gateway_reconnects() {
    let mut sim = Sim::new(origin(), config());
    let conn = sim.active_conn();
    sim.close(conn, Some((1000, "")));
    assert_eq!(sim.state(), ConnectionState::Reconnecting);
    assert_eq!(sim.w.poll_timeout().map(|(_, t)| t), Some(Timer::Backoff));
    sim.run_until(secs(5), |s| s.state() == ConnectionState::Active);
}

/// A socket error (no close frame) reconnects too.
#[test]
fn socket_error_reconnects() {
    let mut sim = Sim::new(origin(), config());
    let conn = sim.active_conn();
    sim.close(conn, None);
    sim.run_until(secs(5), |s| s.state() == ConnectionState::Active);
    assert_ne!(sim.active_conn(), conn);
}

/// Reconnect delays grow exponentially with full jitter under the cap, and
/// the machine keeps trying forever (here: 40 failures).
#[test]
fn reconnect_backoff_grows_with_jitter_and_never_gives_up() {
    let mut sim = Sim::scripted(origin(), config(), Script { start_status: Some(500), ..Script::default() });
    sim.advance(secs(3 * 3600));
    let times: Vec<f64> = sim.start_calls().iter().map(|(t, _)| t.as_secs_f64()).collect();
    assert!(times.len() >= 40, "{} attempts in 3 h", times.len());
    let gaps: Vec<f64> = times.windows(2).map(|w| w[1] - w[0]).collect();
    let cfg = BackoffConfig::default();
    for (n, gap) in gaps.iter().enumerate() {
        assert!(*gap <= cfg.ceiling(n as u32).as_secs_f64() + 1e-9, "gap {n} = {gap}");
    }
    assert!(gaps.iter().any(|g| *g > 100.0), "the delays grow toward the cap");
    assert!(gaps.windows(2).any(|w| w[1] < w[0]), "jitter makes some delays shorter than the previous");
}

/// The same seed gives the same reconnect schedule; another seed a different one.
#[test]
fn reconnect_schedule_replays_from_the_seed() {
    let schedule = |seed| {
        let mut c = config();
        c.seed = seed;
        let mut sim = Sim::scripted(origin(), c, Script { start_status: Some(500), ..Script::default() });
        sim.advance(secs(600));
        sim.start_calls().iter().map(|(t, _)| t.as_nanos()).collect::<Vec<_>>()
    };
    assert_eq!(schedule(5), schedule(5));
    assert_ne!(schedule(5), schedule(6));
}

/// After a stable ACTIVE period the backoff starts again from the first step.
#[test]
fn backoff_resets_after_a_stable_active_period() {
    let mut c = config();
    c.reconnect_backoff.jitter = false;
    let mut sim = Sim::scripted(origin(), c, Script { start_status: Some(500), ..Script::default() });
    sim.advance(secs(20)); // failures at 0, 1, 3, 7, 15 s: the next delay would be 16 s
    sim.script.start_status = Some(200);
    sim.run_until(secs(60), |s| s.state() == ConnectionState::Active);
    sim.advance(secs(60)); // stable
    let conn = sim.active_conn();
    let before = sim.start_calls().len();
    sim.close(conn, None);
    sim.advance(ms(1_000));
    assert_eq!(sim.start_calls().len(), before + 1, "first step again: 1 s");
}

/// A connection lost soon after READY does not reset the backoff.
#[test]
fn flapping_connection_keeps_backing_off() {
    let mut c = config();
    c.reconnect_backoff.jitter = false;
    let mut sim = Sim::new(origin(), c);
    let mut gaps = Vec::new();
    for _ in 0..4 {
        let conn = sim.active_conn();
        sim.close(conn, None);
        let t0 = sim.elapsed();
        sim.run_until(secs(60), |s| s.state() == ConnectionState::Active);
        gaps.push((sim.elapsed() - t0).as_secs());
    }
    assert_eq!(gaps, [1, 2, 4, 8]);
}

/// The states a user sees across a life: CONNECTING, ACTIVE, RECONNECTING,
/// ACTIVE, PAUSED, CLOSING, CLOSED, each change one event.
#[test]
fn state_changes_are_events_through_a_whole_life() {
    let mut sim = Sim::new(origin(), config());
    sim.invoke("r1");
    let conn = sim.active_conn();
    sim.close(conn, None);
    sim.run_until(secs(5), |s| s.state() == ConnectionState::Active);
    sim.shutdown();
    sim.reply("r1", Reply::done("1"));
    use ConnectionState::*;
    assert_eq!(sim.states(), [Connecting, Active, Reconnecting, Active, Paused, Closing, Closed]);
    assert_eq!(sim.events().last(), Some(&Event::Closed));
}

/// Every ACTIVE connection announces itself with a Ready event.
#[test]
fn each_active_connection_emits_ready() {
    let mut sim = Sim::new(origin(), config());
    let conn = sim.active_conn();
    sim.close(conn, None);
    sim.run_until(secs(5), |s| s.state() == ConnectionState::Active);
    let readies = sim.events().iter().filter(|e| matches!(e, Event::Ready { .. })).count();
    assert_eq!(readies, 2);
}

/// handle_timeout early, twice, or with time going backwards changes nothing.
#[test]
fn early_repeated_and_backwards_timeouts_are_harmless() {
    let mut sim = Sim::new(origin(), config());
    let before = sim.log.len();
    let now = sim.now;
    sim.w.handle_timeout(now);
    sim.w.handle_timeout(now);
    sim.w.handle_timeout(now - secs(1));
    sim.pump();
    assert_eq!(sim.log.len(), before);
    sim.advance(secs(10));
    sim.w.handle_timeout(now);
    sim.pump();
    assert_eq!(sim.count_sent(is_heartbeat), 1);
}

/// Nothing arrives from or is sent to a connection after we retired it: a
/// stray frame or close from it is ignored.
#[test]
fn events_from_a_retired_connection_are_ignored() {
    let mut sim = Sim::new(origin(), config());
    let old = sim.active_conn();
    sim.script.answer_heartbeats = false;
    sim.advance(secs(30));
    sim.script.answer_heartbeats = true;
    sim.run_until(secs(10), |s| s.state() == ConnectionState::Active);
    let log = sim.log.len();
    sim.w.handle_frame(sim.now, old, bytes::Bytes::from_static(&[0x08, 0x0B]));
    sim.w.handle_closed(sim.now, old, None);
    sim.pump();
    assert_eq!(sim.log.len(), log);
    assert_eq!(sim.state(), ConnectionState::Active);
}
