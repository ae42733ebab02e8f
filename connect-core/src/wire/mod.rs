//! The wire layer: `ConnectMessage` frames and their payloads.
//!
//! Every WebSocket message, in both directions, is one binary frame holding one
//! protobuf [`ConnectMessage`]. [`Message`] is the typed view: one variant per
//! [`GatewayMessageType`], with its payload decoded. Decoding from a [`Bytes`]
//! buffer shares memory with it: a 1 MiB request payload is not copied.
//!
//! The worker reads GATEWAY_EXECUTOR_REQUEST with [`ExecutorRequest`]
//! instead, which copies the request's strings into one shared buffer (one
//! allocation, where the prost struct costs twelve); [`Message`] keeps the
//! prost struct, for the gateway side and for tests.
//!
//! Malformed input is a [`WireError`] naming what was wrong, never a panic.
//! Size limits ([`Limits`]) are checked before anything is allocated, and a
//! length field inside a frame can never make the decoder allocate more than
//! the frame itself holds (prost checks every length against the buffer).

mod proto;
mod request;
pub(crate) mod scan;

pub use proto::*;
pub(crate) use request::{Echo, RequestText};
pub use request::{ExecutorRequest, RequestId};

use bytes::{Bytes, BytesMut};
use prost::Message as _;
use prost::encoding::{WireType, encode_key, encode_varint, encoded_len_varint, key_len};

/// The gateway's WebSocket read limit: 4 MiB + 4 MiB (`MaxSDKResponseBodySize`).
/// A worker message larger than this is closed with 1009 by Inngest's gateway.
pub const GATEWAY_READ_LIMIT: usize = 8 * 1024 * 1024;

/// The WebSocket subprotocol the gateway accepts.
pub const SUBPROTOCOL: &str = "v0.connect.inngest.com";

/// Frame size limits, checked before encoding or decoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest frame we will send. Default: [`GATEWAY_READ_LIMIT`], because the
    /// gateway closes the whole connection (1009) on anything larger; failing the
    /// one message locally is much better.
    pub max_send_frame: usize,
    /// Largest frame we accept. Default 16 MiB: the gateway sends request
    /// payloads up to 4 MiB, so this leaves room while bounding memory.
    pub max_recv_frame: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_send_frame: GATEWAY_READ_LIMIT, max_recv_frame: 16 * 1024 * 1024 }
    }
}

/// What was wrong with a frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The frame is over the configured limit. For a received frame this is the
    /// peer's fault; for one we were about to send, the message is refused
    /// locally so that it cannot take the connection down.
    #[error("{direction} frame of {len} bytes is over the {limit}-byte limit")]
    TooLarge { direction: Direction, len: usize, limit: usize },
    /// The bytes are not a `ConnectMessage` (Inngest's gateway closes 1007 for this).
    #[error("frame is not a valid ConnectMessage: {0}")]
    Envelope(prost::DecodeError),
    /// The envelope decoded, but its payload does not match its kind.
    #[error("{kind} payload is malformed: {source}")]
    Payload { kind: &'static str, source: prost::DecodeError },
}

/// Which way a frame was going when a limit was hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Send,
    Receive,
}

impl std::fmt::Display for Direction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Direction::Send => "outgoing",
            Direction::Receive => "incoming",
        })
    }
}

/// A decoded frame: the kind and its typed payload.
///
/// Payload-less kinds have no data. A kind number this crate does not know
/// (from a newer peer) is [`Message::Unknown`], which callers log and ignore,
/// as Inngest's gateway does.
#[derive(Clone, Debug, PartialEq)]
pub enum Message {
    GatewayHello,
    WorkerConnect(Box<WorkerConnectRequestData>),
    GatewayConnectionReady(GatewayConnectionReadyData),
    GatewayExecutorRequest(Box<GatewayExecutorRequestData>),
    WorkerReady,
    WorkerRequestAck(Box<WorkerRequestAckData>),
    WorkerReply(Box<SdkResponse>),
    WorkerReplyAck(WorkerReplyAckData),
    WorkerPause,
    WorkerHeartbeat,
    GatewayHeartbeat,
    GatewayClosing,
    WorkerRequestExtendLease(Box<WorkerRequestExtendLeaseData>),
    WorkerRequestExtendLeaseAck(Box<WorkerRequestExtendLeaseAckData>),
    SyncFailed(SystemError),
    WorkerStatus(WorkerStatusData),
    Unknown { kind: i32, payload: Bytes },
}

