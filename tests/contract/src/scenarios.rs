//! The scenarios. Each tells one story, in the doc comment above it, and
//! asserts what the gateway saw. They are generic over the adapter and
//! instantiated per adapter by [`contract_suite!`](crate::contract_suite).

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use connect_adapter::{Function, HandlerError};
use connect_core::worker::ConnectionState;
use connect_dev::{ConnStatus, DevServer, RunStatus};
use serde_json::json;

use crate::{Adapter, Gate, Running, Spec, WAIT, dev, spin};

/// Only one CPU-saturating scenario at a time in this process: the machine
/// has two cores, and the suite runs tests in parallel.
static CPU_HEAVY: Mutex<()> = Mutex::new(());

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn start<A: Adapter>(spec: Spec) -> Box<dyn Running> {
    let w = A::start(spec);
    w.ready(WAIT).expect("ready");
    w
}

fn stop(w: &dyn Running) {
    w.shutdown();
    w.closed(WAIT).expect("clean close");
}

fn completed(dev: &DevServer, event: &str) -> connect_dev::Run {
    let run = dev.wait_for_run_end(event, WAIT).expect("run ends");
    assert_eq!(run.status, RunStatus::Completed, "{run:?}");
    run
}

/// A worker connects, becomes ACTIVE, and the gateway sees its instance and app.
pub fn handshake_reaches_active_and_the_gateway_sees_the_app<A: Adapter>() {
    let dev = dev(ms(200), ms(500));
    let w =
        start::<A>(Spec::new(&dev, "hs").function(Function::new("f").on_event("hs/e"), |_| Ok(json!(null))));
    assert_eq!(w.state(), ConnectionState::Active);
    let conns = dev.connections().expect("dev answers");
    assert_eq!(conns.len(), 1);
    assert_eq!(conns[0].instance_id, "hs-1");
    assert!(conns[0].apps.iter().any(|a| a == "hs"), "{:?}", conns[0].apps);
    stop(&*w);
    assert_eq!(w.state(), ConnectionState::Closed);
}

/// An event runs the function and the run completes with the handler's output.
pub fn an_event_runs_the_function_to_completion_with_its_output<A: Adapter>() {
    let dev = dev(ms(200), ms(500));
    let w =
        start::<A>(Spec::new(&dev, "inv").function(Function::new("greet").on_event("inv/hello"), |ctx| {
            let name = ctx.event().data["name"].as_str().unwrap_or("?").to_owned();
            Ok(json!({ "greeting": format!("hello {name}"), "attempt": ctx.attempt() }))
        }));
    let event = dev.send_event("inv/hello", json!({ "name": "ada" })).expect("event");
    let run = completed(&dev, &event);
    assert_eq!(run.output, Some(json!({ "greeting": "hello ada", "attempt": 0 })));
    stop(&*w);
}

/// A retryable error is retried; a non-retriable one fails the run at once.
pub fn handler_errors_follow_the_retry_rules<A: Adapter>() {
    let dev = dev(ms(200), ms(500));
    let spec = Spec::new(&dev, "err")
        .function(Function::new("flaky").on_event("err/flaky").retries(2), |ctx| {
            if ctx.attempt() == 0 {
                Err(HandlerError::new("first try fails"))
            } else {
                Ok(json!("second try"))
            }
        })
        .function(Function::new("doomed").on_event("err/doomed").retries(3), |_| {
            Err(HandlerError::non_retriable("no point retrying"))
        });
    let w = start::<A>(spec);
    let flaky = dev.send_event("err/flaky", json!({})).expect("event");
    let doomed = dev.send_event("err/doomed", json!({})).expect("event");
    let run = completed(&dev, &flaky);
    assert_eq!(run.output, Some(json!("second try")));
    assert_eq!(run.attempts.len(), 2);
    let run = dev.wait_for_run_end(&doomed, WAIT).expect("ends");
    assert_eq!(run.status, RunStatus::Failed, "{run:?}");
    assert_eq!(run.attempts.len(), 1, "no_retry stops at the first attempt");
    stop(&*w);
}

