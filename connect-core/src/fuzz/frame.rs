//! The `frame` target: any bytes as one received WebSocket message.

use std::time::{Duration, UNIX_EPOCH};

use bytes::Bytes;

use crate::wire::{Direction, ExecutorRequest, GatewayExecutorRequestData, Limits, Message, WireError};
use crate::worker::{Hot, peek};

/// Decode `data` as a frame; what decodes must re-encode to a frame that
/// decodes to the same message, at the length `encoded_len` promised, and
/// byte-identical from then on. The worker's in-place reader of hot frames
/// must agree with the full decoder whenever it claims a frame, and so must
/// its reader of executor requests, on the frame and on `data` taken as a
/// request payload. The JSON,
/// duration and lease-id parsers behind the payloads must not panic. Limits
/// hold both ways.
pub fn frame(data: &[u8]) {
    let frame = Bytes::copy_from_slice(data);
    let limits = Limits::default();
    let decoded = Message::decode(frame.clone(), &limits);

    executor_request(frame.clone());
    if let Some(Hot::Request { at, len }) = peek(data) {
        // The envelope was read in place; the payload's errors are ExecutorRequest's.
        let ours = ExecutorRequest::decode(frame.slice(at..at + len));
        match (&decoded, &ours) {
            (Ok(Message::GatewayExecutorRequest(r)), Ok(o)) => assert_eq!(o.to_data(), **r),
            (Err(_), Err(_)) => {}
            _ => panic!("peek read a request: {ours:?}, decode read {decoded:?}"),
        }
    } else if let Some(hot) = peek(data) {
        let msg = decoded.as_ref().unwrap_or_else(|e| panic!("peek read {hot:?}, decode failed: {e}"));
        match (hot, msg) {
            (Hot::Heartbeat, Message::GatewayHeartbeat) => {}
            (Hot::ReplyAck { request_id }, Message::WorkerReplyAck(a)) => {
                assert_eq!(request_id, a.request_id)
            }
            (Hot::ExtendAck { request_id, new_lease_id }, Message::WorkerRequestExtendLeaseAck(a)) => {
                assert_eq!(request_id, a.request_id);
                assert_eq!(new_lease_id, a.new_lease_id.as_deref());
            }
            (hot, msg) => panic!("peek read {hot:?}, decode read {msg:?}"),
        }
    }

    // Size limits, both ways.
    let tight =
        Limits { max_send_frame: data.len().saturating_sub(1), max_recv_frame: data.len().saturating_sub(1) };
    if !data.is_empty() {
        assert!(matches!(
            Message::decode(frame.clone(), &tight),
            Err(WireError::TooLarge { direction: Direction::Receive, .. })
        ));
    }

    let Ok(msg) = decoded else { return };
    payload_parsers(&msg);
    let len = msg.encoded_len();
    let encoded = msg.encode(&limits).expect("a decoded frame re-encodes");
    assert_eq!(encoded.len(), len, "encoded_len is the encoded length");
    if len > 0 {
        let small = Limits { max_send_frame: len - 1, ..limits };
        assert!(matches!(msg.encode(&small), Err(WireError::TooLarge { direction: Direction::Send, .. })));
    }
    let again = Message::decode(encoded.clone(), &limits).expect("a re-encoded frame decodes");
    assert_eq!(again, msg, "decode(encode(m)) == m");
    assert_eq!(again.encode(&limits).expect("re-encodes"), encoded, "canonical after one round");
    let _ = msg.name();
}

/// `payload` as a GATEWAY_EXECUTOR_REQUEST payload: the worker's reader and
/// prost agree on whether it decodes, and on every field when it does.
fn executor_request(payload: Bytes) {
    use prost::Message as _;
    let ours = ExecutorRequest::decode(payload.clone());
    match (GatewayExecutorRequestData::decode(payload), ours) {
        (Ok(theirs), Ok(ours)) => assert_eq!(ours.to_data(), theirs),
        (Err(_), Err(_)) => {}
        (theirs, ours) => panic!("prost: {theirs:?}, ExecutorRequest: {ours:?}"),
    }
}

/// The parsers that read what is inside a frame's payload.
fn parse_json<T: serde::de::DeserializeOwned>(bytes: &[u8]) {
    let _ = serde_json::from_slice::<T>(bytes);
}

fn payload_parsers(msg: &Message) {
    use crate::payload::*;
    match msg {
        Message::GatewayExecutorRequest(r) => {
            parse_json::<RequestPayload>(&r.request_payload);
            parse_json::<serde_json::Value>(&r.system_trace_ctx);
            let _ = crate::gateway::lease::lease_expiry(&r.lease_id);
            let _ = query_param(&r.function_slug, "fnId");
        }
        Message::GatewayConnectionReady(r) => {
            for d in [&r.heartbeat_interval, &r.extend_lease_interval, &r.status_interval] {
                if let Ok(parsed) = crate::duration::parse_go_duration(d) {
                    let _ = crate::duration::format_go_duration(parsed);
                }
            }
        }
        Message::WorkerConnect(c) => {
            parse_json::<Capabilities>(&c.capabilities);
            for app in &c.apps {
                parse_json::<Vec<FunctionConfig>>(&app.functions);
            }
            if let Some(auth) = &c.auth_data {
                let now = UNIX_EPOCH + Duration::from_secs(1_750_000_000);
                let _ = crate::gateway::token::verify(b"secret", &auth.session_token, now);
            }
        }
        Message::WorkerReply(r) => {
            let _ = ReplyVerdict::of(r);
        }
        Message::WorkerRequestExtendLease(e) => {
            let _ = crate::gateway::lease::lease_expiry(&e.lease_id);
        }
        _ => {}
    }
}
