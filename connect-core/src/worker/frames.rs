//! Outgoing frames on the request path, written straight from borrowed fields.
//!
//! `Message::encode` needs owned prost structs, which would mean cloning seven
//! strings per ACK, per extension and per reply. These writers produce the
//! same bytes (the tests decode them back with [`Message::decode`]) with one
//! allocation per frame: the frame itself.
//!
//! [`Message::decode`]: crate::wire::Message::decode

use std::borrow::Borrow;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use prost::encoding::{WireType, encode_key, encode_varint, encoded_len_varint, key_len};
use ulid::Ulid;

use crate::wire::{GatewayExecutorRequestData, GatewayMessageType as K};

use super::events::Reply;

/// A request's identity and the fields echoed in its ACK, extensions and
/// reply, in one shared allocation: the map key of the in-flight table.
///
/// Layout: nine little-endian `u32` end offsets, a has-step byte, then the
/// parts back to back: request_id, account_id, env_id, app_id,
/// function_slug, step_id, run_id, system_trace_ctx, user_trace_ctx. The
/// trace contexts are copied (they are small) so that a finished request does
/// not keep its whole request frame alive. Hashes and compares as its
/// request id's bytes, so the table is searched with `id.as_bytes()`.
/// Cloning is a reference-count increment.
#[derive(Clone)]
pub(crate) struct ReqKey(Arc<[u8]>);

const PARTS: usize = 9;
const HEADER: usize = PARTS * 4 + 1;
const REQUEST_ID: usize = 0;
const ACCOUNT_ID: usize = 1;
const ENV_ID: usize = 2;
const APP_ID: usize = 3;
const FUNCTION_SLUG: usize = 4;
const STEP_ID: usize = 5;
const RUN_ID: usize = 6;
const SYSTEM_TRACE_CTX: usize = 7;
const USER_TRACE_CTX: usize = 8;

impl ReqKey {
    /// Build the key; `scratch` is a reusable buffer, so that this costs one allocation.
    pub(crate) fn new(req: &GatewayExecutorRequestData, scratch: &mut Vec<u8>) -> ReqKey {
        let step = req.step_id.as_deref();
        let parts: [&[u8]; PARTS] = [
            req.request_id.as_bytes(),
            req.account_id.as_bytes(),
            req.env_id.as_bytes(),
            req.app_id.as_bytes(),
            req.function_slug.as_bytes(),
            step.unwrap_or("").as_bytes(),
            req.run_id.as_bytes(),
            &req.system_trace_ctx,
            &req.user_trace_ctx,
        ];
        scratch.clear();
        scratch.resize(HEADER, 0);
        for (i, part) in parts.iter().enumerate() {
            scratch.extend_from_slice(part);
            let end = u32::try_from(scratch.len() - HEADER).unwrap_or(u32::MAX);
            scratch[i * 4..i * 4 + 4].copy_from_slice(&end.to_le_bytes());
        }
        scratch[PARTS * 4] = u8::from(step.is_some());
        ReqKey(Arc::from(&scratch[..]))
    }

    fn end(&self, i: usize) -> usize {
        let mut b = [0u8; 4];
        b.copy_from_slice(&self.0[i * 4..i * 4 + 4]);
        u32::from_le_bytes(b) as usize
    }

    fn part(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.end(i - 1) };
        &self.0[HEADER + start..HEADER + self.end(i)]
    }

    fn step_id(&self) -> Option<&[u8]> {
        (self.0[PARTS * 4] != 0).then(|| self.part(STEP_ID))
    }

    /// The request id (it came from a protobuf string, so it is UTF-8).
    pub(crate) fn id(&self) -> &str {
        std::str::from_utf8(self.part(REQUEST_ID)).unwrap_or_default()
    }
}

impl std::fmt::Debug for ReqKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("ReqKey").field(&self.id()).finish()
    }
}

