//! Executor requests end to end at the gateway: leases whose ULID timestamp
//! is the expiry, extension acks and nacks, reply acks, retries on error
//! replies and on lease expiry, capacity, and re-routing of unacked work.

mod gateway_sim;

use bytes::Bytes;
use connect_core::gateway::GatewayConfig;
use connect_core::gateway::executor::ExecutorConfig;
use connect_core::gateway::run::RunStatus;
use connect_core::wire::*;
use gateway_sim::*;
use serde_json::json;

/// The happy cycle: request with a lease ending in two minutes, ack, reply
/// (JS style: NOT_COMPLETED with a RunComplete opcode), reply ack, Completed.
#[test]
fn a_request_is_leased_acked_replied_and_completed() {
    let mut sim = Sim::new(origin(), config());
    let conn = sim.connect("host", &[function("app-f", "e", 0)]);
    let event = sim.send_event("e");
    let req = sim.recv_request(conn).expect("request");
    assert_eq!(req.function_slug, "app-f");
    assert_eq!(req.step_id.as_deref(), Some("step"));
    assert_eq!(lease_expiry(&req.lease_id), sim.wall() + secs(120));
    let payload: serde_json::Value = serde_json::from_slice(&req.request_payload).expect("json");
    assert_eq!(payload["ctx"]["run_id"], req.run_id.as_str());
    assert_eq!(payload["ctx"]["max_attempts"], 1);
    assert_eq!(payload["version"], -1);
    serde_json::from_slice::<serde_json::Value>(&req.system_trace_ctx).expect("trace ctx is JSON");

    sim.ack(conn, &req);
    assert!(sim.run_of(&event).attempts[0].acked);
    let body = r#"[{"op":"RunComplete","id":"0737c22d3bfae812339732d14d8c7dbd6dc4e09c","data":{"ok":1}}]"#;
    sim.reply(conn, &req, SdkResponseStatus::NotCompleted, body);
    assert_eq!(
        sim.recv(conn),
        Some(Message::WorkerReplyAck(WorkerReplyAckData { request_id: req.request_id.clone() }))
    );
    let run = sim.run_of(&event);
    assert_eq!(run.status, RunStatus::Completed);
    assert_eq!(run.output, Some(json!({"ok": 1})));
    assert_eq!(sim.server.gateway().lease_of(&req.request_id), None, "the reply ends the lease");
}

/// Extensions name the current lease and get a fresh one (timestamp = now +
/// 2 min); re-sending the previous id gets the current one back; anything
/// else is a NACK (no new id); a non-ULID lease id closes the socket.
#[test]
fn lease_extensions_ack_replay_and_nack() {
    let mut sim = Sim::new(origin(), config());
    let conn = sim.connect("host", &[function("app-f", "e", 0)]);
    sim.send_event("e");
    let req = sim.recv_request(conn).expect("request");
    sim.ack(conn, &req);
    sim.advance(secs(30));
    sim.extend(conn, &req, &req.lease_id);
    let Some(Message::WorkerRequestExtendLeaseAck(ack)) = sim.recv(conn) else { panic!("extend ack") };
    let second = ack.new_lease_id.clone().expect("extended");
    assert_eq!(ack.request_id, req.request_id);
    assert_eq!(lease_expiry(&second), sim.wall() + secs(120));

    sim.extend(conn, &req, &req.lease_id); // our ack was lost: the previous id again
    let Some(Message::WorkerRequestExtendLeaseAck(ack)) = sim.recv(conn) else { panic!("extend ack") };
    assert_eq!(ack.new_lease_id.as_deref(), Some(second.as_str()));

    let stranger = ulid::Ulid::from_parts(1, 1).to_string();
    sim.extend(conn, &req, &stranger);
    let Some(Message::WorkerRequestExtendLeaseAck(ack)) = sim.recv(conn) else { panic!("extend ack") };
    assert_eq!(ack.new_lease_id, None, "NACK");

    sim.extend(conn, &req, "not-a-ulid");
    assert_eq!(
        sim.closed_with(conn),
        Some(Some((1008, "connect_worker_request_extend_lease_invalid_payload".into())))
    );
}

/// An undecodable ack payload closes the socket with its own reason.
#[test]
fn a_malformed_ack_closes_1008() {
    let mut sim = Sim::new(origin(), config());
    let conn = sim.connect("host", &[function("app-f", "e", 0)]);
    let bad = ConnectMessage {
        kind: GatewayMessageType::WorkerRequestAck as i32,
        payload: Bytes::from_static(b"\x0a\x09x"),
    };
    sim.send_raw(conn, encode_body(&bad));
    assert_eq!(
        sim.closed_with(conn),
        Some(Some((1008, "connect_worker_request_ack_invalid_payload".into())))
    );
}

