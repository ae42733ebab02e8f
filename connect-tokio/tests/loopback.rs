//! The tokio adapter against connect-dev over real loopback sockets.
//! Each test tells one story; every wait is bounded.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{WAIT, dev, runtime, spin, worker};
use connect_dev::{ConnStatus, RunStatus};
use connect_tokio::{ConnectionState, Function, HandlerError};
use serde_json::json;
use tokio::sync::Notify;

/// A worker connects, becomes ACTIVE, and the gateway sees its instance and app.
#[test]
fn handshake_reaches_active_and_the_gateway_sees_the_app() {
    let dev = dev(Duration::from_millis(200), Duration::from_millis(500));
    runtime(2).block_on(async {
        let w = worker(&dev, "hs")
            .instance_id("hs-1")
            .function(Function::new("f").on_event("hs/e"), |_| async { Ok(json!(null)) })
            .connect()
            .await
            .expect("connects");
        tokio::time::timeout(WAIT, w.ready()).await.expect("in time").expect("ready");
        assert_eq!(w.state(), ConnectionState::Active);
        let conns = dev.connections().expect("dev answers");
        assert_eq!(conns.len(), 1);
        assert_eq!(conns[0].instance_id, "hs-1");
        assert!(conns[0].apps.iter().any(|a| a == "hs"), "{:?}", conns[0].apps);
        w.shutdown();
        tokio::time::timeout(WAIT, w.closed()).await.expect("in time").expect("clean close");
    });
}

/// An event runs the function and the run completes with the handler's output.
#[test]
fn an_event_runs_the_function_to_completion_with_its_output() {
    let dev = dev(Duration::from_millis(200), Duration::from_millis(500));
    runtime(2).block_on(async {
        let w = worker(&dev, "inv")
            .function(Function::new("greet").on_event("inv/hello"), |ctx| async move {
                Ok(json!({ "greeting": format!("hello {}", ctx.event().data["name"].as_str().unwrap_or("?")),
                           "attempt": ctx.attempt() }))
            })
            .connect()
            .await
            .expect("connects");
        tokio::time::timeout(WAIT, w.ready()).await.expect("in time").expect("ready");
        let event = dev.send_event("inv/hello", json!({ "name": "ada" })).expect("event");
        let run = dev.wait_for_run_end(&event, WAIT).expect("run ends");
        assert_eq!(run.status, RunStatus::Completed, "{run:?}");
        assert_eq!(run.output, Some(json!({ "greeting": "hello ada", "attempt": 0 })));
        w.shutdown();
        tokio::time::timeout(WAIT, w.closed()).await.expect("in time").expect("clean close");
    });
}

/// A retryable error is retried; a non-retriable one fails the run at once.
#[test]
fn handler_errors_follow_the_retry_rules() {
    let dev = dev(Duration::from_millis(200), Duration::from_millis(500));
    let calls = Arc::new(AtomicUsize::new(0));
    runtime(2).block_on(async {
        let c = calls.clone();
        let w = worker(&dev, "err")
            .function(Function::new("flaky").on_event("err/flaky").retries(2), move |ctx| {
                let c = c.clone();
                async move {
                    c.fetch_add(1, Ordering::SeqCst);
                    if ctx.attempt() == 0 {
                        Err(HandlerError::new("first try fails"))
                    } else {
                        Ok(json!("second try"))
                    }
                }
            })
            .function(Function::new("doomed").on_event("err/doomed").retries(3), |_| async {
                Err(HandlerError::non_retriable("no point retrying"))
            })
            .connect()
            .await
            .expect("connects");
        tokio::time::timeout(WAIT, w.ready()).await.expect("in time").expect("ready");
        let flaky = dev.send_event("err/flaky", json!({})).expect("event");
        let doomed = dev.send_event("err/doomed", json!({})).expect("event");
        let run = dev.wait_for_run_end(&flaky, WAIT).expect("ends");
        assert_eq!(run.status, RunStatus::Completed, "{run:?}");
        assert_eq!(run.output, Some(json!("second try")));
        assert_eq!(run.attempts.len(), 2);
        let run = dev.wait_for_run_end(&doomed, WAIT).expect("ends");
        assert_eq!(run.status, RunStatus::Failed, "{run:?}");
        assert_eq!(run.attempts.len(), 1, "no_retry stops at the first attempt");
        w.shutdown();
        tokio::time::timeout(WAIT, w.closed()).await.expect("in time").expect("clean close");
    });
}

