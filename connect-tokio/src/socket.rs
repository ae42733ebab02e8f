//! One WebSocket: dial with the subprotocol, then a reader task that turns
//! messages into pump inputs and a writer task fed by a channel, so a slow
//! socket never blocks the pump loop.

use std::time::Duration;

use bytes::Bytes;
use connect_core::wire::Limits;
use connect_core::worker::ConnId;
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::client::Request;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message as WsMessage};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use connect_adapter::session::FrameSink;

pub(crate) type IoEvent = connect_adapter::session::IoEvent<Writer>;

#[derive(Debug)]
enum Out {
    Frame(Bytes),
    Close(u16, String),
}

/// How long the peer has to answer our close frame (or to go quiet after the
/// pump let go of the connection) before the socket is dropped anyway. Without
/// a bound, a half-open connection (the peer gone without a FIN) would keep its
/// reader task and file descriptor forever.
pub(crate) const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// The pump's end of a connection's writer task.
#[derive(Debug)]
pub(crate) struct Writer {
    tx: mpsc::UnboundedSender<Out>,
    /// Dropped with the writer, so also by `close`: the reader then starts the [`CLOSE_GRACE`] bound.
    _held: oneshot::Sender<()>,
}

impl FrameSink for Writer {
    fn send(&mut self, frame: Bytes) {
        let _ = self.tx.send(Out::Frame(frame));
    }

    fn close(self, code: u16, reason: String) {
        let _ = self.tx.send(Out::Close(code, reason));
    }
}

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// TCP connect with Nagle's algorithm off (`true`: a frame written right
/// after another, a reply after its request's ACK, must not wait for the
/// peer's delayed ACK), TLS for `wss`, the WebSocket upgrade.
async fn open(request: Request, config: WebSocketConfig) -> Result<Ws, WsError> {
    let (ws, _response) = tokio_tungstenite::connect_async_with_config(request, Some(config), true).await?;
    Ok(ws)
}

/// Dial `url`, then report `Connected`, every frame, and finally `Closed`
/// through `emit` (which returns false once the pump is gone).
pub(crate) async fn connect(
    conn: ConnId,
    url: String,
    subprotocol: &'static str,
    timeout: Duration,
    limits: Limits,
    emit: impl Fn(IoEvent) -> bool + Send + 'static,
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
    let ws = match tokio::time::timeout(timeout, open(request, config)).await {
        Ok(Ok(ws)) => ws,
        Ok(Err(e)) => {
            emit(IoEvent::ConnectFailed(conn, e.to_string()));
            return;
        }
        Err(_) => {
            emit(IoEvent::ConnectFailed(conn, format!("WebSocket upgrade timed out after {timeout:?}")));
            return;
        }
    };
    let (mut sink, mut stream) = ws.split();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (held, released) = oneshot::channel::<()>();
    if !emit(IoEvent::Connected(conn, Writer { tx, _held: held })) {
        return;
    }
    let writer = tokio::spawn(async move {
        while let Some(out) = rx.recv().await {
            match out {
                Out::Frame(frame) => {
                    if sink.send(WsMessage::Binary(frame)).await.is_err() {
                        break;
                    }
                }
                Out::Close(code, reason) => {
                    let frame = CloseFrame { code: code.into(), reason: reason.into() };
                    let _ = sink.send(WsMessage::Close(Some(frame))).await;
                    let _ = sink.close().await;
                    break;
                }
            }
        }
    });
    // Once the pump has let go of the connection (closed it, or dropped it), the
    // peer gets CLOSE_GRACE to finish; then the socket goes, writer task included.
    let mut let_go = std::pin::pin!(async move {
        let _ = released.await;
        tokio::time::sleep(CLOSE_GRACE).await;
    });
    let close = loop {
        let next = tokio::select! {
            next = stream.next() => next,
            () = &mut let_go => {
                writer.abort();
                break None;
            }
        };
        match next {
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
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The gateway socket has Nagle's algorithm off.
    #[test]
    fn the_gateway_socket_has_nodelay() {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        rt.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let url = format!("ws://{}/v0/connect", listener.local_addr().expect("addr"));
            let request = url.into_client_request().expect("request");
            let accept = async {
                let (stream, _) = listener.accept().await.expect("accept");
                tokio_tungstenite::accept_async(stream).await.expect("upgrade")
            };
            let (ws, _server) = tokio::join!(open(request, WebSocketConfig::default()), accept);
            let ws = ws.expect("open");
            let MaybeTlsStream::Plain(tcp) = ws.get_ref() else { panic!("a plain ws:// socket") };
            assert!(tcp.nodelay().expect("getsockopt"));
        });
    }
}
