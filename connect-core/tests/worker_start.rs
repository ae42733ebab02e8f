//! Start call and handshake (issue 3, item 1): what goes out, and how each
//! answer of the start endpoint and each handshake step is handled.

mod sim;

use bytes::Bytes;
use connect_core::auth::SigningKey;
use connect_core::wire::{GatewayConnectionReadyData, Message, StartRequest};
use connect_core::worker::{ConnectionState, Event, FatalError, HttpResponse, Timer, Worker, WorkerConfig};
use sim::*;

fn key(hex: &str) -> SigningKey {
    SigningKey::new(format!("signkey-prod-{hex}")).expect("key")
}

fn header<'a>(h: &'a [(String, String)], name: &str) -> Option<&'a str> {
    h.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

/// The very first output is the start call, with the hashed key, the env
/// header and the protobuf content type; an empty exclusion list is an
/// empty body.
#[test]
fn first_output_is_the_start_call_with_hashed_key_and_env() {
    let mut c = config();
    c.signing_key = Some(key("aa"));
    c.env = Some("branch-1".into());
    c.api_base_url = "http://api.test/".into();
    let sim = Sim::scripted(origin(), c, Script { start_status: None, ..Script::default() });
    let calls = sim.start_calls();
    assert_eq!(calls.len(), 1);
    let req = &calls[0].1;
    assert_eq!(req.url, "http://api.test/v0/connect/start");
    assert_eq!(header(&req.headers, "authorization"), Some(key("aa").hashed().bearer().as_str()));
    assert_eq!(header(&req.headers, "x-inngest-env"), Some("branch-1"));
    assert_eq!(header(&req.headers, "content-type"), Some("application/protobuf"));
    assert!(req.body.is_empty());
    assert_eq!(sim.w.poll_timeout().map(|(_, t)| t), Some(Timer::StartCall));
}

/// Dev mode: no key means no Authorization header at all.
#[test]
fn dev_mode_start_call_has_no_authorization_header() {
    let sim = Sim::scripted(origin(), config(), Script { start_status: None, ..Script::default() });
    assert_eq!(header(&sim.start_calls()[0].1.headers, "authorization"), None);
}

