//! One WebSocket over async-net (the async-io reactor): dial with the
//! subprotocol within the machine's timeout, then a reader and a writer
//! driven side by side in one task on the connection thread's executor, so a
//! peer that stops reading never blocks our reads, nor the pump.

use std::time::Duration;

use async_tungstenite::tungstenite::Message as WsMessage;
use async_tungstenite::tungstenite::client::IntoClientRequest;
use async_tungstenite::tungstenite::http::HeaderValue;
use async_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use bytes::Bytes;
use connect_adapter::session::FrameSink;
use connect_core::wire::Limits;
use connect_core::worker::ConnId;
use futures_util::StreamExt;

pub(crate) type IoEvent = connect_adapter::session::IoEvent<Writer>;

#[derive(Debug)]
enum Out {
    Frame(Bytes),
    Close(u16, String),
}

/// How long the peer has to answer our close frame (or to go quiet after the
/// pump let go of the connection) before the socket is dropped anyway. Without
/// a bound, a half-open connection (the peer gone without a FIN) would keep its
/// task and file descriptor forever.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// The pump's end of a connection's writer.
#[derive(Debug)]
pub(crate) struct Writer {
    tx: async_channel::Sender<Out>,
    /// Dropped with the writer, so also by `close`: the socket task then starts the [`CLOSE_GRACE`] bound.
    _held: async_channel::Sender<()>,
}

impl FrameSink for Writer {
    fn send(&mut self, frame: Bytes) {
        let _ = self.tx.try_send(Out::Frame(frame));
    }

    fn close(self, code: u16, reason: String) {
        let _ = self.tx.try_send(Out::Close(code, reason));
    }
}

/// Dial `url`, then report `Connected`, every frame, and finally `Closed`
/// through `emit` (which returns false once the pump is gone). Ends when
/// both directions are done: after our close frame, it still reads until the
/// peer answers, so the gateway hears why we left.
pub(crate) async fn connect(
    conn: ConnId,
    url: String,
    subprotocol: &'static str,
    timeout: Duration,
    limits: Limits,
    emit: impl Fn(IoEvent) -> bool,
) {
    let mut request = match url.as_str().into_client_request() {
        Ok(r) => r,
        Err(e) => {
            emit(IoEvent::ConnectFailed(conn, format!("bad gateway URL {url:?}: {e}")));
            return;
        }
    };
    request.headers_mut().insert("Sec-WebSocket-Protocol", HeaderValue::from_static(subprotocol));
    let config = WebSocketConfig::default()
        .max_message_size(Some(limits.max_recv_frame))
        .max_frame_size(Some(limits.max_recv_frame));
    let dial =
        async { Some(async_tungstenite::smol::connect_async_with_config(request, Some(config)).await) };
    let expired = async {
        async_io::Timer::after(timeout).await;
        None
    };
    let ws = match futures_lite::future::or(dial, expired).await {
        Some(Ok((ws, _response))) => ws,
        Some(Err(e)) => {
            emit(IoEvent::ConnectFailed(conn, e.to_string()));
            return;
        }
        None => {
            emit(IoEvent::ConnectFailed(conn, format!("WebSocket upgrade timed out after {timeout:?}")));
            return;
        }
    };
    let (mut sink, mut stream) = ws.split();
    let (tx, rx) = async_channel::unbounded();
    let (held, released) = async_channel::bounded::<()>(1);
    if !emit(IoEvent::Connected(conn, Writer { tx, _held: held })) {
        return;
    }
    let write = async move {
        // Ends when the pump drops the writer or after our close frame.
        while let Ok(out) = rx.recv().await {
            match out {
                Out::Frame(frame) => {
                    if sink.send(WsMessage::Binary(frame)).await.is_err() {
                        return;
                    }
                }
                Out::Close(code, reason) => {
                    let frame = CloseFrame { code: code.into(), reason: reason.into() };
                    let _ = sink.close(Some(frame)).await;
                    return;
                }
            }
        }
    };
    let read = async {
        let close = loop {
            match stream.next().await {
                Some(Ok(WsMessage::Binary(b))) => {
                    if !emit(IoEvent::Frame(conn, b)) {
                        return;
                    }
                }
                Some(Ok(WsMessage::Text(t))) => {
                    if !emit(IoEvent::Frame(conn, Bytes::copy_from_slice(t.as_bytes()))) {
                        return;
                    }
                }
                Some(Ok(WsMessage::Close(frame))) => {
                    break frame.map(|f| (u16::from(f.code), f.reason.to_string()));
                }
                Some(Ok(_)) => {} // ping/pong are answered by tungstenite
                Some(Err(e)) => {
                    tracing::debug!(conn = conn.0, "socket error: {e}");
                    break None;
                }
                None => break None,
            }
        };
        emit(IoEvent::Closed(conn, close));
    };
    // Once the pump has let go of the connection (closed it, or dropped it), the
    // peer gets CLOSE_GRACE to finish; then both directions and the socket go.
    let let_go = async {
        let _ = released.recv().await;
        async_io::Timer::after(CLOSE_GRACE).await;
    };
    futures_lite::future::or(
        async {
            futures_util::future::join(read, write).await;
        },
        let_go,
    )
    .await;
}
