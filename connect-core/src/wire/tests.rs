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

// ---- ExecutorRequest: the worker's reader of GATEWAY_EXECUTOR_REQUEST ----

fn executor_request(step: Option<&str>) -> GatewayExecutorRequestData {
    let Message::GatewayExecutorRequest(r) = sample(GatewayMessageType::GatewayExecutorRequest) else {
        unreachable!()
    };
    GatewayExecutorRequestData { step_id: step.map(Into::into), ..*r }
}

/// What prost says about `payload`, next to what the reader in place says
/// (when it does not defer) and what `ExecutorRequest::decode` says.
fn compare(payload: &[u8]) {
    let payload = Bytes::copy_from_slice(payload);
    let prost = GatewayExecutorRequestData::decode(payload.clone());
    let ours = ExecutorRequest::decode(payload.clone());
    match (&prost, &ours) {
        (Ok(p), Ok(o)) => assert_eq!(&o.to_data(), p, "{payload:02x?}"),
        (Err(_), Err(e)) => assert!(matches!(e, WireError::Payload { kind: "GATEWAY_EXECUTOR_REQUEST", .. })),
        _ => panic!("prost {prost:?}, ours {ours:?} for {payload:02x?}"),
    }
    if let Some(fast) = ExecutorRequest::read_in_place(&payload) {
        assert_eq!(Ok(fast.to_data()), prost, "{payload:02x?}");
    }
}

#[test]
fn executor_request_reads_every_field_like_prost_in_place() {
    for step in [None, Some(""), Some("step")] {
        let data = executor_request(step);
        let payload = encode_body(&data);
        let fast = ExecutorRequest::read_in_place(&payload).expect("read in place, not deferred");
        assert_eq!(fast.to_data(), data);
        assert_eq!(fast.step_id(), step);
        assert_eq!(ExecutorRequest::decode(payload.clone()).expect("decodes"), fast);
        assert_eq!(ExecutorRequest::try_from(&data).expect("converts"), fast);
        // The payload is a slice of the frame, not a copy.
        let range = payload.as_ptr_range();
        assert!(range.contains(&fast.request_payload().as_ptr()));
    }
    let empty = ExecutorRequest::decode(Bytes::new()).expect("all defaults");
    assert_eq!(empty.to_data(), GatewayExecutorRequestData::default());
}

#[test]
fn executor_request_tolerates_unknown_fields_and_takes_the_last_of_repeated_ones() {
    let mut payload = encode_body(&executor_request(Some("s"))).to_vec();
    // Unknown fields 15..18: a varint, a fixed64, a fixed32 and a length-delimited one.
    payload.extend_from_slice(&[0x78, 0x96, 0x01]);
    payload.extend_from_slice(&[0x81, 0x01, 1, 2, 3, 4, 5, 6, 7, 8]);
    payload.extend_from_slice(&[0x8d, 0x01, 1, 2, 3, 4]);
    payload.extend_from_slice(&[0x92, 0x01, 0x02, 0xff, 0xfe]);
    // request_id again: the last one wins.
    payload.extend_from_slice(&[0x0a, 0x02, b'r', b'2']);
    let fast = ExecutorRequest::read_in_place(&Bytes::from(payload.clone())).expect("in place");
    assert_eq!(fast.request_id(), "r2");
    compare(&payload);
    // A group (wire types 3/4, deprecated) is left to prost, which skips it.
    let mut grouped = payload.clone();
    grouped.extend_from_slice(&[0x9b, 0x01, 0x08, 0x01, 0x9c, 0x01]); // field 19 start, a varint, end
    assert!(ExecutorRequest::read_in_place(&Bytes::from(grouped.clone())).is_none());
    assert_eq!(ExecutorRequest::decode(Bytes::from(grouped)).expect("skipped").request_id(), "r2");
}

#[test]
fn executor_request_errors_are_typed_and_trace_contexts_need_not_be_utf8() {
    // A string field that is not UTF-8, a field with the wrong wire type, a truncation.
    for bad in [&[0x0a, 0x02, 0xff, 0xfe][..], &[0x08, 0x01], &[0x0a, 0x05, b'x'], &[0x0a]] {
        let e = ExecutorRequest::decode(Bytes::copy_from_slice(bad)).expect_err("malformed");
        assert!(matches!(e, WireError::Payload { kind: "GATEWAY_EXECUTOR_REQUEST", .. }), "{e}");
        compare(bad);
    }
    // Trace contexts are `bytes`: anything is echoed as it came.
    let data = GatewayExecutorRequestData {
        system_trace_ctx: Bytes::from_static(&[0xff, 0x00, 0xfe]),
        ..executor_request(Some("s"))
    };
    let req = ExecutorRequest::decode(encode_body(&data)).expect("decodes");
    assert_eq!(req.system_trace_ctx(), &[0xff, 0x00, 0xfe]);
    assert_eq!(req.user_trace_ctx(), &data.user_trace_ctx[..]);
    assert_eq!(req.to_data(), data);
    assert_eq!(req.request_id(), "r1");
}

/// Every truncation, and many random byte changes, of a valid payload:
/// the reader in place agrees with prost whenever it does not defer to it,
/// and the decoder as a whole always does.
#[test]
fn executor_request_agrees_with_prost_on_mutated_payloads() {
    let payload = encode_body(&executor_request(Some("step")));
    for len in 0..payload.len() {
        compare(&payload[..len]);
    }
    let mut rng = fastrand::Rng::with_seed(3);
    for _ in 0..20_000 {
        let mut p = payload.to_vec();
        for _ in 0..rng.usize(1..4) {
            let at = rng.usize(..p.len());
            match rng.u8(..3) {
                0 => p[at] = rng.u8(..),
                1 => p.insert(at, rng.u8(..)),
                _ => drop(p.remove(at)),
            }
        }
        compare(&p);
    }
}

proptest::proptest! {
    /// Any request prost encodes, including non-ASCII text and arbitrary
    /// trace bytes, reads back in place to the same fields.
    #[test]
    fn executor_request_round_trips_through_prost(
        ids in proptest::collection::vec(".{0,40}", 11),
        step in proptest::option::of(".{0,10}"),
        payload in proptest::collection::vec(proptest::num::u8::ANY, 0..64),
        traces in proptest::collection::vec(proptest::collection::vec(proptest::num::u8::ANY, 0..40), 2),
    ) {
        let data = GatewayExecutorRequestData {
            request_id: ids[0].clone(), account_id: ids[1].clone(), env_id: ids[2].clone(),
            app_id: ids[3].clone(), app_name: ids[4].clone(), function_id: ids[5].clone(),
            function_slug: ids[6].clone(), step_id: step, request_payload: Bytes::from(payload),
            system_trace_ctx: Bytes::from(traces[0].clone()), user_trace_ctx: Bytes::from(traces[1].clone()),
            run_id: ids[7].clone(), lease_id: ids[8].clone(), job_id: ids[9].clone() + &ids[10],
        };
        let req = ExecutorRequest::decode(encode_body(&data)).expect("decodes");
        proptest::prop_assert_eq!(req.to_data(), data);
    }
}