/// A worker that acks and then stops extending: after the lease (plus grace)
/// the attempt fails with `connect_worker_stopped_responding` and is retried;
/// when the retries are used up the run fails.
#[test]
fn lease_expiry_retries_the_attempt_then_fails_the_run() {
    let mut sim = Sim::new(origin(), config());
    let conn = sim.connect("host", &[function("app-f", "e", 1)]);
    let event = sim.send_event("e");
    let first = sim.recv_request(conn).expect("request");
    sim.ack(conn, &first);
    for _ in 0..12 {
        sim.advance(secs(10));
        sim.heartbeat(conn); // alive, but not extending
    }
    sim.advance(secs(5)); // 2 min lease + 5 s grace
    let second = sim.recv_request(conn).expect("retried");
    assert_ne!(second.request_id, first.request_id);
    let payload: serde_json::Value = serde_json::from_slice(&second.request_payload).expect("json");
    assert_eq!(payload["ctx"]["attempt"], 1);
    let run = sim.run_of(&event);
    assert_eq!(run.attempts[0].outcome.as_deref(), Some("LeaseExpired"));
    assert_eq!(
        run.attempts[0].error.as_ref().map(|e| e["name"].clone()),
        Some(json!("connect_worker_stopped_responding"))
    );

    sim.ack(conn, &second);
    sim.extend(conn, &first, &first.lease_id);
    let Some(Message::WorkerRequestExtendLeaseAck(ack)) = sim.recv_all(conn).pop() else { panic!("ack") };
    assert_eq!(ack.new_lease_id, None, "the expired lease cannot be extended");
    for _ in 0..12 {
        sim.advance(secs(10));
        sim.heartbeat(conn);
    }
    sim.advance(secs(5));
    assert_eq!(sim.status_of(&event), RunStatus::Failed);
    // A late reply for a finished attempt is acked and ignored.
    sim.reply(conn, &first, SdkResponseStatus::Done, "1");
    assert!(matches!(sim.recv_all(conn).pop(), Some(Message::WorkerReplyAck(_))));
    assert_eq!(sim.status_of(&event), RunStatus::Failed);
}

/// Extending keeps a long run alive past the first lease.
#[test]
fn extending_keeps_a_long_request_alive() {
    let mut sim = Sim::new(origin(), config());
    let conn = sim.connect("host", &[function("app-f", "e", 0)]);
    let event = sim.send_event("e");
    let req = sim.recv_request(conn).expect("request");
    sim.ack(conn, &req);
    let mut lease = req.lease_id.clone();
    for _ in 0..10 {
        sim.advance(secs(30));
        sim.heartbeat(conn);
        sim.extend(conn, &req, &lease);
        let acks: Vec<_> = sim.recv_all(conn);
        let Some(Message::WorkerRequestExtendLeaseAck(ack)) = acks.last() else { panic!("ack") };
        lease = ack.new_lease_id.clone().expect("extended");
    }
    sim.reply(conn, &req, SdkResponseStatus::Done, "\"done\"");
    let run = sim.run_of(&event);
    assert_eq!((run.status, run.attempts.len()), (RunStatus::Completed, 1));
    assert_eq!(run.output, Some(json!("done")));
}

