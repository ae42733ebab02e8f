//! Interop with a client no one here wrote: the Inngest JS SDK worker
//! (`inngest@4.24.0` from npm, pinned by tests/js/package-lock.json, in its
//! default worker-thread mode) connects to connect-dev, runs a function for an
//! event, and fails a throwing function after its retry.
//!
//! Needs Node 20 and npm. Without them the test is skipped with a message,
//! except under `CI=true`, where it fails.

mod external;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use external::{Killed, forward_lines, have, in_ci, wait_bounded};

use connect_dev::{DevConfig, DevServer, RunStatus};
use serde_json::json;

const T: Duration = Duration::from_secs(30);

fn js_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/js")
}

/// Node and the pinned SDK, or `None` (skip) when they cannot be had outside CI.
fn node_ready() -> Option<()> {
    if !have("node") || !have("npm") {
        assert!(!in_ci(), "CI=true but node/npm are missing: the JS interop test cannot run");
        eprintln!("SKIPPED js_interop: node and npm are not installed");
        return None;
    }
    if !js_dir().join("node_modules/inngest/package.json").exists() {
        let mut npm = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(js_dir())
            .spawn()
            .expect("spawn npm ci");
        let status = wait_bounded(&mut npm, Duration::from_secs(300)).expect("npm ci finished in 5 min");
        assert!(status.success(), "npm ci failed in tests/js");
    }
    Some(())
}

fn spawn_worker(dev: &DevServer, signing_key: Option<&str>) -> (Killed, mpsc::Receiver<String>) {
    let mut command = Command::new("node");
    match signing_key {
        Some(key) => command.env("SIGNING_KEY", key),
        None => command.env("SEND_EVENT_NAME", "js/hello"),
    };
    let mut child = command
        .arg("interop-worker.mjs")
        .current_dir(js_dir())
        .env("NODE_OPTIONS", "--experimental-websocket")
        .env("DEV_API_URL", dev.api_url())
        .env("INNGEST_CONNECT_GATEWAY_URL", dev.gateway_url())
        .env_remove("INNGEST_SIGNING_KEY")
        .env_remove("INNGEST_BASE_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn node");
    let lines = forward_lines(child.stdout.take().expect("stdout"), "node");
    (Killed(child), lines)
}

#[test]
fn the_inngest_js_sdk_runs_functions_through_connect_dev() {
    if node_ready().is_none() {
        return;
    }
    let dev = DevServer::spawn(DevConfig {
        heartbeat_interval: Duration::from_secs(1),
        extend_lease_interval: Duration::from_secs(1),
        ..DevConfig::ephemeral()
    })
    .expect("spawn dev server");
    let (_node, lines) = spawn_worker(&dev, None);
    wait_ready(&lines);
    dev.wait_for_function("js-interop-hello", T).expect("the JS app registered its functions");

    // The SDK's own `inngest.send` goes through the event API and its id names the run.
    let sent = wait_line(&lines, "interop-worker: sent ");
    let run = dev.wait_for_run_end(&sent, T).expect("the SDK-sent event's run ends");
    assert_eq!(run.output, Some(json!({ "greeting": "hello from the SDK" })));

    let conns = dev.connections().expect("connections");
    assert_eq!(conns.len(), 1);
    assert_eq!(conns[0].sdk, "typescript:v4.24.0");
    assert_eq!(conns[0].instance_id, "js-interop-worker");
    assert_eq!(conns[0].apps, vec!["js-interop".to_owned()]);

    let hello = dev.send_event("js/hello", json!({ "name": "Ada" })).expect("event");
    let run = dev.wait_for_run_end(&hello, T).expect("hello run ends");
    assert_eq!(run.status, RunStatus::Completed, "{run:?}");
    assert_eq!(run.output, Some(json!({ "greeting": "hello Ada" })));
    assert_eq!(run.function_id, "js-interop-hello");
    assert_eq!(run.attempts.len(), 1);
    assert!(run.attempts[0].acked);

    let boom = dev.send_event("js/boom", json!({})).expect("event");
    let run = dev.wait_for_run_end(&boom, T).expect("boom run ends");
    assert_eq!(run.status, RunStatus::Failed, "{run:?}");
    assert_eq!(run.attempts.len(), 2, "retries: 1 means two attempts: {run:?}");
    assert_eq!(run.attempts[0].outcome.as_deref(), Some("Error"));
    assert_eq!(run.output.as_ref().and_then(|o| o["message"].as_str()), Some("boom on attempt 1"));

    // A step function: two step.run and a one-second step.sleep, memoized and resumed by the executor.
    let stepped = dev.send_event("js/steps", json!({ "start": 41 })).expect("event");
    let steps_run = dev.wait_for_run_end(&stepped, T).expect("steps run ends");
    assert_eq!(steps_run.status, RunStatus::Completed, "{steps_run:?}");
    assert_eq!(steps_run.output, Some(json!({ "a": 41, "b": 42 })));
    assert!(steps_run.attempts.len() >= 3, "one request per step at least: {steps_run:?}");
    let slept = steps_run.ended_at.unwrap_or(0).saturating_sub(steps_run.run_started_at);
    assert!(slept >= 1000, "the sleep took {slept} ms");

    // The run API shows the same, in Inngest's `{"data": ...}` shape.
    let body = http_get(dev.api_addr(), &format!("/v1/runs/{}", run.run_id));
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["data"]["status"], "Failed");

    // Heartbeats arrive every READY interval (1 s) and are answered and counted.
    let conns = dev.wait_for_connections_where(|c| c[0].heartbeats >= 2, T).expect("two heartbeats");
    assert!(conns[0].max_gap < Duration::from_secs(3), "{:?}", conns[0]);
    dev.shutdown();
}

fn wait_ready(lines: &mpsc::Receiver<String>) {
    wait_line(lines, "interop-worker: ready ");
}

/// The rest of the first line starting with `prefix`, waiting at most 30 s.
fn wait_line(lines: &mpsc::Receiver<String>, prefix: &str) -> String {
    let end = Instant::now() + T;
    loop {
        let left = end.saturating_duration_since(Instant::now());
        let line = lines
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("the JS worker printed {prefix:?} within 30 s"));
        if let Some(rest) = line.strip_prefix(prefix) {
            return rest.trim().to_owned();
        }
    }
}

/// A production-mode JS worker (`isDev: false`) authenticates its start call
/// with its hashed signing key against a dev server started with that key.
#[test]
fn the_inngest_js_sdk_authenticates_with_a_signing_key() {
    if node_ready().is_none() {
        return;
    }
    const KEY: &str = "signkey-test-8ee2262a15e8d3c42d6a840db7af3de2aab08ef632b32a37a687f24b34dba3ff";
    let dev = DevServer::spawn(DevConfig {
        heartbeat_interval: Duration::from_secs(1),
        signing_key: Some(connect_core::auth::SigningKey::new(KEY).expect("key")),
        ..DevConfig::ephemeral()
    })
    .expect("spawn dev server");
    let (_node, lines) = spawn_worker(&dev, Some(KEY));
    wait_ready(&lines);
    dev.wait_for_function("js-interop-hello", T).expect("registered");
    let hello = dev.send_event("js/hello", json!({ "name": "Key" })).expect("event");
    let run = dev.wait_for_run_end(&hello, T).expect("run ends");
    assert_eq!(run.output, Some(json!({ "greeting": "hello Key" })));
    dev.shutdown();
}

fn http_get(addr: std::net::SocketAddr, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").expect("write");
    let mut raw = String::new();
    s.read_to_string(&mut raw).expect("read");
    raw.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default()
}