/// Handlers that spin every runtime worker thread without yielding do not stop
/// heartbeats: the gateway keeps receiving them while the spin runs, and the
/// connection is never dropped.
#[test]
fn cpu_bound_handlers_on_every_thread_do_not_stop_heartbeats() {
    let dev = dev(Duration::from_millis(100), Duration::from_millis(300));
    let started = Arc::new(Notify::new());
    runtime(2).block_on(async {
        let s = started.clone();
        let w = worker(&dev, "cpu")
            .function(Function::new("spin").on_event("cpu/spin").retries(0), move |_| {
                let s = s.clone();
                async move {
                    s.notify_one();
                    spin(Duration::from_millis(1500));
                    Ok(json!("spun"))
                }
            })
            .connect()
            .await
            .expect("connects");
        tokio::time::timeout(WAIT, w.ready()).await.expect("in time").expect("ready");
        let events: Vec<_> = (0..2).map(|_| dev.send_event("cpu/spin", json!({})).expect("event")).collect();
        tokio::time::timeout(WAIT, started.notified()).await.expect("a handler started");
        let before = dev.connections().expect("dev answers")[0].heartbeats;
        for e in &events {
            let run = dev.wait_for_run_end(e, WAIT).expect("ends");
            assert_eq!(run.status, RunStatus::Completed, "{run:?}");
        }
        let conns = dev.connections().expect("dev answers");
        assert_eq!(conns.len(), 1, "the connection was never replaced");
        assert!(conns[0].heartbeats > before, "heartbeats arrived while both threads spun");
        w.shutdown();
        tokio::time::timeout(WAIT, w.closed()).await.expect("in time").expect("clean close");
    });
}

/// A handler that runs for several extend intervals keeps its lease: the
/// worker extends it and the run completes on its first attempt.
#[test]
fn a_long_handler_keeps_its_lease_by_extending_it() {
    let dev = dev(Duration::from_millis(100), Duration::from_millis(100));
    runtime(2).block_on(async {
        let w = worker(&dev, "lease")
            .function(Function::new("slow").on_event("lease/slow"), |ctx| async move {
                tokio::time::sleep(Duration::from_millis(800)).await;
                Ok(json!({ "cancelled": ctx.is_cancelled() }))
            })
            .connect()
            .await
            .expect("connects");
        tokio::time::timeout(WAIT, w.ready()).await.expect("in time").expect("ready");
        let event = dev.send_event("lease/slow", json!({})).expect("event");
        let run = dev.wait_for_run_end(&event, WAIT).expect("ends");
        assert_eq!(run.status, RunStatus::Completed, "{run:?}");
        assert_eq!(run.output, Some(json!({ "cancelled": false })));
        // The lease is 4 x 100 ms: without extensions it would have expired
        // and the attempt been retried.
        assert_eq!(run.attempts.len(), 1, "{run:?}");
        w.shutdown();
        tokio::time::timeout(WAIT, w.closed()).await.expect("in time").expect("clean close");
    });
}

/// The gateway drains while a run is in flight: the worker connects a
/// replacement, the run's reply still lands, and no run is lost or repeated.
#[test]
fn a_drain_in_the_middle_of_a_run_loses_nothing() {
    let dev = dev(Duration::from_millis(100), Duration::from_millis(200));
    let release = Arc::new(Notify::new());
    let entered = Arc::new(Notify::new());
    runtime(2).block_on(async {
        let (r, e) = (release.clone(), entered.clone());
        let w = worker(&dev, "drain")
            .function(Function::new("wait").on_event("drain/wait"), move |_| {
                let (r, e) = (r.clone(), e.clone());
                async move {
                    e.notify_one();
                    r.notified().await;
                    Ok(json!("after drain"))
                }
            })
            .connect()
            .await
            .expect("connects");
        tokio::time::timeout(WAIT, w.ready()).await.expect("in time").expect("ready");
        let event = dev.send_event("drain/wait", json!({})).expect("event");
        tokio::time::timeout(WAIT, entered.notified()).await.expect("handler started");
        assert_eq!(dev.drain().expect("dev answers"), 1);
        // The replacement is READY at the gateway before the run goes on.
        let conns = dev
            .wait_for_connections_where(|c| c.len() >= 2 && c[1].status == ConnStatus::Ready, WAIT)
            .expect("a replacement connection");
        assert_ne!(conns[0].group, conns[1].group, "the replacement joined the new gateway group");
        release.notify_one();
        let run = dev.wait_for_run_end(&event, WAIT).expect("ends");
        assert_eq!(run.status, RunStatus::Completed, "{run:?}");
        assert_eq!(run.output, Some(json!("after drain")));
        assert_eq!(run.attempts.len(), 1, "not re-run");
        w.shutdown();
        tokio::time::timeout(WAIT, w.closed()).await.expect("in time").expect("clean close");
    });
}

