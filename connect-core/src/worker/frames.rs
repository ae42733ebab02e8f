//! Outgoing frames on the request path, written straight from the request's
//! stored text, and the frequent incoming ones read in place.
//!
//! `Message::encode` needs owned prost structs, which would mean cloning seven
//! strings per ACK, per extension and per reply. These writers produce the
//! same bytes (the tests compare them with prost's) with one allocation per
//! frame: the frame itself.

use bytes::Bytes;
use prost::encoding::{WireType, encoded_len_varint};
use ulid::Ulid;

use crate::wire::scan::{self, Field};
use crate::wire::{Echo, GatewayMessageType as K, RequestText};

use super::events::Reply;

/// A lease id. Inngest's are ULIDs whose timestamp is the expiry; anything
/// else is kept verbatim (and the gateway will reject it, not us).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum LeaseId {
    Ulid(Ulid),
    Raw(Box<str>),
}

impl LeaseId {
    pub(crate) fn parse(s: &str) -> LeaseId {
        match Ulid::from_string(s) {
            Ok(u) => LeaseId::Ulid(u),
            Err(_) => LeaseId::Raw(s.into()),
        }
    }
    /// The expiry encoded in a ULID lease id, in Unix milliseconds.
    pub(crate) fn expiry_ms(&self) -> Option<u64> {
        match self {
            LeaseId::Ulid(u) => Some(u.timestamp_ms()),
            LeaseId::Raw(_) => None,
        }
    }
    /// True if `self` is strictly older than `other` (only ULIDs are comparable).
    pub(crate) fn older_than(&self, other: &LeaseId) -> bool {
        matches!((self, other), (LeaseId::Ulid(a), LeaseId::Ulid(b)) if a < b)
    }
    fn with_str<R>(&self, f: impl FnOnce(&str) -> R) -> R {
        match self {
            LeaseId::Ulid(u) => {
                let mut buf = [0u8; ulid::ULID_LEN];
                f(u.array_to_str(&mut buf))
            }
            LeaseId::Raw(s) => f(s),
        }
    }
}

impl std::fmt::Display for LeaseId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.with_str(|s| f.write_str(s))
    }
}

/// One field of an outgoing message.
#[derive(Clone, Copy)]
enum F<'a> {
    /// A proto3 `bytes`/`string` field: skipped when empty.
    Bytes(&'a [u8]),
    /// An `optional` one: written when present, even if empty.
    Optional(Option<&'a [u8]>),
    /// A proto3 scalar: skipped when 0.
    Varint(u64),
}

impl F<'_> {
    /// Encoded size, key included (every tag here is below 16: a 1-byte key).
    fn len(self) -> usize {
        match self {
            F::Bytes([]) | F::Optional(None) | F::Varint(0) => 0,
            F::Bytes(v) | F::Optional(Some(v)) => 1 + encoded_len_varint(v.len() as u64) + v.len(),
            F::Varint(v) => 1 + encoded_len_varint(v),
        }
    }

    #[inline(always)]
    fn write(self, tag: u8, buf: &mut Vec<u8>) {
        debug_assert!(tag < 16);
        match self {
            F::Bytes([]) | F::Optional(None) | F::Varint(0) => {}
            F::Bytes(v) | F::Optional(Some(v)) => {
                let key = tag << 3 | WireType::LengthDelimited as u8;
                match u8::try_from(v.len()) {
                    // Most values are short: key and length in one go.
                    Ok(len) if len < 0x80 => buf.extend_from_slice(&[key, len]),
                    _ => {
                        buf.push(key);
                        put_varint(buf, v.len() as u64);
                    }
                }
                buf.extend_from_slice(v);
            }
            F::Varint(v) => {
                buf.push(tag << 3 | WireType::Varint as u8);
                put_varint(buf, v);
            }
        }
    }
}