impl Message {
    /// The message's kind, or `Err(raw)` for an unknown kind number.
    pub fn kind(&self) -> Result<GatewayMessageType, i32> {
        use GatewayMessageType as K;
        Ok(match self {
            Message::GatewayHello => K::GatewayHello,
            Message::WorkerConnect(_) => K::WorkerConnect,
            Message::GatewayConnectionReady(_) => K::GatewayConnectionReady,
            Message::GatewayExecutorRequest(_) => K::GatewayExecutorRequest,
            Message::WorkerReady => K::WorkerReady,
            Message::WorkerRequestAck(_) => K::WorkerRequestAck,
            Message::WorkerReply(_) => K::WorkerReply,
            Message::WorkerReplyAck(_) => K::WorkerReplyAck,
            Message::WorkerPause => K::WorkerPause,
            Message::WorkerHeartbeat => K::WorkerHeartbeat,
            Message::GatewayHeartbeat => K::GatewayHeartbeat,
            Message::GatewayClosing => K::GatewayClosing,
            Message::WorkerRequestExtendLease(_) => K::WorkerRequestExtendLease,
            Message::WorkerRequestExtendLeaseAck(_) => K::WorkerRequestExtendLeaseAck,
            Message::SyncFailed(_) => K::SyncFailed,
            Message::WorkerStatus(_) => K::WorkerStatus,
            Message::Unknown { kind, .. } => return Err(*kind),
        })
    }

    /// A short name for logs: the protocol's name, or `UNKNOWN(n)`.
    pub fn name(&self) -> std::borrow::Cow<'static, str> {
        match self.kind() {
            Ok(k) => k.proto_name().into(),
            Err(n) => format!("UNKNOWN({n})").into(),
        }
    }

    /// Decode one frame. Accepts the 0-byte HELLO. Zero-copy: `bytes` fields of
    /// the result share `frame`'s memory.
    pub fn decode(frame: Bytes, limits: &Limits) -> Result<Message, WireError> {
        if frame.len() > limits.max_recv_frame {
            return Err(WireError::TooLarge {
                direction: Direction::Receive,
                len: frame.len(),
                limit: limits.max_recv_frame,
            });
        }
        let envelope = ConnectMessage::decode(frame).map_err(WireError::Envelope)?;
        Self::from_envelope(envelope)
    }

    /// Type an already decoded envelope.
    pub fn from_envelope(envelope: ConnectMessage) -> Result<Message, WireError> {
        use GatewayMessageType as K;
        let Ok(kind) = K::try_from(envelope.kind) else {
            return Ok(Message::Unknown { kind: envelope.kind, payload: envelope.payload });
        };
        let p = envelope.payload;
        fn de<T: prost::Message + Default>(kind: K, p: Bytes) -> Result<T, WireError> {
            T::decode(p).map_err(|source| WireError::Payload { kind: kind.proto_name(), source })
        }
        Ok(match kind {
            K::GatewayHello => Message::GatewayHello,
            K::WorkerConnect => Message::WorkerConnect(Box::new(de(kind, p)?)),
            K::GatewayConnectionReady => Message::GatewayConnectionReady(de(kind, p)?),
            K::GatewayExecutorRequest => Message::GatewayExecutorRequest(Box::new(de(kind, p)?)),
            K::WorkerReady => Message::WorkerReady,
            K::WorkerRequestAck => Message::WorkerRequestAck(Box::new(de(kind, p)?)),
            K::WorkerReply => Message::WorkerReply(Box::new(de(kind, p)?)),
            K::WorkerReplyAck => Message::WorkerReplyAck(de(kind, p)?),
            K::WorkerPause => Message::WorkerPause,
            K::WorkerHeartbeat => Message::WorkerHeartbeat,
            K::GatewayHeartbeat => Message::GatewayHeartbeat,
            K::GatewayClosing => Message::GatewayClosing,
            K::WorkerRequestExtendLease => Message::WorkerRequestExtendLease(Box::new(de(kind, p)?)),
            K::WorkerRequestExtendLeaseAck => Message::WorkerRequestExtendLeaseAck(Box::new(de(kind, p)?)),
            K::SyncFailed => Message::SyncFailed(de(kind, p)?),
            K::WorkerStatus => Message::WorkerStatus(de(kind, p)?),
        })
    }

    /// Encode as one frame, refusing a frame over `limits.max_send_frame`
    /// before allocating it.
    pub fn encode(&self, limits: &Limits) -> Result<Bytes, WireError> {
        let len = self.encoded_len();
        if len > limits.max_send_frame {
            return Err(WireError::TooLarge {
                direction: Direction::Send,
                len,
                limit: limits.max_send_frame,
            });
        }
        let mut buf = BytesMut::with_capacity(len);
        self.with_payload(|kind, payload| {
            write_envelope_head(kind, payload.map_or(0, |p| p.encoded_len()), &mut buf);
            if let Some(p) = payload {
                p.encode_raw(&mut buf);
            }
        });
        debug_assert_eq!(buf.len(), len);
        Ok(buf.freeze())
    }

    /// The exact size of [`Message::encode`]'s output.
    pub fn encoded_len(&self) -> usize {
        self.with_payload(|kind, payload| envelope_len(kind, payload.map_or(0, |p| p.encoded_len())))
    }

    fn with_payload<R>(&self, f: impl FnOnce(i32, Option<&dyn Payload>) -> R) -> R {
        let kind = match self.kind() {
            Ok(k) => k as i32,
            Err(n) => n,
        };
        let raw;
        let payload: Option<&dyn Payload> = match self {
            Message::GatewayHello
            | Message::WorkerReady
            | Message::WorkerPause
            | Message::WorkerHeartbeat
            | Message::GatewayHeartbeat
            | Message::GatewayClosing => None,
            Message::WorkerConnect(m) => Some(m.as_ref()),
            Message::GatewayConnectionReady(m) => Some(m),
            Message::GatewayExecutorRequest(m) => Some(m.as_ref()),
            Message::WorkerRequestAck(m) => Some(m.as_ref()),
            Message::WorkerReply(m) => Some(m.as_ref()),
            Message::WorkerReplyAck(m) => Some(m),
            Message::WorkerRequestExtendLease(m) => Some(m.as_ref()),
            Message::WorkerRequestExtendLeaseAck(m) => Some(m.as_ref()),
            Message::SyncFailed(m) => Some(m),
            Message::WorkerStatus(m) => Some(m),
            Message::Unknown { payload, .. } => {
                raw = RawPayload(payload);
                Some(&raw)
            }
        };
        f(kind, payload)
    }
}