/// A full handshake: start, dial with the subprotocol, HELLO, WORKER_CONNECT
/// with every field, READY, WORKER_READY; the state goes CONNECTING, ACTIVE.
#[test]
fn handshake_sends_worker_connect_with_every_field_then_worker_ready() {
    let mut c = config();
    c.env = Some("prod".into());
    c.platform = Some("linux".into());
    c.max_worker_concurrency = Some(7);
    c.system_attributes.cpu_cores = 4;
    c.system_attributes.mem_bytes = 1 << 30;
    c.system_attributes.os = "linux".into();
    c.apps[0].app_version = Some("v9".into());
    let sim = Sim::new(origin(), c);
    let conn = sim.active_conn();
    assert_eq!(sim.dials()[0].2, "ws://gw-1/v0/connect");
    let sent = sim.sent_on(conn);
    let Message::WorkerConnect(wc) = &sent[0] else { panic!("first frame {:?}", sent[0]) };
    assert!(ulid::Ulid::from_string(&wc.connection_id).is_ok());
    assert_eq!(wc.instance_id, "instance-1");
    let auth = wc.auth_data.as_ref().expect("auth");
    assert_eq!((auth.session_token.as_str(), auth.sync_token.as_str()), ("jwt", "sync"));
    assert_eq!(&wc.capabilities[..], br#"{"connect":"v1","trust_probe":"v1"}"#);
    assert_eq!(wc.apps.len(), 1);
    assert_eq!(wc.apps[0].app_name, "app");
    assert_eq!(wc.apps[0].app_version.as_deref(), Some("v9"));
    let fns: serde_json::Value = serde_json::from_slice(&wc.apps[0].functions).expect("json");
    assert_eq!(fns[0]["id"], "app-hello");
    assert_eq!(fns[0]["steps"]["step"]["runtime"]["url"], "wss://connect?fnId=app-hello&stepId=step");
    assert!(wc.worker_manual_readiness_ack);
    assert_eq!(wc.environment.as_deref(), Some("prod"));
    assert_eq!(wc.framework, "connect");
    assert_eq!(wc.platform.as_deref(), Some("linux"));
    assert_eq!(wc.sdk_language, "rust");
    assert!(!wc.sdk_version.is_empty());
    assert_eq!(wc.started_at.map(|t| t.seconds), Some(1_750_000_000));
    assert_eq!(wc.max_worker_concurrency, Some(7));
    let attrs = wc.system_attributes.as_ref().expect("attrs");
    assert_eq!((attrs.cpu_cores, attrs.mem_bytes, attrs.os.as_str()), (4, 1 << 30, "linux"));
    assert_eq!(sent[1], Message::WorkerReady);
    assert_eq!(sim.states(), [ConnectionState::Connecting, ConnectionState::Active]);
    assert!(sim.has_event(&Event::Ready { conn, connection_id: wc.connection_id.clone() }));
}

/// Without manual readiness no WORKER_READY is sent.
#[test]
fn automatic_readiness_sends_no_worker_ready() {
    let mut c = config();
    c.manual_readiness_ack = false;
    let sim = Sim::new(origin(), c);
    assert_eq!(sim.count_sent(|m| *m == Message::WorkerReady), 0);
    assert_eq!(sim.state(), ConnectionState::Active);
}

/// The gateway URL override replaces the start response's endpoint.
#[test]
fn gateway_url_override_is_dialed_instead_of_the_endpoint() {
    let mut c = config();
    c.gateway_url_override = Some("ws://127.0.0.1:9999/v0/connect".into());
    let sim = Sim::new(origin(), c);
    assert_eq!(sim.dials()[0].2, "ws://127.0.0.1:9999/v0/connect");
}

/// 401 with no key configured is fatal at once, and says that a key is
/// missing (not that one was rejected).
#[test]
fn unauthorized_without_a_key_is_fatal_and_names_the_missing_key() {
    let mut c = config();
    c.signing_key = None;
    c.signing_key_fallback = None;
    let sim = Sim::scripted(origin(), c, Script { start_status: Some(401), ..Script::default() });
    assert_eq!(sim.start_calls().len(), 1);
    let fatal = FatalError::KeyRequired { status: 401 };
    assert!(fatal.to_string().contains("none is set: set INNGEST_SIGNING_KEY"), "{fatal}");
    assert!(sim.has_event(&Event::Fatal(fatal)));
    assert_eq!(sim.state(), ConnectionState::Closed);
}

/// 401 with the primary key switches to the fallback key at once; a 401
/// with the fallback too is fatal and closes the machine.
#[test]
fn unauthorized_switches_to_the_fallback_key_then_is_fatal() {
    let mut c = config();
    c.signing_key = Some(key("aa"));
    c.signing_key_fallback = Some(key("bb"));
    let mut sim = Sim::scripted(origin(), c, Script { start_status: Some(401), ..Script::default() });
    let calls = sim.start_calls();
    assert_eq!(calls.len(), 2);
    assert_eq!(header(&calls[0].1.headers, "authorization"), Some(key("aa").hashed().bearer().as_str()));
    assert_eq!(header(&calls[1].1.headers, "authorization"), Some(key("bb").hashed().bearer().as_str()));
    assert!(sim.has_event(&Event::Fatal(FatalError::Unauthorized { status: 401, tried_fallback: true })));
    assert_eq!(sim.events().last(), Some(&Event::Closed));
    assert_eq!(sim.state(), ConnectionState::Closed);
    sim.advance(secs(600));
    assert_eq!(sim.start_calls().len(), 2, "nothing after a fatal error");
}

/// A 401 on the primary key followed by success on the fallback connects,
/// and later start calls keep using the fallback key.
#[test]
fn fallback_key_that_works_is_kept_for_later_start_calls() {
    let mut c = config();
    c.signing_key = Some(key("aa"));
    c.signing_key_fallback = Some(key("bb"));
    let mut sim = Sim::scripted(origin(), c, Script { start_status: None, ..Script::default() });
    assert!(!sim.w.using_fallback_key());
    let (id, req) = sim.pending_http.pop_front().expect("start");
    sim.answer_http(id, &req, 401);
    sim.pump();
    assert!(sim.w.using_fallback_key(), "the rotation is visible, for the adapter's log");
    sim.script.start_status = Some(200);
    let (id, req) = sim.pending_http.pop_front().expect("second start");
    sim.answer_http(id, &req, 200);
    sim.pump();
    assert_eq!(sim.state(), ConnectionState::Active);
    let conn = sim.active_conn();
    sim.close(conn, None);
    sim.run_until(secs(10), |s| s.start_calls().len() == 3);
    let third = &sim.start_calls()[2].1;
    assert_eq!(header(&third.headers, "authorization"), Some(key("bb").hashed().bearer().as_str()));
}

/// 429 (connection limit) is retried with backoff, not fatal.
#[test]
fn too_many_connections_429_is_retried_with_backoff() {
    let mut sim = Sim::scripted(origin(), config(), Script { start_status: Some(429), ..Script::default() });
    sim.advance(secs(30));
    let calls = sim.start_calls();
    assert!(calls.len() >= 3, "{} calls", calls.len());
    assert!(calls.windows(2).all(|w| w[1].0 >= w[0].0));
    assert_eq!(sim.state(), ConnectionState::Connecting);
    assert!(!sim.events().iter().any(|e| matches!(e, Event::Fatal(_))));
    sim.script.start_status = Some(200);
    sim.run_until(secs(300), |s| s.state() == ConnectionState::Active);
}

/// A 500 is retried; so is a transport error.
#[test]
fn server_error_and_transport_failure_are_retried() {
    let mut sim = Sim::scripted(origin(), config(), Script { start_status: None, ..Script::default() });
    sim.answer_pending_http(Ok(HttpResponse { status: 503, body: Bytes::new() }));
    assert_eq!(sim.w.poll_timeout().map(|(_, t)| t), Some(Timer::Backoff));
    sim.run_until(secs(10), |s| !s.pending_http.is_empty());
    sim.answer_pending_http(Err("connection refused".into()));
    assert_eq!(sim.w.last_error(), Some("start call failed: connection refused"));
    sim.script.start_status = Some(200);
    sim.run_until(secs(10), |s| s.state() == ConnectionState::Active);
}

/// A 200 whose body is not a StartResponse is a failed attempt, retried.
#[test]
fn garbage_start_body_is_retried() {
    let mut sim = Sim::scripted(origin(), config(), Script { start_status: None, ..Script::default() });
    sim.answer_pending_http(Ok(HttpResponse { status: 200, body: Bytes::from_static(&[0xff, 0xff, 0xff]) }));
    assert!(sim.w.last_error().is_some_and(|e| e.contains("unreadable")));
    sim.script.start_status = Some(200);
    sim.run_until(secs(10), |s| s.state() == ConnectionState::Active);
}

/// A start call that never answers times out at its deadline and is retried;
/// the late answer is ignored.
#[test]
fn start_call_timeout_retries_and_ignores_the_late_answer() {
    let mut sim = Sim::scripted(origin(), config(), Script { start_status: None, ..Script::default() });
    sim.advance(secs(10));
    assert_eq!(sim.w.last_error(), Some("start call timed out"));
    let (late_id, late_req) = sim.pending_http.pop_front().expect("first call");
    sim.answer_http(late_id, &late_req, 200);
    sim.pump();
    assert!(sim.dials().is_empty(), "a late start answer must not dial");
    sim.script.start_status = Some(200);
    sim.run_until(secs(10), |s| s.state() == ConnectionState::Active);
}

/// A dial that never completes times out; the next attempt works.
#[test]
fn websocket_connect_timeout_retries() {
    let mut sim = Sim::scripted(origin(), config(), Script { accept_dials: false, ..Script::default() });
    let first = sim.pending_dials[0];
    sim.advance(secs(10));
    assert!(sim.closes().iter().any(|(c, _, _)| *c == first), "the stale dial is closed");
    sim.script.accept_dials = true;
    sim.run_until(secs(10), |s| s.state() == ConnectionState::Active);
}

/// No HELLO within the hello deadline: close and retry.
#[test]
fn missing_hello_times_out_and_retries() {
    let mut sim = Sim::scripted(origin(), config(), Script { send_hello: false, ..Script::default() });
    let conn = sim.open[0];
    sim.advance(secs(5));
    assert_eq!(sim.closes()[0], (conn, 4001, "UNEXPECTED".into()));
    sim.script.send_hello = true;
    sim.run_until(secs(10), |s| s.state() == ConnectionState::Active);
}

/// No READY within the (20 s) ready deadline: close and retry.
#[test]
fn missing_ready_times_out_after_twenty_seconds() {
    let mut sim = Sim::scripted(origin(), config(), Script { send_ready: false, ..Script::default() });
    let conn = sim.open[0];
    sim.advance(secs(19));
    assert!(sim.closes().is_empty());
    sim.advance(secs(1));
    assert_eq!(sim.closes()[0].0, conn);
    assert_eq!(sim.w.last_error(), Some("Ready timed out"));
}

/// READY with empty or zero intervals falls back to the defaults (10 s heartbeat).
#[test]
fn empty_ready_intervals_use_defaults() {
    let ready = GatewayConnectionReadyData {
        heartbeat_interval: "".into(),
        extend_lease_interval: "0s".into(),
        ..Default::default()
    };
    let mut sim = Sim::scripted(origin(), config(), Script { ready, ..Script::default() });
    sim.advance(secs(9));
    assert_eq!(sim.count_sent(is_heartbeat), 0);
    sim.advance(secs(1));
    assert_eq!(sim.count_sent(is_heartbeat), 1);
}

/// Go durations such as "1m0s" are understood.
#[test]
fn ready_intervals_in_go_syntax_are_parsed() {
    let ready = GatewayConnectionReadyData {
        heartbeat_interval: "1m0s".into(),
        extend_lease_interval: "500ms".into(),
        ..Default::default()
    };
    let mut sim = Sim::scripted(origin(), config(), Script { ready, ..Script::default() });
    sim.advance(secs(59));
    assert_eq!(sim.count_sent(is_heartbeat), 0);
    sim.advance(secs(1));
    assert_eq!(sim.count_sent(is_heartbeat), 1);
}

/// SYNC_FAILED during the handshake is fatal: the config was rejected.
#[test]
fn sync_failed_is_fatal() {
    let mut sim = Sim::scripted(origin(), config(), Script { send_ready: false, ..Script::default() });
    let conn = sim.open[0];
    sim.send(conn, sync_failed("invalid_function"));
    assert!(sim.has_event(&Event::Fatal(FatalError::SyncRejected {
        code: "invalid_function".into(),
        message: "bad config".into()
    })));
    assert_eq!(sim.events().last(), Some(&Event::Closed));
}

/// A 1008 close naming a config problem is fatal; an authentication failure is not.
#[test]
fn config_rejection_close_is_fatal_but_auth_failure_reconnects() {
    let mut sim = Sim::scripted(origin(), config(), Script { send_ready: false, ..Script::default() });
    let conn = sim.open[0];
    sim.close(conn, Some((1008, "connect_authentication_failed")));
    assert_eq!(sim.state(), ConnectionState::Connecting);
    sim.run_until(secs(10), |s| s.open.len() == 1);
    let conn = sim.open[0];
    sim.close(conn, Some((1008, "connect_too_many_apps_per_connection")));
    assert!(sim.events().iter().any(|e| matches!(e, Event::Fatal(FatalError::Rejected { code: 1008, .. }))));
    assert!(sim.closed());
}

/// An unexpected message instead of HELLO fails the handshake.
#[test]
fn wrong_first_message_fails_the_handshake() {
    let mut sim = Sim::scripted(origin(), config(), Script { send_hello: false, ..Script::default() });
    let conn = sim.open[0];
    sim.send(conn, Message::GatewayHeartbeat);
    assert_eq!(sim.closes()[0], (conn, 4001, "UNEXPECTED".into()));
    assert_eq!(sim.state(), ConnectionState::Connecting);
}

/// Bad configs are refused up front.
#[test]
fn invalid_config_is_refused_by_new() {
    let mut c = config();
    c.instance_id = " ".into();
    assert!(Worker::new(c, Default::default(), std::time::Instant::now()).is_err());
    let mut c = config();
    c.apps.clear();
    assert!(Worker::new(c, Default::default(), std::time::Instant::now()).is_err());
    let mut c: WorkerConfig = config();
    c.signing_key = Some(SigningKey::new("signkey-branch-aa").expect("key"));
    assert!(Worker::new(c, Default::default(), std::time::Instant::now()).is_err());
    let mut c = config();
    c.reconnect_backoff.initial = std::time::Duration::ZERO;
    assert!(Worker::new(c, Default::default(), std::time::Instant::now()).is_err());
}

/// Deadlines and intervals that make no sense (a 1 ns heartbeat, a zero
/// HELLO deadline, a backoff whose cap is below its first delay, a shutdown
/// longer than Inngest lets a run live) are refused up front with a typed
/// error that names the field and the range.
#[test]
fn intervals_and_timeouts_out_of_range_are_refused() {
    use connect_core::worker::ConfigError;
    use std::time::Duration;
    let refused = |change: fn(&mut WorkerConfig)| {
        let mut c = config();
        change(&mut c);
        let e = c.validate().expect_err("refused");
        assert_eq!(Worker::new(c, Default::default(), std::time::Instant::now()).err(), Some(e.clone()));
        e
    };
    let e = refused(|c| c.intervals.heartbeat = Duration::from_nanos(1));
    assert_eq!(
        e,
        ConfigError::OutOfRange {
            what: "intervals.heartbeat",
            value: Duration::from_nanos(1),
            min: Duration::from_millis(10),
            max: Duration::from_secs(300),
        }
    );
    assert_eq!(e.to_string(), "intervals.heartbeat is 1ns: it must be between 10ms and 5m0s");
    let e = refused(|c| c.timeouts.hello = Duration::ZERO);
    assert!(matches!(e, ConfigError::OutOfRange { what: "timeouts.hello", .. }), "{e}");
    let e = refused(|c| c.timeouts.ready = Duration::from_secs(3600));
    assert!(matches!(e, ConfigError::OutOfRange { what: "timeouts.ready", .. }), "{e}");
    let e = refused(|c| c.timeouts.shutdown = Duration::from_secs(3 * 3600));
    assert!(e.to_string().starts_with("timeouts.shutdown is 3h0m0s"), "{e}");
    let e = refused(|c| c.intervals.min_interval = Duration::ZERO);
    assert!(matches!(e, ConfigError::OutOfRange { what: "intervals.min_interval", .. }), "{e}");
    let e = refused(|c| c.intervals.extend_lease = Duration::from_secs(600));
    assert!(matches!(e, ConfigError::OutOfRange { what: "intervals.extend_lease", .. }), "{e}");
    let e = refused(|c| c.reconnect_backoff.max = Duration::from_millis(500));
    assert!(matches!(e, ConfigError::BackoffMax { what: "reconnect_backoff", .. }), "{e}");

    // The edges are accepted, and so is a shutdown that waits for nothing.
    let mut c = config();
    c.intervals.heartbeat = Duration::from_millis(10);
    c.timeouts.hello = Duration::from_secs(600);
    c.timeouts.shutdown = Duration::ZERO;
    assert_eq!(c.validate(), Ok(()));
    assert!(Worker::new(c, Default::default(), std::time::Instant::now()).is_ok());
}

/// The body of a start call after a drain names the excluded group.
#[test]
fn start_request_body_lists_excluded_gateways() {
    let mut sim = Sim::new(origin(), config());
    let conn = sim.active_conn();
    sim.send(conn, Message::GatewayClosing);
    assert_eq!(sim.start_bodies.last(), Some(&StartRequest { exclude_gateways: vec!["gw-1".into()] }));
}

/// The connection id comes from the start response when it is a ULID;
/// otherwise one is made from the wall clock (started_at + elapsed) and the
/// seed, so a replay makes the same id.
#[test]
fn connection_id_is_the_start_responses_or_a_seeded_ulid() {
    let sim = Sim::new(origin(), config());
    let Some(Event::Ready { connection_id, .. }) =
        sim.events().into_iter().find(|e| matches!(e, Event::Ready { .. }))
    else {
        panic!("ready")
    };
    assert_eq!(connection_id, ulid::Ulid::from_parts(1, 1).to_string(), "the start response's id");

    let made = |seed| {
        let mut c = config();
        c.seed = seed;
        let mut sim = Sim::scripted(origin(), c, Script { start_status: None, ..Script::default() });
        sim.advance(secs(3));
        let body = connect_core::wire::encode_body(&connect_core::wire::StartResponse {
            connection_id: "not-a-ulid".into(),
            gateway_endpoint: "ws://gw/v0/connect".into(),
            ..Default::default()
        });
        let (id, _) = sim.pending_http.pop_front().expect("start");
        sim.w.handle_http_response(sim.now, id, Ok(HttpResponse { status: 200, body }));
        sim.pump();
        sim.events()
            .into_iter()
            .find_map(|e| match e {
                Event::Ready { connection_id, .. } => Some(connection_id),
                _ => None,
            })
            .expect("ready")
    };
    let a = made(9);
    let ulid = ulid::Ulid::from_string(&a).expect("a ULID");
    assert_eq!(ulid.timestamp_ms(), 1_750_000_003_000, "wall clock: started_at + 3 s");
    assert_eq!(a, made(9));
    assert_ne!(a, made(10));
}
