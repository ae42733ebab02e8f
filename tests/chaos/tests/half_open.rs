//! A half-open connection (the proxy swallows everything and closes nothing)
//! is detected by the worker's heartbeats, replaced, and then really closed:
//! its socket must not stay open waiting for a close handshake that can never
//! finish. (connect-tokio kept a stalled socket and its reader task forever;
//! found by the chaos soak.)

use std::time::{Duration, Instant};

use connect_adapter::Function;
use connect_chaos::proxy::Proxy;
use connect_chaos::workers::{self, Adapter, Spec};
use connect_dev::{DevConfig, DevServer};
use serde_json::json;

fn stalled_connection_is_replaced_then_closed(adapter: Adapter) {
    let dev = DevServer::spawn(DevConfig {
        heartbeat_interval: Duration::from_millis(200),
        seed: Some(9),
        ..DevConfig::ephemeral()
    })
    .expect("dev");
    let proxy = Proxy::start(dev.gateway_addr()).expect("proxy");
    let spec = Spec {
        app: format!("half-open-{}", adapter.name()),
        api_url: dev.api_url(),
        gateway_url: proxy.gateway_url(),
        function: Function::new("f").on_event("half-open/f"),
        body: std::sync::Arc::new(|_| Ok(json!(null))),
        handler_threads: 1,
        seed: 3,
        tune: workers::tune,
    };
    let worker = workers::start(adapter, spec);
    worker.ready(Duration::from_secs(10)).expect("ready");
    std::thread::sleep(Duration::from_millis(300));
    let stalled = proxy.live(Duration::ZERO);
    assert_eq!(stalled.len(), 1, "one connection");
    proxy.stall(stalled[0]);
    let deadline = Instant::now() + Duration::from_secs(10);
    let times = loop {
        let history = proxy.history();
        let first = history[0].clone();
        if history.len() >= 2 && first.client_closed.is_some() {
            break history;
        }
        assert!(
            Instant::now() < deadline,
            "{}: not replaced and closed within 10 s: {history:?}",
            adapter.name()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let at = times[0].stalled.expect("stalled");
    let reconnected = times[1].accepted - at;
    let closed = times[0].client_closed.expect("closed") - at;
    // Two unanswered heartbeats at 200 ms, then a reconnect; the old socket goes within the close grace.
    assert!(reconnected < Duration::from_secs(3), "{}: reconnected after {reconnected:?}", adapter.name());
    assert!(closed < Duration::from_secs(5), "{}: stalled socket closed after {closed:?}", adapter.name());
    worker.stop(Duration::from_secs(10)).expect("stops");
}

#[test]
fn tokio_closes_a_stalled_connection_after_replacing_it() {
    stalled_connection_is_replaced_then_closed(Adapter::Tokio);
}

#[test]
fn blocking_closes_a_stalled_connection_after_replacing_it() {
    stalled_connection_is_replaced_then_closed(Adapter::Blocking);
}

#[test]
fn async_std_closes_a_stalled_connection_after_replacing_it() {
    stalled_connection_is_replaced_then_closed(Adapter::AsyncStd);
}
