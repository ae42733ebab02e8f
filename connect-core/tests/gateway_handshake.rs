//! The gateway's side of start, HELLO, WORKER_CONNECT and READY, and every
//! way a worker can get them wrong (PROTOCOL.md 2.1-2.3, 2.11).

mod gateway_sim;

use bytes::Bytes;
use connect_core::auth::SigningKey;
use connect_core::duration::parse_go_duration;
use connect_core::gateway::{Event, GatewayConfig, Phase};
use connect_core::wire::*;
use gateway_sim::*;

fn handshake_close(sim: &mut Sim, msg: Message) -> Option<(u16, String)> {
    let conn = sim.accept();
    sim.send(conn, msg);
    sim.closed_with(conn).expect("the gateway closed the socket")
}

fn bad_hello(edit: impl FnOnce(&mut WorkerConnectRequestData)) -> (Sim, Message) {
    let mut sim = Sim::new(origin(), config());
    let start = sim.start();
    let mut data = hello_data(&start, "host", &[function("app-f", "e", 0)]);
    edit(&mut data);
    (sim, Message::WorkerConnect(Box::new(data)))
}

fn reason(code: u16, reason: &str) -> Option<(u16, String)> {
    Some((code, reason.to_owned()))
}

/// A JS-like worker: empty HELLO first, READY with Inngest's Go durations,
/// not routable (heartbeats unanswered) until WORKER_READY.
#[test]
fn ready_carries_the_intervals_and_manual_ack_waits_for_worker_ready() {
    let mut sim = Sim::new(origin(), GatewayConfig { heartbeat_interval: ms(1500), ..config() });
    let start = sim.start();
    assert_eq!(start.gateway_group, "gw-dev");
    assert_eq!(start.gateway_endpoint, "ws://gw/v0/connect");
    assert!(ulid::Ulid::from_string(&start.connection_id).is_ok());
    let conn = sim.accept();
    sim.send(conn, hello(&start, "host", &[function("app-f", "e", 0)]));
    let Some(Message::GatewayConnectionReady(ready)) = sim.recv(conn) else { panic!("READY expected") };
    assert_eq!(ready.heartbeat_interval, "1.5s");
    assert_eq!(parse_go_duration(&ready.extend_lease_interval), Ok(secs(30)));
    assert_eq!(ready.status_interval, "0s");
    assert_eq!(sim.server.gateway().phase(conn), Some(Phase::AwaitingReady));

    sim.heartbeat(conn);
    assert_eq!(sim.recv(conn), None, "no heartbeat answer before WORKER_READY");
    sim.send(conn, Message::WorkerReady);
    assert_eq!(sim.server.gateway().phase(conn), Some(Phase::Ready));
    sim.heartbeat(conn);
    assert_eq!(sim.recv(conn), Some(Message::GatewayHeartbeat));
    assert!(sim.events.iter().any(|e| matches!(e, Event::Ready { conn: c } if *c == conn)));
}

/// Go and Python SDKs ask for no readiness ack: routable as soon as READY is sent.
#[test]
fn without_manual_ack_the_connection_is_ready_at_once() {
    let (mut sim, _) = bad_hello(|_| {});
    let start = sim.start();
    let mut data = hello_data(&start, "host", &[function("app-f", "e", 0)]);
    data.worker_manual_readiness_ack = false;
    let conn = sim.accept();
    sim.send(conn, Message::WorkerConnect(Box::new(data)));
    assert!(matches!(sim.recv(conn), Some(Message::GatewayConnectionReady(_))));
    assert_eq!(sim.server.gateway().phase(conn), Some(Phase::Ready));
}

/// Python's early heartbeat: anything but WORKER_CONNECT first is a policy violation.
#[test]
fn a_first_message_other_than_connect_closes_1008_invalid_msg() {
    let mut sim = Sim::new(origin(), config());
    assert_eq!(
        handshake_close(&mut sim, Message::WorkerHeartbeat),
        reason(1008, "connect_worker_hello_invalid_msg")
    );
}