impl PartialEq for ReqKey {
    fn eq(&self, other: &Self) -> bool {
        self.part(REQUEST_ID) == other.part(REQUEST_ID)
    }
}
impl Eq for ReqKey {}
impl Hash for ReqKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.part(REQUEST_ID).hash(state)
    }
}
impl Borrow<[u8]> for ReqKey {
    fn borrow(&self) -> &[u8] {
        self.part(REQUEST_ID)
    }
}

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

/// A protobuf field writer that either counts or writes, so that one
/// function describes a message for both passes.
struct Enc<'a> {
    buf: Option<&'a mut BytesMut>,
    len: usize,
}

impl Enc<'_> {
    /// A proto3 `bytes`/`string` field: skipped when empty.
    fn bytes(&mut self, tag: u32, v: &[u8]) {
        if !v.is_empty() {
            self.always_bytes(tag, v);
        }
    }
    /// An `optional` field that is present: written even when empty.
    fn always_bytes(&mut self, tag: u32, v: &[u8]) {
        self.len += key_len(tag) + encoded_len_varint(v.len() as u64) + v.len();
        if let Some(buf) = self.buf.as_deref_mut() {
            encode_key(tag, WireType::LengthDelimited, buf);
            encode_varint(v.len() as u64, buf);
            buf.put_slice(v);
        }
    }
    fn varint(&mut self, tag: u32, v: u64) {
        if v != 0 {
            self.len += key_len(tag) + encoded_len_varint(v);
            if let Some(buf) = self.buf.as_deref_mut() {
                encode_key(tag, WireType::Varint, buf);
                encode_varint(v, buf);
            }
        }
    }
}

/// An encoded frame and where its payload starts (the flush body is the payload).
pub(crate) struct Frame {
    pub(crate) bytes: Bytes,
    pub(crate) payload_at: usize,
}

/// Write one `ConnectMessage{kind, payload}`; `Err(len)` if it would exceed `max`.
fn frame(kind: K, max: usize, fields: impl Fn(&mut Enc<'_>)) -> Result<Frame, usize> {
    let mut count = Enc { buf: None, len: 0 };
    fields(&mut count);
    let payload_len = count.len;
    let kind = kind as i32 as u64;
    let mut head = 0;
    if kind != 0 {
        head += key_len(1) + encoded_len_varint(kind);
    }
    if payload_len != 0 {
        head += key_len(2) + encoded_len_varint(payload_len as u64);
    }
    let total = head + payload_len;
    if total > max {
        return Err(total);
    }
    let mut buf = BytesMut::with_capacity(total);
    if kind != 0 {
        encode_key(1, WireType::Varint, &mut buf);
        encode_varint(kind, &mut buf);
    }
    if payload_len != 0 {
        encode_key(2, WireType::LengthDelimited, &mut buf);
        encode_varint(payload_len as u64, &mut buf);
        fields(&mut Enc { buf: Some(&mut buf), len: 0 });
    }
    debug_assert_eq!(buf.len(), total);
    Ok(Frame { bytes: buf.freeze(), payload_at: head })
}

/// The fields ACK and extend share (tags 1..=9 in both messages).
fn common(e: &ReqKey, enc: &mut Enc<'_>) {
    for (tag, part) in [(1, REQUEST_ID), (2, ACCOUNT_ID), (3, ENV_ID), (4, APP_ID), (5, FUNCTION_SLUG)] {
        enc.bytes(tag, e.part(part));
    }
    if let Some(step) = e.step_id() {
        enc.always_bytes(6, step);
    }
    enc.bytes(7, e.part(SYSTEM_TRACE_CTX));
    enc.bytes(8, e.part(USER_TRACE_CTX));
    enc.bytes(9, e.part(RUN_ID));
}

/// WORKER_REQUEST_ACK. Small and bounded by the request we received, so no limit check.
pub(crate) fn ack(e: &ReqKey) -> Bytes {
    frame(K::WorkerRequestAck, usize::MAX, |enc| common(e, enc)).map(|f| f.bytes).unwrap_or_default()
}

/// WORKER_REQUEST_EXTEND_LEASE with the given (newest) lease id.
pub(crate) fn extend(e: &ReqKey, lease: &LeaseId) -> Bytes {
    lease
        .with_str(|lease| {
            frame(K::WorkerRequestExtendLease, usize::MAX, |enc| {
                common(e, enc);
                enc.bytes(10, lease.as_bytes());
            })
        })
        .map(|f| f.bytes)
        .unwrap_or_default()
}

/// WORKER_REPLY carrying the app's reply; `Err(len)` when over `max`.
pub(crate) fn reply(e: &ReqKey, r: &Reply, sdk_version: &str, max: usize) -> Result<Frame, usize> {
    frame(K::WorkerReply, max, |enc| {
        for (tag, part) in [(1, REQUEST_ID), (2, ACCOUNT_ID), (3, ENV_ID), (4, APP_ID)] {
            enc.bytes(tag, e.part(part));
        }
        enc.varint(5, r.status as i32 as u64);
        enc.bytes(6, &r.body);
        enc.varint(7, u64::from(r.no_retry));
        if let Some(after) = &r.retry_after {
            enc.always_bytes(8, after.as_bytes());
        }
        enc.bytes(9, sdk_version.as_bytes());
        enc.varint(10, u64::from(r.request_version));
        enc.bytes(11, e.part(SYSTEM_TRACE_CTX));
        enc.bytes(12, e.part(USER_TRACE_CTX));
        enc.bytes(13, e.part(RUN_ID));
    })
}

/// The incoming frames of the request path, read in place: no allocation.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Hot<'a> {
    Heartbeat,
    ReplyAck { request_id: &'a str },
    ExtendAck { request_id: &'a str, new_lease_id: Option<&'a str> },
}

enum Field<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    /// A 64- or 32-bit field: never valid for a known tag here, but reported so
    /// that a known tag with this wire type is refused, as prost refuses it.
    Fixed,
}