/// The connection thread panics while a handler runs; the supervisor starts
/// a new one at once with the in-flight state, and the reply produced after
/// the respawn is delivered: the run completes on its first attempt.
#[test]
fn a_connection_thread_panic_is_respawned_and_loses_no_run() {
    let dev = dev(Duration::from_millis(100), Duration::from_millis(200));
    let release = Arc::new(Notify::new());
    let entered = Arc::new(Notify::new());
    runtime(2).block_on(async {
        let (r, e) = (release.clone(), entered.clone());
        let w = worker(&dev, "panic")
            .function(Function::new("wait").on_event("panic/wait"), move |_| {
                let (r, e) = (r.clone(), e.clone());
                async move {
                    e.notify_one();
                    r.notified().await;
                    Ok(json!("survived"))
                }
            })
            .connect()
            .await
            .expect("connects");
        tokio::time::timeout(WAIT, w.ready()).await.expect("in time").expect("ready");
        let event = dev.send_event("panic/wait", json!({})).expect("event");
        tokio::time::timeout(WAIT, entered.notified()).await.expect("handler started");
        w.inject_connection_panic();
        let deadline = std::time::Instant::now() + WAIT;
        while w.restarts() == 0 {
            assert!(std::time::Instant::now() < deadline, "never restarted");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::timeout(WAIT, w.ready()).await.expect("in time").expect("ready again");
        release.notify_one();
        let run = dev.wait_for_run_end(&event, WAIT).expect("ends");
        assert_eq!(run.status, RunStatus::Completed, "{run:?}");
        assert_eq!(run.output, Some(json!("survived")));
        assert_eq!(run.attempts.len(), 1, "not re-run");
        assert_eq!(w.restarts(), 1);
        w.shutdown();
        tokio::time::timeout(WAIT, w.closed()).await.expect("in time").expect("clean close");
    });
}

/// Shutdown waits for the handler in flight and delivers its reply before
/// the worker closes with 1000 WORKER_SHUTDOWN.
#[test]
fn shutdown_waits_for_in_flight_work() {
    let dev = dev(Duration::from_millis(100), Duration::from_millis(200));
    let entered = Arc::new(Notify::new());
    runtime(2).block_on(async {
        let e = entered.clone();
        let w = worker(&dev, "shut")
            .function(Function::new("slow").on_event("shut/slow"), move |_| {
                let e = e.clone();
                async move {
                    e.notify_one();
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    Ok(json!("finished"))
                }
            })
            .connect()
            .await
            .expect("connects");
        tokio::time::timeout(WAIT, w.ready()).await.expect("in time").expect("ready");
        let event = dev.send_event("shut/slow", json!({})).expect("event");
        tokio::time::timeout(WAIT, entered.notified()).await.expect("handler started");
        w.shutdown();
        tokio::time::timeout(WAIT, w.closed()).await.expect("in time").expect("clean close");
        // The reply was acked before the close, so the run is already over.
        let runs = dev.runs_for_event(&event).expect("dev answers");
        let run = runs.first().expect("a run");
        assert_eq!(run.status, RunStatus::Completed, "{run:?}");
        // And the gateway saw the close a shutdown promises, not a dropped socket.
        let conns = dev
            .wait_for_connections_where(|c| c.iter().all(|c| c.status == ConnStatus::Disconnected), WAIT)
            .expect("closed at the gateway");
        assert_eq!(conns[0].disconnect_reason.as_deref(), Some("WORKER_SHUTDOWN"), "{conns:?}");
    });
}