/// Bytes that are not a ConnectMessage close 1007, in the handshake or later.
#[test]
fn an_undecodable_frame_closes_1007() {
    let mut sim = Sim::new(origin(), config());
    let conn = sim.accept();
    sim.send_raw(conn, Bytes::from_static(&[0xff, 0xff, 0xff]));
    assert_eq!(sim.closed_with(conn), Some(reason(1007, "failed to unmarshal Protobuf")));
    let conn = sim.connect("host", &[function("app-f", "e", 0)]);
    sim.send_raw(conn, Bytes::from_static(&[0x12, 0x05, 0x01]));
    assert_eq!(sim.closed_with(conn), Some(reason(1007, "failed to unmarshal Protobuf")));
}

/// A WORKER_CONNECT payload that is not protobuf is an invalid payload.
#[test]
fn a_malformed_connect_payload_closes_invalid_payload() {
    let mut sim = Sim::new(origin(), config());
    let conn = sim.accept();
    let envelope = ConnectMessage {
        kind: GatewayMessageType::WorkerConnect as i32,
        payload: Bytes::from_static(b"\xff"),
    };
    sim.send_raw(conn, encode_body(&envelope));
    assert_eq!(sim.closed_with(conn), Some(reason(1008, "connect_worker_hello_invalid_payload")));
}

/// The connection id must be a ULID, the instance id non-empty, the app list non-empty.
#[test]
fn connect_fields_are_validated_like_inngest() {
    let cases: [fn(&mut WorkerConnectRequestData); 3] =
        [|d| d.connection_id = "not-a-ulid".into(), |d| d.instance_id.clear(), |d| d.apps.clear()];
    for edit in cases {
        let (mut sim, msg) = bad_hello(edit);
        assert_eq!(handshake_close(&mut sim, msg), reason(1008, "connect_worker_hello_invalid_payload"));
    }
}

/// Session tokens are checked: missing, forged or expired ones fail authentication.
#[test]
fn a_bad_or_expired_session_token_closes_auth_failed() {
    let (mut sim, msg) = bad_hello(|d| d.auth_data = None);
    assert_eq!(handshake_close(&mut sim, msg), reason(1008, "connect_authentication_failed"));
    let (mut sim, msg) = bad_hello(|d| {
        if let Some(a) = d.auth_data.as_mut() {
            a.session_token.push('x');
        }
    });
    assert_eq!(handshake_close(&mut sim, msg), reason(1008, "connect_authentication_failed"));

    let (mut sim, msg) = bad_hello(|_| {});
    sim.advance(secs(301)); // tokens live 5 minutes
    assert_eq!(handshake_close(&mut sim, msg), reason(1008, "connect_authentication_failed"));
}

/// More apps than the entitlement (10 by default) on one connection.
#[test]
fn too_many_apps_close_1008() {
    let (mut sim, msg) = bad_hello(|d| {
        let app = d.apps[0].clone();
        d.apps = (0..11).map(|i| AppConfiguration { app_name: format!("app{i}"), ..app.clone() }).collect();
    });
    assert_eq!(handshake_close(&mut sim, msg), reason(1008, "connect_too_many_apps_per_connection"));
}

/// Functions or capabilities that are not JSON fail where Inngest builds worker groups: 1011.
#[test]
fn invalid_functions_or_capabilities_json_close_1011() {
    let (mut sim, msg) = bad_hello(|d| d.apps[0].functions = Bytes::from_static(b"{not json"));
    assert_eq!(handshake_close(&mut sim, msg), reason(1011, "connect_internal_error"));
    let (mut sim, msg) = bad_hello(|d| d.capabilities = Bytes::new());
    assert_eq!(handshake_close(&mut sim, msg), reason(1011, "connect_internal_error"));
}