/// A handler that panics fails its own run; the connection stays up and the
/// next run of another function completes.
pub fn a_panicking_handler_fails_only_its_request<A: Adapter>() {
    let dev = dev(ms(200), ms(500));
    let spec = Spec::new(&dev, "boom")
        .function(Function::new("bad").on_event("boom/bad").retries(0), |_| panic!("handler bug"))
        .function(Function::new("good").on_event("boom/good"), |_| Ok(json!("fine")));
    let w = start::<A>(spec);
    let bad = dev.send_event("boom/bad", json!({})).expect("event");
    let run = dev.wait_for_run_end(&bad, WAIT).expect("ends");
    assert_eq!(run.status, RunStatus::Failed, "{run:?}");
    let good = dev.send_event("boom/good", json!({})).expect("event");
    assert_eq!(completed(&dev, &good).output, Some(json!("fine")));
    assert_eq!(dev.connections().expect("dev answers").len(), 1, "the connection was never replaced");
    assert_eq!(w.restarts(), 0, "a handler panic is not a connection-thread panic");
    stop(&*w);
}

/// A handler whose output is over the gateway's 8 MiB frame limit: its reply
/// cannot be sent, so a small non-retriable error naming the size goes in its
/// place, and the run fails at once with that reason (not two minutes later,
/// at lease expiry, as `connect_worker_stopped_responding`). The connection
/// stays up and serves the next run.
pub fn an_output_too_large_fails_the_run_at_once_naming_the_size<A: Adapter>() {
    let dev = dev(ms(200), ms(500));
    let spec = Spec::new(&dev, "huge")
        .function(Function::new("big").on_event("huge/big").retries(3), |_| Ok(json!("x".repeat(9 << 20))))
        .function(Function::new("good").on_event("huge/good"), |_| Ok(json!("fine")));
    let w = start::<A>(spec);
    let big = dev.send_event("huge/big", json!({})).expect("event");
    let run = dev.wait_for_run_end(&big, WAIT).expect("ends");
    assert_eq!(run.status, RunStatus::Failed, "{:?}", run.output);
    assert_eq!(run.attempts.len(), 1, "not retried: the output would be too large again");
    let error = run.output.clone().unwrap_or_default();
    assert_eq!(error["name"], connect_core::worker::OUTPUT_TOO_LARGE, "{error}");
    let message = error["message"].as_str().unwrap_or_default();
    assert!(message.starts_with("output too large: "), "{message}");
    assert!(message.contains(&format!("{} bytes of output", (9 << 20) + 2)), "{message}");
    let good = dev.send_event("huge/good", json!({})).expect("event");
    assert_eq!(completed(&dev, &good).output, Some(json!("fine")));
    assert_eq!(dev.connections().expect("dev answers").len(), 1, "the connection was never replaced");
    stop(&*w);
}

/// Many runs in flight at once, more than there are handler threads: every
/// one completes exactly once.
pub fn many_concurrent_runs_all_complete<A: Adapter>() {
    let dev = dev(ms(200), ms(500));
    let w = start::<A>(Spec::new(&dev, "many").function(Function::new("echo").on_event("many/e"), |ctx| {
        std::thread::sleep(ms(5));
        Ok(ctx.event().data.clone())
    }));
    let events: Vec<_> =
        (0..24).map(|n| (n, dev.send_event("many/e", json!({ "n": n })).expect("event"))).collect();
    for (n, e) in &events {
        let run = completed(&dev, e);
        assert_eq!(run.output, Some(json!({ "n": n })));
        assert_eq!(run.attempts.len(), 1, "{run:?}");
    }
    stop(&*w);
}

/// Handlers that spin every handler thread without yielding do not stop
/// heartbeats: the gateway keeps receiving them while the spin runs, and the
/// connection is never dropped.
pub fn cpu_bound_handlers_on_every_thread_do_not_stop_heartbeats<A: Adapter>() {
    let _one_at_a_time = CPU_HEAVY.lock().unwrap_or_else(|p| p.into_inner());
    let dev = dev(ms(100), ms(300));
    let started = Gate::default();
    let s = started.clone();
    let w = start::<A>(Spec::new(&dev, "cpu").function(
        Function::new("spin").on_event("cpu/spin").retries(0),
        move |_| {
            s.open();
            spin(ms(1500));
            Ok(json!("spun"))
        },
    ));
    let events: Vec<_> = (0..2).map(|_| dev.send_event("cpu/spin", json!({})).expect("event")).collect();
    started.wait();
    let before = dev.connections().expect("dev answers")[0].heartbeats;
    for e in &events {
        completed(&dev, e);
    }
    let conns = dev.connections().expect("dev answers");
    assert_eq!(conns.len(), 1, "the connection was never replaced");
    assert!(conns[0].heartbeats > before, "heartbeats arrived while every handler thread spun");
    stop(&*w);
}

