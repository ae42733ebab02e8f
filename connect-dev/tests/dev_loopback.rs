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