/// Object-safe slice of `prost::Message` for the envelope writer, plus raw
/// bytes for [`Message::Unknown`].
trait Payload {
    fn encoded_len(&self) -> usize;
    fn encode_raw(&self, buf: &mut BytesMut);
}

impl<T: prost::Message> Payload for T {
    fn encoded_len(&self) -> usize {
        prost::Message::encoded_len(self)
    }
    fn encode_raw(&self, buf: &mut BytesMut) {
        prost::Message::encode_raw(self, buf)
    }
}

/// The undecoded payload of an unknown kind, re-sent as it came.
struct RawPayload<'a>(&'a [u8]);

impl Payload for RawPayload<'_> {
    fn encoded_len(&self) -> usize {
        self.0.len()
    }
    fn encode_raw(&self, buf: &mut BytesMut) {
        buf.extend_from_slice(self.0)
    }
}

/// proto3 elides defaults: kind 0 and an empty payload are not written, which
/// is why HELLO is 0 bytes and a heartbeat is `08 09`.
fn envelope_len(kind: i32, payload_len: usize) -> usize {
    let mut len = 0;
    if kind != 0 {
        len += key_len(1) + encoded_len_varint(kind as i64 as u64);
    }
    if payload_len != 0 {
        len += key_len(2) + encoded_len_varint(payload_len as u64) + payload_len;
    }
    len
}

fn write_envelope_head(kind: i32, payload_len: usize, buf: &mut BytesMut) {
    if kind != 0 {
        encode_key(1, WireType::Varint, buf);
        encode_varint(kind as i64 as u64, buf);
    }
    if payload_len != 0 {
        encode_key(2, WireType::LengthDelimited, buf);
        encode_varint(payload_len as u64, buf);
    }
}

/// Encode a plain protobuf body (the HTTP start/flush calls carry these).
pub fn encode_body<M: prost::Message>(m: &M) -> Bytes {
    Bytes::from(m.encode_to_vec())
}

/// Decode a plain protobuf body, naming the message type on failure.
pub fn decode_body<M: prost::Message + Default>(body: Bytes, what: &'static str) -> Result<M, WireError> {
    M::decode(body).map_err(|source| WireError::Payload { kind: what, source })
}

#[cfg(test)]
mod tests;