/// ERROR replies are retried (attempt counter in ctx), `no_retry` fails at once.
#[test]
fn error_replies_retry_and_no_retry_fails() {
    let mut sim = Sim::new(origin(), config());
    let conn = sim.connect("host", &[function("app-f", "e", 2), function("app-g", "g", 5)]);
    let event = sim.send_event("e");
    for attempt in 0..3 {
        let req = sim.recv_request(conn).expect("request");
        let payload: serde_json::Value = serde_json::from_slice(&req.request_payload).expect("json");
        assert_eq!(payload["ctx"]["attempt"], attempt);
        assert_eq!(payload["ctx"]["max_attempts"], 3);
        sim.ack(conn, &req);
        sim.reply(conn, &req, SdkResponseStatus::Error, r#"{"name":"Error","message":"no"}"#);
    }
    let run = sim.run_of(&event);
    assert_eq!((run.status, run.attempts.len()), (RunStatus::Failed, 3));
    assert_eq!(run.output, Some(json!({"name": "Error", "message": "no"})));

    let event = sim.send_event("g");
    let req = sim.recv_request(conn).expect("request");
    sim.ack(conn, &req);
    let mut resp = response(&req, SdkResponseStatus::Done, r#"{"name":"NonRetriableError"}"#);
    resp.no_retry = true;
    sim.reply_with(conn, resp);
    let run = sim.run_of(&event);
    assert_eq!((run.status, run.attempts.len()), (RunStatus::Failed, 1));
}

/// A retry waits for the configured delay, or the reply's `retry_after` seconds.
#[test]
fn retries_wait_for_their_delay() {
    let exec = ExecutorConfig { retry_delay: secs(2), seed: 7, ..ExecutorConfig::default() };
    let mut sim = Sim::with(origin(), config(), exec);
    let conn = sim.connect("host", &[function("app-f", "e", 3)]);
    sim.send_event("e");
    let req = sim.recv_request(conn).expect("request");
    sim.reply(conn, &req, SdkResponseStatus::Error, "x");
    sim.advance(ms(1999));
    assert!(sim.recv_request(conn).is_none());
    sim.advance(ms(1));
    let req = sim.recv_request(conn).expect("retry after 2 s");
    let mut resp = response(&req, SdkResponseStatus::Error, "x");
    resp.retry_after = Some("7".into());
    sim.reply_with(conn, resp);
    sim.advance(ms(6999));
    assert!(sim.recv_request(conn).is_none());
    sim.advance(ms(1));
    assert!(sim.recv_request(conn).is_some(), "retry after retry_after");
}

/// An ack on another socket than the one that delivered the request does not count.
#[test]
fn an_ack_on_the_wrong_socket_is_ignored() {
    let mut sim = Sim::new(origin(), config());
    let a = sim.connect("host", &[function("app-f", "e", 0)]);
    let b = sim.connect("host", &[function("app-f", "e", 0)]);
    let event = sim.send_event("e");
    let (conn, other) = match sim.recv_request(b) {
        Some(req) => (req, a),
        None => (sim.recv_request(a).expect("routed somewhere"), b),
    };
    sim.ack(other, &conn);
    assert!(!sim.run_of(&event).attempts[0].acked);
}

/// `max_worker_concurrency` caps the requests leased to one instance at once.
#[test]
fn max_worker_concurrency_limits_leased_requests_per_instance() {
    let mut sim = Sim::new(origin(), config());
    let start = sim.start();
    let conn = sim.accept();
    let mut data = hello_data(&start, "host", &[function("app-f", "e", 0)]);
    data.max_worker_concurrency = Some(1);
    sim.send(conn, Message::WorkerConnect(Box::new(data)));
    sim.send(conn, Message::WorkerReady);
    let first = sim.send_event("e");
    let second = sim.send_event("e");
    let req = sim.recv_request(conn).expect("first request");
    assert!(sim.recv_request(conn).is_none(), "the instance is at capacity");
    sim.ack(conn, &req);
    sim.reply(conn, &req, SdkResponseStatus::Done, "1");
    assert_eq!(sim.status_of(&first), RunStatus::Completed);
    let req = sim.recv_request(conn).expect("second request once capacity frees");
    sim.ack(conn, &req);
    sim.reply(conn, &req, SdkResponseStatus::Done, "2");
    assert_eq!(sim.status_of(&second), RunStatus::Completed);
}

/// A socket that closes (or pauses) before acking gives its request back: the
/// same attempt goes to another connection, and both connections are on record.
#[test]
fn unacked_requests_are_rerouted_when_their_socket_closes_or_pauses() {
    let mut sim = Sim::new(origin(), config());
    let a = sim.connect("a", &[function("app-f", "e", 0)]);
    let event = sim.send_event("e");
    let req = sim.recv_request(a).expect("request on a");
    let b = sim.connect("b", &[function("app-f", "e", 0)]);
    sim.close(a, None);
    let again = sim.recv_request(b).expect("re-routed to b");
    assert_eq!(again.request_id, req.request_id, "same attempt, same request id");
    sim.send(b, Message::WorkerPause);
    let c = sim.connect("c", &[function("app-f", "e", 0)]);
    let third = sim.recv_request(c).expect("re-routed to c after the pause");
    sim.ack(c, &third);
    sim.reply(c, &third, SdkResponseStatus::Done, "1");
    let run = sim.run_of(&event);
    assert_eq!(run.status, RunStatus::Completed);
    let hosts: Vec<_> = run.attempts[0].connections.iter().map(|c| c.instance_id.as_str()).collect();
    assert_eq!(hosts, ["a", "b", "c"]);
    assert_eq!(sim.disconnect_of(a).as_deref(), Some("UNEXPECTED"));
}

/// A paused connection gets no new requests.
#[test]
fn a_paused_connection_gets_no_new_requests() {
    let mut sim = Sim::new(origin(), config());
    let conn = sim.connect("host", &[function("app-f", "e", 0)]);
    sim.send(conn, Message::WorkerPause);
    sim.send_event("e");
    assert!(sim.recv_request(conn).is_none());
    assert_eq!(sim.server.executor().queued(), 1);
}

/// A reply flushed over HTTP ends the run like one sent on the socket; the
/// flush refuses a reply whose system trace context is not JSON.
#[test]
fn a_flushed_reply_completes_the_run() {
    let mut sim = Sim::new(origin(), config());
    let conn = sim.connect("host", &[function("app-f", "e", 0)]);
    let event = sim.send_event("e");
    let req = sim.recv_request(conn).expect("request");
    sim.ack(conn, &req);
    let mut resp = response(&req, SdkResponseStatus::Done, "42");
    resp.system_trace_ctx = Bytes::new();
    let now = sim.now;
    let err = sim.server.handle_flush(now, None, encode_body(&resp)).expect_err("no trace ctx");
    assert_eq!(err.status, 400);
    let resp = response(&req, SdkResponseStatus::Done, "42");
    let ok = sim.server.handle_flush(now, None, encode_body(&resp)).expect("flushed");
    sim.drain();
    assert_eq!(ok.request_id, req.request_id);
    assert_eq!(sim.run_of(&event).output, Some(json!(42)));
}

/// The worker read a request but its connection was dropped before the ack
/// got through, so the attempt waits to be re-routed; then the worker's reply
/// arrives (here by flush). The reply ends the run, and the request is not
/// forwarded again to the worker's next connection (which would ack a request
/// it already finished and never answer it: a run stuck until its lease ran out).
#[test]
fn a_reply_for_an_attempt_waiting_to_be_rerouted_ends_it() {
    let mut sim = Sim::new(origin(), config());
    let conn = sim.connect("host", &[function("app-f", "e", 0)]);
    let event = sim.send_event("e");
    let req = sim.recv_request(conn).expect("request");
    sim.close(conn, None);
    assert_eq!(sim.server.executor().queued(), 1, "waiting for another connection");
    let now = sim.now;
    sim.server
        .handle_flush(now, None, encode_body(&response(&req, SdkResponseStatus::Done, "7")))
        .expect("flushed");
    sim.drain();
    assert_eq!(sim.status_of(&event), RunStatus::Completed);
    assert_eq!(sim.run_of(&event).output, Some(json!(7)));
    assert_eq!(sim.server.executor().queued(), 0);
    let next = sim.connect("host", &[function("app-f", "e", 0)]);
    assert!(sim.recv_request(next).is_none(), "not forwarded again");
}

/// Leases and lease grace scale with the configured extend interval.
#[test]
fn short_intervals_give_short_leases() {
    let mut sim = Sim::new(origin(), GatewayConfig { extend_lease_interval: ms(600), ..config() });
    let conn = sim.connect("host", &[function("app-f", "e", 0)]);
    let event = sim.send_event("e");
    let req = sim.recv_request(conn).expect("request");
    assert_eq!(lease_expiry(&req.lease_id), sim.wall() + ms(2400));
    sim.ack(conn, &req);
    sim.advance(ms(2400 + 100));
    assert_eq!(sim.status_of(&event), RunStatus::Failed, "lease 2.4 s + grace 0.1 s, no retries");
}

/// An event id given by the sender is an idempotency key: the repeat is stored but starts no run.
#[test]
fn a_repeated_event_id_starts_no_second_run() {
    let mut sim = Sim::new(origin(), config());
    sim.connect("host", &[function("app-f", "e", 0)]);
    let now = sim.now;
    let first = sim.server.send_event(now, "e", json!({}), Some("order-1".into()), None);
    let again = sim.server.send_event(now, "e", json!({}), Some("order-1".into()), None);
    sim.drain();
    assert_ne!(first, again, "each event gets its own internal id");
    assert_eq!(sim.server.runs_for_event(&first).len(), 1);
    assert_eq!(sim.server.runs_for_event(&again).len(), 0);
    assert_eq!(sim.server.executor().event(&again).map(|e| e["id"].clone()), Some(json!("order-1")));
}