/// A handler that runs for several extend intervals keeps its lease: the
/// worker extends it and the run completes on its first attempt.
pub fn a_long_handler_keeps_its_lease_by_extending_it<A: Adapter>() {
    let dev = dev(ms(100), ms(100));
    let w =
        start::<A>(Spec::new(&dev, "lease").function(Function::new("slow").on_event("lease/slow"), |ctx| {
            std::thread::sleep(ms(800));
            Ok(json!({ "cancelled": ctx.is_cancelled() }))
        }));
    let event = dev.send_event("lease/slow", json!({})).expect("event");
    let run = completed(&dev, &event);
    assert_eq!(run.output, Some(json!({ "cancelled": false })));
    // The lease is 4 x 100 ms: without extensions it would have expired and
    // the attempt been retried.
    assert_eq!(run.attempts.len(), 1, "{run:?}");
    stop(&*w);
}

/// The gateway drains while a run is in flight: the worker connects a
/// replacement, the run's reply still lands, and no run is lost or repeated.
pub fn a_drain_in_the_middle_of_a_run_loses_nothing<A: Adapter>() {
    let dev = dev(ms(100), ms(200));
    let (entered, release) = (Gate::default(), Gate::default());
    let (e, r) = (entered.clone(), release.clone());
    let w = start::<A>(Spec::new(&dev, "drain").function(
        Function::new("wait").on_event("drain/wait"),
        move |_| {
            e.open();
            r.wait();
            Ok(json!("after drain"))
        },
    ));
    let event = dev.send_event("drain/wait", json!({})).expect("event");
    entered.wait();
    assert_eq!(dev.drain().expect("dev answers"), 1);
    let conns = dev
        .wait_for_connections_where(|c| c.len() >= 2 && c[1].status == ConnStatus::Ready, WAIT)
        .expect("a replacement connection");
    assert_ne!(conns[0].group, conns[1].group, "the replacement joined the new gateway group");
    release.open();
    let run = completed(&dev, &event);
    assert_eq!(run.output, Some(json!("after drain")));
    assert_eq!(run.attempts.len(), 1, "not re-run");
    stop(&*w);
}

/// The connection thread panics while a handler runs; the supervisor starts
/// a new one at once with the in-flight state, and the reply produced after
/// the respawn is delivered: the run completes on its first attempt.
pub fn a_connection_thread_panic_is_respawned_and_loses_no_run<A: Adapter>() {
    let dev = dev(ms(100), ms(200));
    let (entered, release) = (Gate::default(), Gate::default());
    let (e, r) = (entered.clone(), release.clone());
    let w = start::<A>(Spec::new(&dev, "panic").function(
        Function::new("wait").on_event("panic/wait"),
        move |_| {
            e.open();
            r.wait();
            Ok(json!("survived"))
        },
    ));
    let event = dev.send_event("panic/wait", json!({})).expect("event");
    entered.wait();
    w.inject_connection_panic();
    // The respawned incarnation dials again: a second connection becomes READY.
    dev.wait_for_connections_where(|c| c.len() >= 2 && c[1].status == ConnStatus::Ready, WAIT)
        .expect("a new connection after the respawn");
    assert_eq!(w.restarts(), 1);
    release.open();
    let run = completed(&dev, &event);
    assert_eq!(run.output, Some(json!("survived")));
    assert_eq!(run.attempts.len(), 1, "not re-run");
    stop(&*w);
}

/// Shutdown waits for the handler in flight and delivers its reply before
/// the worker closes, and the gateway hears why the worker left.
pub fn shutdown_waits_for_in_flight_work<A: Adapter>() {
    let dev = dev(ms(100), ms(200));
    let entered = Gate::default();
    let finished = std::sync::Arc::new(AtomicUsize::new(0));
    let (e, f) = (entered.clone(), finished.clone());
    let w = start::<A>(Spec::new(&dev, "shut").function(
        Function::new("slow").on_event("shut/slow"),
        move |_| {
            e.open();
            std::thread::sleep(ms(500));
            f.fetch_add(1, Ordering::SeqCst);
            Ok(json!("finished"))
        },
    ));
    let event = dev.send_event("shut/slow", json!({})).expect("event");
    entered.wait();
    stop(&*w);
    assert_eq!(finished.load(Ordering::SeqCst), 1, "the handler ran to its end");
    // The reply was acked before the close, so the run is already over.
    let runs = dev.runs_for_event(&event).expect("dev answers");
    let run = runs.first().expect("a run");
    assert_eq!(run.status, RunStatus::Completed, "{run:?}");
}