fn put_varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push(v as u8 | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

/// An encoded frame and where its payload starts (the flush body is the payload).
pub(crate) struct Frame {
    pub(crate) bytes: Bytes,
    pub(crate) payload_at: usize,
}

/// Write one `ConnectMessage{kind, payload}` whose payload has `fields`
/// (field `i` has tag `i + 1`); `Err(len)` if it would exceed `max`. The
/// frame is written into a `Vec` of the exact size, which becomes its
/// `Bytes` without a copy: one allocation.
fn frame(kind: K, max: usize, fields: &[F<'_>]) -> Result<Frame, usize> {
    let payload_len: usize = fields.iter().map(|f| f.len()).sum();
    let envelope = [F::Varint(kind as i32 as u64), F::Varint(payload_len as u64)];
    let head = envelope[0].len() + if payload_len == 0 { 0 } else { envelope[1].len() };
    let total = head + payload_len;
    if total > max {
        return Err(total);
    }
    let mut buf = Vec::with_capacity(total);
    envelope[0].write(1, &mut buf);
    if payload_len != 0 {
        // Field 2 is `bytes`: its key is length-delimited, then the length.
        buf.push(2 << 3 | WireType::LengthDelimited as u8);
        put_varint(&mut buf, payload_len as u64);
    }
    for (tag, f) in (1..).zip(fields) {
        f.write(tag, &mut buf);
    }
    debug_assert_eq!(buf.len(), total);
    Ok(Frame { bytes: Bytes::from(buf), payload_at: head })
}

/// The fields ACK and extend share (tags 1..=9 in both messages).
fn common<'a>(e: &Echo<'a>) -> [F<'a>; 9] {
    [
        F::Bytes(e.request_id),
        F::Bytes(e.account_id),
        F::Bytes(e.env_id),
        F::Bytes(e.app_id),
        F::Bytes(e.function_slug),
        F::Optional(e.step_id),
        F::Bytes(e.system_trace_ctx),
        F::Bytes(e.user_trace_ctx),
        F::Bytes(e.run_id),
    ]
}

/// WORKER_REQUEST_ACK. Small and bounded by the request we received, so no limit check.
pub(crate) fn ack(r: &RequestText) -> Bytes {
    frame(K::WorkerRequestAck, usize::MAX, &common(&r.echo())).map(|f| f.bytes).unwrap_or_default()
}

/// WORKER_REQUEST_EXTEND_LEASE with the given (newest) lease id.
pub(crate) fn extend(r: &RequestText, lease: &LeaseId) -> Bytes {
    let echo = r.echo();
    let [a, b, c, d, e, f, g, h, i] = common(&echo);
    lease
        .with_str(|lease| {
            let fields = [a, b, c, d, e, f, g, h, i, F::Bytes(lease.as_bytes())];
            frame(K::WorkerRequestExtendLease, usize::MAX, &fields)
        })
        .map(|f| f.bytes)
        .unwrap_or_default()
}

/// WORKER_REPLY carrying the app's reply; `Err(len)` when over `max`.
pub(crate) fn reply(r: &RequestText, reply: &Reply, sdk_version: &str, max: usize) -> Result<Frame, usize> {
    let e = r.echo();
    let fields = [
        F::Bytes(e.request_id),
        F::Bytes(e.account_id),
        F::Bytes(e.env_id),
        F::Bytes(e.app_id),
        F::Varint(reply.status as i32 as u64),
        F::Bytes(&reply.body),
        F::Varint(u64::from(reply.no_retry)),
        F::Optional(reply.retry_after.as_deref().map(str::as_bytes)),
        F::Bytes(sdk_version.as_bytes()),
        F::Varint(u64::from(reply.request_version)),
        F::Bytes(e.system_trace_ctx),
        F::Bytes(e.user_trace_ctx),
        F::Bytes(e.run_id),
    ];
    frame(K::WorkerReply, max, &fields)
}

/// The incoming frames of the request path, recognised in place.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Hot<'a> {
    Heartbeat,
    ReplyAck {
        request_id: &'a str,
    },
    ExtendAck {
        request_id: &'a str,
        new_lease_id: Option<&'a str>,
    },
    /// A GATEWAY_EXECUTOR_REQUEST whose payload is `frame[at..at + len]`
    /// (read by `ExecutorRequest`, which reports its errors).
    Request {
        at: usize,
        len: usize,
    },
}

/// Recognise a heartbeat, reply ACK, extension ACK or executor request
/// without decoding into owned messages. `None` for every other frame, and
/// for anything this reader is unsure about: the caller then uses the full
/// decoder, which reports errors properly.
pub(crate) fn peek<'a>(frame: &'a [u8]) -> Option<Hot<'a>> {
    let (mut kind, mut payload) = (0u64, &[][..]);
    scan::fields(frame, |tag, v| {
        match (tag, v) {
            (1, Field::Varint(k)) => kind = k,
            (2, Field::Bytes(p)) => payload = p,
            (1 | 2, _) => return None,
            _ => {}
        }
        Some(())
    })?;
    let text = |b: &'a [u8]| std::str::from_utf8(b).ok();
    match kind {
        k if k == K::GatewayHeartbeat as u64 => Some(Hot::Heartbeat),
        k if k == K::GatewayExecutorRequest as u64 => {
            let at = if payload.is_empty() { 0 } else { scan::offset_in(frame, payload) };
            Some(Hot::Request { at, len: payload.len() })
        }
        k if k == K::WorkerReplyAck as u64 => {
            let mut request_id = "";
            scan::fields(payload, |tag, v| {
                match (tag, v) {
                    (1, Field::Bytes(b)) => request_id = text(b)?,
                    (1, _) => return None,
                    _ => {}
                }
                Some(())
            })?;
            Some(Hot::ReplyAck { request_id })
        }
        k if k == K::WorkerRequestExtendLeaseAck as u64 => {
            let (mut request_id, mut new_lease_id) = ("", None);
            scan::fields(payload, |tag, v| {
                match (tag, v) {
                    (1, Field::Bytes(b)) => request_id = text(b)?,
                    (6, Field::Bytes(b)) => new_lease_id = Some(text(b)?),
                    (2..=5, Field::Bytes(b)) => drop(text(b)?),
                    (1..=6, _) => return None,
                    _ => {}
                }
                Some(())
            })?;
            Some(Hot::ExtendAck { request_id, new_lease_id })
        }
        _ => None,
    }
}

