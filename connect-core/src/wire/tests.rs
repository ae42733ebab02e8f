use super::*;
use bytes::Bytes;

fn sample(kind: GatewayMessageType) -> Message {
    use GatewayMessageType as K;
    let s = |v: &str| v.to_owned();
    let json = |v: &str| Bytes::from(v.to_owned());
    match kind {
        K::GatewayHello => Message::GatewayHello,
        K::WorkerConnect => Message::WorkerConnect(Box::new(WorkerConnectRequestData {
            connection_id: s("01JAAAAAAAAAAAAAAAAAAAAAAA"),
            instance_id: s("host-1"),
            auth_data: Some(AuthData { session_token: s("jwt"), sync_token: s("signkey-prod-ab") }),
            capabilities: json(r#"{"connect":"v1"}"#),
            apps: vec![AppConfiguration {
                app_name: s("app"),
                app_version: Some(s("1.0")),
                functions: json("[]"),
                feature_observations: Some(FeatureObservations::default()),
            }],
            worker_manual_readiness_ack: true,
            system_attributes: Some(SystemAttributes { cpu_cores: 2, mem_bytes: 1 << 34, os: s("linux") }),
            environment: Some(s("prod")),
            framework: s("connect"),
            platform: Some(s("railway")),
            sdk_version: s("v0.1.0"),
            sdk_language: s("rust"),
            started_at: Some(Timestamp { seconds: 1_700_000_000, nanos: 5 }),
            max_worker_concurrency: Some(10),
        })),
        K::GatewayConnectionReady => Message::GatewayConnectionReady(GatewayConnectionReadyData {
            heartbeat_interval: s("10s"),
            extend_lease_interval: s("30s"),
            status_interval: s("0s"),
        }),
        K::GatewayExecutorRequest => Message::GatewayExecutorRequest(Box::new(GatewayExecutorRequestData {
            request_id: s("r1"),
            account_id: s("a"),
            env_id: s("e"),
            app_id: s("app-uuid"),
            app_name: s("app"),
            function_id: s("fn-uuid"),
            function_slug: s("app-fn"),
            step_id: Some(s("step")),
            request_payload: json(r#"{"event":{}}"#),
            system_trace_ctx: json("{}"),
            user_trace_ctx: json(r#"{"traceparent":"00-x"}"#),
            run_id: s("01RUN"),
            lease_id: s("01LEASE"),
            job_id: s("job"),
        })),
        K::WorkerReady => Message::WorkerReady,
        K::WorkerRequestAck => Message::WorkerRequestAck(Box::new(WorkerRequestAckData {
            request_id: s("r1"),
            step_id: Some(s("step")),
            run_id: s("01RUN"),
            system_trace_ctx: json("{}"),
            ..Default::default()
        })),
        K::WorkerReply => Message::WorkerReply(Box::new(SdkResponse {
            request_id: s("r1"),
            status: SdkResponseStatus::Done as i32,
            body: json(r#"{"ok":true}"#),
            no_retry: true,
            retry_after: Some(s("5")),
            sdk_version: s("rust:v0.1.0"),
            request_version: 2,
            system_trace_ctx: json("{}"),
            ..Default::default()
        })),
        K::WorkerReplyAck => Message::WorkerReplyAck(WorkerReplyAckData { request_id: s("r1") }),
        K::WorkerPause => Message::WorkerPause,
        K::WorkerHeartbeat => Message::WorkerHeartbeat,
        K::GatewayHeartbeat => Message::GatewayHeartbeat,
        K::GatewayClosing => Message::GatewayClosing,
        K::WorkerRequestExtendLease => {
            Message::WorkerRequestExtendLease(Box::new(WorkerRequestExtendLeaseData {
                request_id: s("r1"),
                lease_id: s("01LEASE"),
                ..Default::default()
            }))
        }
        K::WorkerRequestExtendLeaseAck => {
            Message::WorkerRequestExtendLeaseAck(Box::new(WorkerRequestExtendLeaseAckData {
                request_id: s("r1"),
                new_lease_id: Some(s("01LEASE2")),
                ..Default::default()
            }))
        }
        K::SyncFailed => Message::SyncFailed(SystemError {
            code: s("sync_failed"),
            data: Some(Bytes::from_static(&[0, 255])),
            message: s("nope"),
        }),
        K::WorkerStatus => Message::WorkerStatus(WorkerStatusData {
            in_flight_request_ids: vec![s("r1"), s("r2")],
            shutdown_requested: true,
        }),
    }
}

#[test]
fn every_kind_round_trips() {
    let limits = Limits::default();
    for kind in GatewayMessageType::ALL {
        let msg = sample(kind);
        assert_eq!(msg.kind(), Ok(kind));
        let frame = msg.encode(&limits).expect("encodes");
        assert_eq!(frame.len(), msg.encoded_len(), "{kind:?}");
        let back = Message::decode(frame.clone(), &limits).expect("decodes");
        assert_eq!(back, msg, "{kind:?}");
        // Our envelope writer agrees with prost's own encoding of the envelope.
        let env = ConnectMessage::decode(frame.clone()).expect("envelope");
        assert_eq!(Bytes::from(env.encode_to_vec()), frame, "{kind:?}");
    }
}

#[test]
fn hello_is_a_zero_byte_frame_and_decodes() {
    let limits = Limits::default();
    assert!(Message::GatewayHello.encode(&limits).expect("encodes").is_empty());
    assert_eq!(Message::decode(Bytes::new(), &limits), Ok(Message::GatewayHello));
}

#[test]
fn payloadless_kinds_are_two_bytes() {
    let limits = Limits::default();
    let cases = [
        (Message::WorkerHeartbeat, [0x08, 0x09]),
        (Message::GatewayHeartbeat, [0x08, 0x0A]),
        (Message::WorkerPause, [0x08, 0x08]),
        (Message::WorkerReady, [0x08, 0x04]),
        (Message::GatewayClosing, [0x08, 0x0B]),
    ];
    for (msg, bytes) in cases {
        assert_eq!(msg.encode(&limits).expect("encodes").as_ref(), &bytes);
    }
}

#[test]
fn unknown_kinds_and_fields_are_tolerated() {
    let limits = Limits::default();
    // kind 99 with a payload: kept as Unknown, re-encodes identically.
    let frame = Bytes::from_static(&[0x08, 99, 0x12, 0x02, 0xAA, 0xBB]);
    let msg = Message::decode(frame.clone(), &limits).expect("tolerated");
    assert_eq!(msg, Message::Unknown { kind: 99, payload: Bytes::from_static(&[0xAA, 0xBB]) });
    assert_eq!(msg.name(), "UNKNOWN(99)");
    assert_eq!(msg.encode(&limits).expect("encodes"), frame);
    // A reply ack with an extra unknown field 15 (varint) decodes.
    let payload = [0x0A, 0x01, b'x', 0x78, 0x01];
    let mut frame = vec![0x08, 0x07, 0x12, payload.len() as u8];
    frame.extend_from_slice(&payload);
    let msg = Message::decode(Bytes::from(frame), &limits).expect("decodes");
    assert_eq!(msg, Message::WorkerReplyAck(WorkerReplyAckData { request_id: "x".into() }));
}

#[test]
fn malformed_frames_are_typed_errors() {
    let limits = Limits::default();
    // Truncated length-delimited payload claiming 100 bytes.
    let e = Message::decode(Bytes::from_static(&[0x08, 0x03, 0x12, 0x64, 0x01]), &limits).expect_err("bad");
    assert!(matches!(e, WireError::Envelope(_)), "{e}");
    // A valid envelope whose payload is garbage for its kind.
    let e =
        Message::decode(Bytes::from_static(&[0x08, 0x03, 0x12, 0x02, 0x0A, 0x05]), &limits).expect_err("bad");
    assert!(matches!(e, WireError::Payload { kind: "GATEWAY_EXECUTOR_REQUEST", .. }), "{e}");
    assert!(e.to_string().contains("GATEWAY_EXECUTOR_REQUEST"));
    // A huge varint length in a tiny frame never allocates it.
    let e =
        Message::decode(Bytes::from_static(&[0x12, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F]), &limits).expect_err("bad");
    assert!(matches!(e, WireError::Envelope(_)));
}

#[test]
fn size_limits_both_ways() {
    let limits = Limits { max_send_frame: 64, max_recv_frame: 32 };
    let big = Message::WorkerReply(Box::new(SdkResponse {
        body: Bytes::from(vec![b'x'; 100]),
        ..Default::default()
    }));
    let e = big.encode(&limits).expect_err("too big to send");
    assert!(matches!(e, WireError::TooLarge { direction: Direction::Send, limit: 64, .. }), "{e}");
    let frame = big.encode(&Limits::default()).expect("fits default");
    let e = Message::decode(frame, &limits).expect_err("too big to receive");
    assert!(matches!(e, WireError::TooLarge { direction: Direction::Receive, limit: 32, .. }), "{e}");
    assert!(e.to_string().contains("incoming"));
}

#[test]
fn decode_shares_the_payload_memory() {
    let limits = Limits::default();
    let msg = sample(GatewayMessageType::GatewayExecutorRequest);
    let frame = msg.encode(&limits).expect("encodes");
    let range = frame.as_ptr() as usize..frame.as_ptr() as usize + frame.len();
    let Message::GatewayExecutorRequest(req) = Message::decode(frame.clone(), &limits).expect("decodes")
    else {
        panic!("wrong kind");
    };
    assert!(range.contains(&(req.request_payload.as_ptr() as usize)), "payload was copied");
}

#[test]
fn http_bodies_round_trip_and_empty_start_is_no_exclusions() {
    let start = StartResponse {
        connection_id: "01J".into(),
        gateway_endpoint: "ws://127.0.0.1:8289/v0/connect".into(),
        gateway_group: "gw-dev".into(),
        session_token: "jwt".into(),
        sync_token: "tok".into(),
    };
    let back: StartResponse = decode_body(encode_body(&start), "StartResponse").expect("decodes");
    assert_eq!(back, start);
    let req: StartRequest = decode_body(Bytes::new(), "StartRequest").expect("empty is fine");
    assert!(req.exclude_gateways.is_empty());
    let e =
        decode_body::<StartResponse>(Bytes::from_static(b"<html>"), "StartResponse").expect_err("garbage");
    assert!(e.to_string().contains("StartResponse"));
}