/// Walk the fields of a protobuf message; `None` on anything malformed
/// (prost's rules: a key fits in 32 bits, tag 0 is invalid).
fn fields<'a>(mut buf: &'a [u8], mut f: impl FnMut(u32, Field<'a>) -> Option<()>) -> Option<()> {
    while !buf.is_empty() {
        let key = u32::try_from(prost::encoding::decode_varint(&mut buf).ok()?).ok()?;
        let tag = Some(key >> 3).filter(|t| *t != 0)?;
        match key & 7 {
            0 => f(tag, Field::Varint(prost::encoding::decode_varint(&mut buf).ok()?))?,
            2 => {
                let len = usize::try_from(prost::encoding::decode_varint(&mut buf).ok()?).ok()?;
                let (value, rest) = (buf.get(..len)?, buf.get(len..)?);
                buf = rest;
                f(tag, Field::Bytes(value))?;
            }
            1 => {
                buf = buf.get(8..)?;
                f(tag, Field::Fixed)?;
            }
            5 => {
                buf = buf.get(4..)?;
                f(tag, Field::Fixed)?;
            }
            _ => return None,
        }
    }
    Some(())
}

/// Recognise a heartbeat, reply ACK or extension ACK without decoding into
/// owned messages. `None` for every other frame, and for anything this
/// reader is unsure about: the caller then uses the full decoder, which
/// reports errors properly.
pub(crate) fn peek<'a>(frame: &'a [u8]) -> Option<Hot<'a>> {
    let (mut kind, mut payload) = (0u64, &[][..]);
    fields(frame, |tag, v| {
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
        k if k == K::WorkerReplyAck as u64 => {
            let mut request_id = "";
            fields(payload, |tag, v| {
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
            fields(payload, |tag, v| {
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
    use crate::wire::{Limits, Message, SdkResponse, WorkerRequestAckData, WorkerRequestExtendLeaseData};

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

    #[test]
    fn ack_and_extend_decode_to_the_prost_messages() {
        for step in [None, Some(""), Some("step")] {
            let req = request(step);
            let key = ReqKey::new(&req, &mut Vec::new());
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
        let key = ReqKey::new(&req, &mut Vec::new());
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
        assert_eq!(peek(&[0x08, 0x03]), None);
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