/// A socket that says nothing for 5 s after HELLO is closed.
#[test]
fn no_connect_within_five_seconds_closes_hello_timeout() {
    let mut sim = Sim::new(origin(), config());
    let conn = sim.accept();
    sim.advance(ms(4999));
    assert_eq!(sim.closed_with(conn), None);
    sim.advance(ms(1));
    assert_eq!(sim.closed_with(conn), Some(reason(1008, "connect_worker_hello_timeout")));
}

/// A message over the 8 MiB read limit closes 1009 and is recorded as MESSAGE_TOO_LARGE.
#[test]
fn an_oversized_frame_closes_1009() {
    let mut sim = Sim::new(origin(), GatewayConfig { max_frame: 1024, ..config() });
    let conn = sim.connect("host", &[function("app-f", "e", 0)]);
    sim.send_raw(conn, vec![0u8; 1025]);
    assert_eq!(sim.closed_with(conn), Some(reason(1009, "read limited at 1025 bytes")));
    assert_eq!(sim.disconnect_of(conn).as_deref(), Some("MESSAGE_TOO_LARGE"));
}

/// One misbehaving socket is closed; its neighbour keeps its heartbeats and its work.
#[test]
fn a_bad_connection_does_not_disturb_the_others() {
    let mut sim = Sim::new(origin(), config());
    let good = sim.connect("good", &[function("app-f", "e", 0)]);
    let bad = sim.accept();
    sim.send(bad, Message::WorkerPause);
    assert!(sim.closed_with(bad).is_some());
    sim.heartbeat(good);
    assert_eq!(sim.recv(good), Some(Message::GatewayHeartbeat));
    let event = sim.send_event("e");
    let req = sim.recv_request(good).expect("request routed to the good connection");
    sim.ack(good, &req);
    sim.reply(good, &req, SdkResponseStatus::Done, "1");
    assert_eq!(sim.status_of(&event), connect_core::gateway::run::RunStatus::Completed);
}

/// Unknown kinds, WORKER_STATUS and gateway-only kinds from a worker are ignored.
#[test]
fn unknown_and_misdirected_kinds_are_ignored() {
    let mut sim = Sim::new(origin(), config());
    let conn = sim.connect("host", &[function("app-f", "e", 0)]);
    sim.send(conn, Message::Unknown { kind: 99, payload: Bytes::from_static(b"x") });
    sim.send(conn, Message::GatewayHeartbeat);
    sim.send(conn, Message::WorkerStatus(WorkerStatusData::default()));
    assert_eq!(sim.closed_with(conn), None);
    assert_eq!(sim.recv_all(conn), vec![]);
}

/// Dev mode takes any key or none; with a signing key the start call wants its hashed form.
#[test]
fn start_checks_the_hashed_signing_key_when_one_is_configured() {
    let key = SigningKey::new("signkey-test-00ff").expect("key");
    let mut sim = Sim::new(origin(), GatewayConfig { signing_key: Some(key.hashed().clone()), ..config() });
    let now = sim.now;
    let err = sim.server.handle_start(now, None, Bytes::new(), "ws://x".into()).expect_err("no key");
    assert_eq!(err.status, 401);
    let err = sim.server.handle_start(now, Some("Bearer signkey-test-bad"), Bytes::new(), "ws://x".into());
    assert_eq!(err.map_err(|e| e.status), Err(401));
    let ok = sim.server.handle_start(now, Some(&key.hashed().bearer()), Bytes::new(), "ws://x".into());
    assert_eq!(ok.map(|s| s.sync_token), Ok(key.hashed().expose().to_owned()));

    let mut dev = Sim::new(origin(), config());
    let now = dev.now;
    assert!(dev.server.handle_start(now, Some("Bearer whatever"), Bytes::new(), "ws://x".into()).is_ok());
    let bad_body = dev.server.handle_start(now, None, Bytes::from_static(b"\xff"), "ws://x".into());
    assert_eq!(bad_body.map_err(|e| e.status), Err(400));
}