/// A handler still running at the shutdown deadline is cancelled, and its
/// signal says why: the worker is stopping (not that the lease was lost).
pub fn the_shutdown_deadline_cancels_a_stuck_handler_saying_why<A: Adapter>() {
    let dev = dev(ms(100), ms(200));
    let entered = Gate::default();
    let reason = std::sync::Arc::new(Mutex::new(None));
    let (e, r) = (entered.clone(), reason.clone());
    let mut spec = Spec::new(&dev, "stuck").function(Function::new("f").on_event("stuck/e"), move |ctx| {
        e.open();
        let signal = ctx.cancel_signal();
        let end = std::time::Instant::now() + WAIT;
        while !signal.is_cancelled() && std::time::Instant::now() < end {
            std::thread::sleep(ms(5));
        }
        *r.lock().expect("lock") = signal.reason();
        Ok(json!("too late"))
    });
    spec.shutdown_timeout = Some(ms(300));
    let w = start::<A>(spec);
    dev.send_event("stuck/e", json!({})).expect("event");
    entered.wait();
    stop(&*w);
    let end = std::time::Instant::now() + WAIT;
    while reason.lock().expect("lock").is_none() && std::time::Instant::now() < end {
        std::thread::sleep(ms(5));
    }
    assert_eq!(*reason.lock().expect("lock"), Some(connect_adapter::CancelReason::ShutdownDeadline));
}

/// A graceful shutdown ends with our close frame (1000 `WORKER_SHUTDOWN`)
/// reaching the gateway, which records it as the reason the worker left,
/// rather than a dropped socket.
pub fn the_gateway_hears_why_the_worker_left<A: Adapter>() {
    let dev = dev(ms(100), ms(200));
    let w = start::<A>(
        Spec::new(&dev, "bye").function(Function::new("f").on_event("bye/e"), |_| Ok(json!(null))),
    );
    stop(&*w);
    let conns = dev
        .wait_for_connections_where(|c| c.iter().all(|c| c.status == ConnStatus::Disconnected), WAIT)
        .expect("the gateway saw the close");
    assert_eq!(conns[0].disconnect_reason.as_deref(), Some("WORKER_SHUTDOWN"), "{:?}", conns[0]);
}

/// Threads and open file descriptors (sockets among them) of this process.
#[cfg(target_os = "linux")]
fn threads_and_fds() -> (usize, usize) {
    let count = |dir| std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0);
    (count("/proc/self/task"), count("/proc/self/fd"))
}

/// Every drain makes the worker build a new connection and retire the old
/// one. What a connection spawned (sockets, tasks, helper threads) dies with
/// it: after ten more drains the process has no more threads and no more
/// open descriptors than after the first ten (pools may have grown to their
/// working size by then). Run in a process of its own, one adapter at a
/// time: it counts the process's threads and descriptors.
#[cfg(target_os = "linux")]
pub fn reconnects_leave_no_threads_or_sockets_behind<A: Adapter>() {
    let dev = dev(ms(100), ms(200));
    let w = start::<A>(
        Spec::new(&dev, "churn").function(Function::new("f").on_event("churn/e"), |_| Ok(json!(1))),
    );
    let mut conns = 1;
    let mut drain = |times: usize| {
        for _ in 0..times {
            assert_eq!(dev.drain().expect("dev answers"), 1, "one live connection to drain");
            conns += 1;
            let n = conns;
            dev.wait_for_connections_where(
                move |c| {
                    c.len() == n
                        && c[n - 1].status == ConnStatus::Ready
                        && c[..n - 1].iter().all(|c| c.status == ConnStatus::Disconnected)
                },
                WAIT,
            )
            .expect("replaced, and the old connection closed");
        }
    };
    drain(10);
    let after_ten = threads_and_fds();
    drain(10);
    // A retired socket may still be finishing its close handshake: wait for
    // the count to settle, bounded.
    let deadline = std::time::Instant::now() + WAIT;
    let mut after_twenty = threads_and_fds();
    while (after_twenty.0 > after_ten.0 || after_twenty.1 > after_ten.1)
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(ms(10));
        after_twenty = threads_and_fds();
    }
    assert!(after_twenty.0 <= after_ten.0, "threads grew with reconnects: {after_ten:?} -> {after_twenty:?}");
    assert!(
        after_twenty.1 <= after_ten.1,
        "descriptors grew with reconnects: {after_ten:?} -> {after_twenty:?}"
    );
    // The worker still works on its twenty-first connection.
    let event = dev.send_event("churn/e", json!({})).expect("event");
    completed(&dev, &event);
    stop(&*w);
}
