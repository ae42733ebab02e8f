//! The dev server over real sockets, driven by a minimal hand-written worker.

mod support;

use std::time::Duration;

use connect_core::wire::{Message, SdkResponseStatus};
use connect_dev::{DevConfig, DevServer, RunStatus};
use support::*;

const T: Duration = Duration::from_secs(10);

fn dev() -> DevServer {
    DevServer::spawn(DevConfig { heartbeat_interval: Duration::from_millis(200), ..DevConfig::ephemeral() })
        .expect("spawn")
}

/// The whole happy path: start, handshake, heartbeat answered, an event runs
/// the function, the reply is acked and the run API shows it Completed.
#[test]
fn an_event_runs_a_function_to_completion() {
    let dev = dev();
    let mut ws = connect(&dev, "app", &[function("app-hello", "demo/hello", 0)]);
    dev.wait_for_function("app-hello", T).expect("registered");
    send(&mut ws, Message::WorkerHeartbeat);
    assert_eq!(recv(&mut ws), Message::GatewayHeartbeat);

    let event_id = dev.send_event("demo/hello", serde_json::json!({"name": "Ada"})).expect("event");
    let req = serve_one(&mut ws, SdkResponseStatus::Done, r#"{"greeting":"hi Ada"}"#);
    assert_eq!(req.function_slug, "app-hello");
    assert_eq!(req.app_name, "app");
    let payload: serde_json::Value = serde_json::from_slice(&req.request_payload).expect("json");
    assert_eq!(payload["event"]["data"]["name"], "Ada");
    assert_eq!(payload["ctx"]["attempt"], 0);
    match recv(&mut ws) {
        Message::WorkerReplyAck(a) => assert_eq!(a.request_id, req.request_id),
        other => panic!("expected reply ack, got {other:?}"),
    }
    let run = dev.wait_for_run_end(&event_id, T).expect("run ends");
    assert_eq!(run.status, RunStatus::Completed);
    assert_eq!(run.output, Some(serde_json::json!({"greeting": "hi Ada"})));
    assert_eq!(run.attempts.len(), 1);
    assert_eq!(run.attempts[0].connections[0].instance_id, "test-host");

    let (status, body) = http(dev.api_addr(), "GET", &format!("/v1/runs/{}", run.run_id), None, &[]);
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(v["data"]["status"], "Completed");
    let (status, body) = http(dev.api_addr(), "GET", &format!("/v1/events/{event_id}/runs"), None, &[]);
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(v["data"][0]["run_id"], run.run_id.as_str());
    assert!(v["data"][0]["run_started_at"].as_str().is_some_and(|t| t.ends_with('Z')), "RFC 3339: {v}");
    let summary = dev.summary().expect("summary");
    assert_eq!((summary.runs, summary.completed, summary.failed, summary.heartbeats), (1, 1, 0, 1));
    assert!(
        summary.to_string().starts_with("runs=1 completed=1 failed=0 heartbeats=1 late=0 max_gap_ms="),
        "{summary}"
    );
    dev.shutdown();
}

/// The event API takes an array and answers Inngest's shape.
#[test]
fn the_event_api_answers_ids_and_status() {
    let dev = dev();
    let body = br#"[{"name":"a/b","data":{}},{"name":"a/c","data":{"x":1},"id":"mine"}]"#;
    let (status, resp) = http(dev.api_addr(), "POST", "/e/some-key", None, body);
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_slice(&resp).expect("json");
    assert_eq!(v["status"], 200);
    assert_eq!(v["ids"].as_array().map(Vec::len), Some(2));
    let (status, _) = http(dev.api_addr(), "POST", "/e/some-key", None, b"{nope");
    assert_eq!(status, 400);
}

/// An event's `data` must be a JSON object, as Inngest's event API decodes
/// it into a map: a string, number, array or boolean is refused with 400 and
/// a message naming the event (the whole request, as Inngest does). A missing
/// or null `data` is an empty object.
#[test]
fn the_event_api_refuses_data_that_is_not_an_object() {
    let dev = dev();
    for (data, kind) in
        [(r#""text""#, "a string"), ("7", "a number"), ("[1,2]", "an array"), ("true", "a boolean")]
    {
        let body = format!(r#"[{{"name":"a/ok","data":{{}}}},{{"name":"a/bad","data":{data}}}]"#);
        let (status, resp) = http(dev.api_addr(), "POST", "/e/some-key", None, body.as_bytes());
        assert_eq!(status, 400, "data {data}");
        let v: serde_json::Value = serde_json::from_slice(&resp).expect("json");
        assert_eq!(v["status"], 400);
        let message = v["error"].as_str().unwrap_or_default();
        assert_eq!(message, format!(r#"event 1 ("a/bad"): data must be a JSON object, not {kind}"#));
    }
    for body in [r#"{"name":"a/none"}"#, r#"{"name":"a/null","data":null}"#] {
        let (status, resp) = http(dev.api_addr(), "POST", "/e/some-key", None, body.as_bytes());
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&resp));
        let v: serde_json::Value = serde_json::from_slice(&resp).expect("json");
        let id = v["ids"][0].as_str().expect("an id");
        let (status, resp) = http(dev.api_addr(), "GET", &format!("/v1/events/{id}"), None, b"");
        assert_eq!(status, 200);
        let v: serde_json::Value = serde_json::from_slice(&resp).expect("json");
        assert_eq!(v["data"]["event"]["data"], serde_json::json!({}), "{v}");
    }
    dev.shutdown();
}

/// Intervals that make no sense are refused when the server is built, with
/// the field named: a 1 ns heartbeat would make every worker spin.
#[test]
fn intervals_out_of_range_are_refused_at_spawn() {
    let spawn = |c: DevConfig| DevServer::spawn(c).map(drop).map_err(|e| e.to_string());
    let e = spawn(DevConfig { heartbeat_interval: Duration::from_nanos(1), ..DevConfig::ephemeral() })
        .expect_err("1ns");
    assert_eq!(
        e,
        "invalid dev server configuration: heartbeat_interval is 1ns: it must be between 10ms and 5m0s"
    );
    let e = spawn(DevConfig { extend_lease_interval: Duration::from_secs(3600), ..DevConfig::ephemeral() })
        .expect_err("an hour");
    assert!(e.contains("extend_lease_interval is 1h0m0s"), "{e}");
}

/// The binary names the flag: `--heartbeat-interval 1ns` exits with status 2
/// and says why, before binding anything.
#[test]
fn the_binary_refuses_a_heartbeat_interval_of_1ns() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_connect-dev"))
        .args([
            "--api-listen",
            "127.0.0.1:0",
            "--gateway-listen",
            "127.0.0.1:0",
            "--heartbeat-interval",
            "1ns",
        ])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--heartbeat-interval: heartbeat_interval is 1ns: it must be between 10ms and 5m0s"),
        "{stderr}"
    );
}

/// Malformed protobuf, a wrong first message and an oversized frame each
/// close their own socket with Inngest's code; a neighbour keeps working.
#[test]
fn bad_input_closes_only_the_offending_socket() {
    let dev = dev();
    let mut good = connect(&dev, "app", &[function("app-hello", "demo/hello", 0)]);

    let start = start(&dev, None);
    let mut garbage = dial(&start.gateway_endpoint);
    send_raw(&mut garbage, vec![0xff, 0xff, 0xff]);
    assert_eq!(recv_close(&mut garbage), Some((1007, "failed to unmarshal Protobuf".into())));

    let mut early = dial(&start.gateway_endpoint);
    send(&mut early, Message::WorkerHeartbeat);
    assert_eq!(recv_close(&mut early), Some((1008, "connect_worker_hello_invalid_msg".into())));

    let mut huge = dial(&start.gateway_endpoint);
    send(&mut huge, hello(&start, "app", &[function("app-hello", "demo/hello", 0)], false));
    let Message::GatewayConnectionReady(_) = recv(&mut huge) else { panic!("READY") };
    // The gateway stops reading at the limit, so the writer may see a reset before the 1009 frame.
    let sent = huge.send(tokio_tungstenite::tungstenite::Message::Binary(
        vec![0u8; connect_core::wire::GATEWAY_READ_LIMIT + 1].into(),
    ));
    if let (Ok(()), Some((code, _))) = (sent, recv_close(&mut huge)) {
        assert_eq!(code, 1009, "message too big");
    }
    let conns = dev.wait_for_connections_where(|c| c.len() == 2 && c[1].disconnect_reason.is_some(), T);
    assert_eq!(conns.expect("closed")[1].disconnect_reason.as_deref(), Some("MESSAGE_TOO_LARGE"));

    send(&mut good, Message::WorkerHeartbeat);
    assert_eq!(recv(&mut good), Message::GatewayHeartbeat);
    let event_id = dev.send_event("demo/hello", serde_json::json!({})).expect("event");
    serve_one(&mut good, SdkResponseStatus::Done, "1");
    assert_eq!(dev.wait_for_run_end(&event_id, T).expect("run").status, RunStatus::Completed);
}

/// A socket that never sends WORKER_CONNECT is closed after the hello timeout.
#[test]
fn a_silent_socket_is_closed_after_the_hello_timeout() {
    let dev =
        DevServer::spawn(DevConfig { hello_timeout: Duration::from_millis(200), ..DevConfig::ephemeral() })
            .expect("spawn");
    let mut ws = dial(&dev.gateway_url());
    assert_eq!(recv_close(&mut ws), Some((1008, "connect_worker_hello_timeout".into())));
}

/// With `--signing-key`, the start call needs the hashed key; a bad session token fails the handshake.
#[test]
fn a_signing_key_guards_the_start_call() {
    let key = connect_core::auth::SigningKey::new("signkey-test-0123abcd").expect("key");
    let dev = DevServer::spawn(DevConfig { signing_key: Some(key.clone()), ..DevConfig::ephemeral() })
        .expect("spawn");
    let (status, body) = http(dev.api_addr(), "POST", "/v0/connect/start", None, &[]);
    assert_eq!(status, 401, "{}", String::from_utf8_lossy(&body));
    let v: serde_json::Value = serde_json::from_slice(&body).expect("publicerr JSON");
    assert_eq!(v["status"], 401);
    let mut start = start(&dev, Some(&key.hashed().bearer()));
    assert_eq!(start.sync_token, key.hashed().expose());
    start.session_token = "forged".into();
    let mut ws = dial(&start.gateway_endpoint);
    send(&mut ws, hello(&start, "app", &[function("app-hello", "demo/hello", 0)], true));
    assert_eq!(recv_close(&mut ws), Some((1008, "connect_authentication_failed".into())));
}

/// The drain endpoint: GATEWAY_CLOSING now, 1001 after the drain timeout, and
/// a replacement connects to the fresh gateway group.
#[test]
fn the_drain_endpoint_drains_every_connection() {
    let dev =
        DevServer::spawn(DevConfig { drain_timeout: Duration::from_millis(300), ..DevConfig::ephemeral() })
            .expect("spawn");
    let mut old = connect(&dev, "app", &[function("app-hello", "demo/hello", 0)]);
    dev.wait_for_connections(1, T).expect("ready");
    let (status, body) = http(dev.api_addr(), "POST", "/v0/dev/drain", None, &[]);
    assert_eq!((status, String::from_utf8_lossy(&body).into_owned()), (200, r#"{"drained":1}"#.into()));
    assert_eq!(recv(&mut old), Message::GatewayClosing);
    let replacement = start(&dev, None);
    assert_eq!(replacement.gateway_group, "gw-dev-2");
    let mut new = connect(&dev, "app", &[function("app-hello", "demo/hello", 0)]);
    assert_eq!(recv_close(&mut old), Some((1001, "connect_gateway_closing".into())));
    send(&mut new, Message::WorkerHeartbeat);
    assert_eq!(recv(&mut new), Message::GatewayHeartbeat);
    let conns = dev.connections().expect("connections");
    assert_eq!(conns[0].disconnect_reason.as_deref(), Some("GATEWAY_DRAINING"));
    assert_eq!(conns[1].group, "gw-dev-2");
}

/// A reply that missed its ack can be flushed over HTTP.
#[test]
fn a_reply_can_be_flushed_over_http() {
    let dev = dev();
    let mut ws = connect(&dev, "app", &[function("app-hello", "demo/hello", 0)]);
    dev.wait_for_function("app-hello", T).expect("ready");
    let event_id = dev.send_event("demo/hello", serde_json::json!({})).expect("event");
    let req = loop {
        if let Message::GatewayExecutorRequest(r) = recv(&mut ws) {
            break *r;
        }
    };
    let resp = connect_core::wire::SdkResponse {
        request_id: req.request_id.clone(),
        status: SdkResponseStatus::Done as i32,
        body: bytes::Bytes::from_static(b"\"flushed\""),
        system_trace_ctx: req.system_trace_ctx.clone(),
        ..Default::default()
    };
    let (status, body) =
        http(dev.api_addr(), "POST", "/v0/connect/flush", None, &connect_core::wire::encode_body(&resp));
    assert_eq!(status, 200);
    let flushed: connect_core::wire::FlushResponse =
        connect_core::wire::decode_body(bytes::Bytes::from(body), "FlushResponse").expect("FlushResponse");
    assert_eq!(flushed.request_id, req.request_id);
    let run = dev.wait_for_run_end(&event_id, T).expect("run");
    assert_eq!(run.output, Some(serde_json::json!("flushed")));
}

/// Shutting the server down closes every socket with 1001 `connect_gateway_closing`, so workers reconnect.
#[test]
fn shutdown_closes_sockets_with_1001() {
    let dev = dev();
    let mut ws = connect(&dev, "app", &[function("app-hello", "demo/hello", 0)]);
    dev.wait_for_connections(1, T).expect("ready");
    dev.shutdown();
    assert_eq!(recv_close(&mut ws), Some((1001, "connect_gateway_closing".into())));
}

/// `run_ends` reports each run as it ends (with its event), in order, for
/// callers that follow many runs without a waiter each.
#[test]
fn run_ends_reports_every_run_as_it_ends() {
    let dev = dev();
    let mut ws = connect(&dev, "app", &[function("app-hello", "demo/hello", 0)]);
    dev.wait_for_function("app-hello", T).expect("registered");
    let ends = dev.run_ends().expect("watch");
    let before = std::time::Instant::now();
    let ids = dev
        .send_events((0..3).map(|n| ("demo/hello".to_owned(), serde_json::json!({ "n": n }))))
        .expect("events");
    for _ in 0..3 {
        serve_one(&mut ws, SdkResponseStatus::Done, "true");
    }
    let got: Vec<_> = (0..3).map(|_| ends.recv_timeout(T).expect("a run end")).collect();
    assert_eq!(got.iter().map(|e| e.event_id.clone()).collect::<Vec<_>>(), ids);
    assert!(got.iter().all(|e| e.status == RunStatus::Completed && e.at >= before));
    let run = dev.run(&got[0].run_id).expect("query").expect("known run");
    assert_eq!(run.event_id, ids[0]);
    dev.shutdown();
}