pub(crate) const HEARTBEAT: Bytes = Bytes::from_static(&[0x08, K::WorkerHeartbeat as u8]);
pub(crate) const PAUSE: Bytes = Bytes::from_static(&[0x08, K::WorkerPause as u8]);
pub(crate) const READY: Bytes = Bytes::from_static(&[0x08, K::WorkerReady as u8]);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{
        ExecutorRequest, GatewayExecutorRequestData, Limits, Message, SdkResponse, WorkerRequestAckData,
        WorkerRequestExtendLeaseData,
    };

    fn request(step: Option<&str>) -> GatewayExecutorRequestData {
        GatewayExecutorRequestData {
            request_id: "req-1".into(),
            account_id: "acct".into(),
            env_id: "env".into(),
            app_id: "app".into(),
            app_name: "my-app".into(),
            function_id: "fn-uuid".into(),
            function_slug: "my-app-hello".into(),
            step_id: step.map(Into::into),
            request_payload: Bytes::from_static(b"{}"),
            system_trace_ctx: Bytes::from_static(b"{\"traceparent\":\"00-1\"}"),
            user_trace_ctx: Bytes::from_static(b"{}"),
            run_id: "run".into(),
            lease_id: "01J0000000000000000000000Z".into(),
            job_id: String::new(),
        }
    }

    fn text(req: &GatewayExecutorRequestData) -> RequestText {
        ExecutorRequest::try_from(req).expect("fits").text().clone()
    }

    #[test]
    fn ack_and_extend_decode_to_the_prost_messages() {
        // The last case has a trace context that is not UTF-8: echoed all the same.
        let odd = |mut r: GatewayExecutorRequestData| {
            r.user_trace_ctx = Bytes::from_static(&[0xff, b'{', 0xfe]);
            r
        };
        let cases = [request(None), request(Some("")), request(Some("step")), odd(request(Some("s")))];
        for req in cases {
            let key = text(&req);
            let want_ack = WorkerRequestAckData {
                request_id: req.request_id.clone(),
                account_id: req.account_id.clone(),
                env_id: req.env_id.clone(),
                app_id: req.app_id.clone(),
                function_slug: req.function_slug.clone(),
                step_id: req.step_id.clone(),
                system_trace_ctx: req.system_trace_ctx.clone(),
                user_trace_ctx: req.user_trace_ctx.clone(),
                run_id: req.run_id.clone(),
            };
            let got = Message::decode(ack(&key), &Limits::default()).expect("decodes");
            assert_eq!(got, Message::WorkerRequestAck(Box::new(want_ack.clone())));
            let bytes =
                Message::WorkerRequestAck(Box::new(want_ack)).encode(&Limits::default()).expect("enc");
            assert_eq!(bytes, ack(&key), "byte-identical to prost");

            let lease = LeaseId::parse(&req.lease_id);
            let got = Message::decode(extend(&key, &lease), &Limits::default()).expect("decodes");
            let Message::WorkerRequestExtendLease(got) = got else { panic!("kind") };
            assert_eq!(
                *got,
                WorkerRequestExtendLeaseData {
                    request_id: req.request_id.clone(),
                    account_id: req.account_id.clone(),
                    env_id: req.env_id.clone(),
                    app_id: req.app_id.clone(),
                    function_slug: req.function_slug.clone(),
                    step_id: req.step_id.clone(),
                    system_trace_ctx: req.system_trace_ctx.clone(),
                    user_trace_ctx: req.user_trace_ctx.clone(),
                    run_id: req.run_id.clone(),
                    lease_id: req.lease_id.clone(),
                }
            );
        }
    }

    #[test]
    fn reply_is_byte_identical_to_prost_and_its_payload_is_the_flush_body() {
        let req = request(Some("step"));
        let key = text(&req);
        let r = Reply::error(Bytes::from_static(b"{\"name\":\"E\"}"), true).with_retry_after("");
        let f = reply(&key, &r, "rust:v0.1.0", usize::MAX).expect("fits");
        let want = SdkResponse {
            request_id: "req-1".into(),
            account_id: "acct".into(),
            env_id: "env".into(),
            app_id: "app".into(),
            status: r.status as i32,
            body: r.body.clone(),
            no_retry: true,
            retry_after: Some(String::new()),
            sdk_version: "rust:v0.1.0".into(),
            request_version: 2,
            system_trace_ctx: req.system_trace_ctx.clone(),
            user_trace_ctx: req.user_trace_ctx.clone(),
            run_id: "run".into(),
        };
        let prost_bytes =
            Message::WorkerReply(Box::new(want.clone())).encode(&Limits::default()).expect("enc");
        assert_eq!(f.bytes, prost_bytes);
        assert_eq!(&f.bytes[f.payload_at..], &crate::wire::encode_body(&want)[..]);
        assert_eq!(reply(&key, &r, "x", 10).err(), Some(f.bytes.len() - "rust:v0.1.0".len() + 1));
    }

    #[test]
    fn peek_reads_the_hot_frames_like_the_full_decoder() {
        use crate::wire::{WorkerReplyAckData, WorkerRequestExtendLeaseAckData};
        let l = Limits::default();
        let hb = Message::GatewayHeartbeat.encode(&l).expect("enc");
        assert_eq!(peek(&hb), Some(Hot::Heartbeat));
        let ack =
            Message::WorkerReplyAck(WorkerReplyAckData { request_id: "r-1".into() }).encode(&l).expect("enc");
        assert_eq!(peek(&ack), Some(Hot::ReplyAck { request_id: "r-1" }));
        for lease in [None, Some(""), Some("01J0000000000000000000000Z")] {
            let m = WorkerRequestExtendLeaseAckData {
                request_id: "r-2".into(),
                account_id: "a".into(),
                function_slug: "f".into(),
                new_lease_id: lease.map(Into::into),
                ..Default::default()
            };
            let f = Message::WorkerRequestExtendLeaseAck(Box::new(m)).encode(&l).expect("enc");
            assert_eq!(peek(&f), Some(Hot::ExtendAck { request_id: "r-2", new_lease_id: lease }));
        }
        // Not hot, or malformed: left to the full decoder.
        assert_eq!(peek(&[]), None);
        assert_eq!(peek(&[0x08, 0x02]), None, "READY is not on the request path");
        assert_eq!(peek(&[0x08, 0x03]), Some(Hot::Request { at: 0, len: 0 }), "an empty request");
        assert_eq!(peek(&[0x08, 0x03, 0x12, 0x02, 0x0a, 0x00]), Some(Hot::Request { at: 4, len: 2 }));
        assert_eq!(peek(&[0x08, 0x07, 0x12, 0x05, 0x0a, 0x03, 0xff, 0xfe, 0xfd]), None, "bad UTF-8");
        assert_eq!(peek(&[0x08, 0x07, 0x12, 0x09]), None, "truncated");
        assert_eq!(peek(&[0x08, 0x07, 0x12, 0x02, 0x08, 0x01]), None, "request_id as a varint");
    }

    /// Found by the `frame` fuzz target: a known field with a 64- or 32-bit wire
    /// type, or a key over 32 bits, made prost refuse a frame that this reader
    /// took as an extension ACK (or a heartbeat).
    #[test]
    fn peek_refuses_what_the_full_decoder_refuses() {
        let l = Limits::default();
        // EXTEND_LEASE_ACK { request_id: "r", new_lease_id as fixed64 }.
        let ext = [0x08, 0x0d, 0x12, 0x0c, 0x0a, 0x01, b'r', 0x31, 1, 2, 3, 4, 5, 6, 7, 8];
        assert!(Message::decode(Bytes::copy_from_slice(&ext), &l).is_err());
        assert_eq!(peek(&ext), None);
        // REPLY_ACK with request_id as fixed32.
        let ack = [0x08, 0x07, 0x12, 0x05, 0x0d, 1, 2, 3, 4];
        assert!(Message::decode(Bytes::copy_from_slice(&ack), &l).is_err());
        assert_eq!(peek(&ack), None);
        // A heartbeat with an unknown field whose key does not fit in 32 bits.
        let hb = [0x08, 0x0a, 0x80, 0x80, 0x80, 0x80, 0x10, 0x00];
        assert!(Message::decode(Bytes::copy_from_slice(&hb), &l).is_err());
        assert_eq!(peek(&hb), None);
    }

    #[test]
    fn lease_ids_order_by_time_and_print_back() {
        let a = LeaseId::parse(&Ulid::from_parts(1_000, 5).to_string());
        let b = LeaseId::parse(&Ulid::from_parts(2_000, 1).to_string());
        assert!(a.older_than(&b) && !b.older_than(&a));
        assert_eq!(a.expiry_ms(), Some(1_000));
        assert_eq!(LeaseId::parse("not-a-ulid").to_string(), "not-a-ulid");
        assert_eq!(a.to_string(), Ulid::from_parts(1_000, 5).to_string());
    }
}
