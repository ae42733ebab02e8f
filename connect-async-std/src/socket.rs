//! One WebSocket over async-net (the async-io reactor): dial with the
//! subprotocol within the machine's timeout, then a reader and a writer
//! driven side by side in one task on the connection thread's executor, so a
//! peer that stops reading never blocks our reads, nor the pump.

use std::time::Duration;

use async_tungstenite::WebSocketStream;
use async_tungstenite::smol::ConnectStream;
use async_tungstenite::tungstenite::client::IntoClientRequest;
use async_tungstenite::tungstenite::error::UrlError;
use async_tungstenite::tungstenite::handshake::client::Request;
use async_tungstenite::tungstenite::http::HeaderValue;
use async_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use async_tungstenite::tungstenite::{Error as WsError, Message as WsMessage};
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

type Ws = WebSocketStream<ConnectStream>;

/// TCP connect with Nagle's algorithm off, TLS for `wss`, the WebSocket
/// upgrade. (async-tungstenite's `connect_async` leaves Nagle on: a frame
/// written while the previous one is unacknowledged then waits for the
/// peer's delayed ACK, 40 ms on Linux, so each reply sent right after its
/// request's ACK did, and so did heartbeats queued behind a reply.)
async fn open(request: Request, config: WebSocketConfig) -> Result<Ws, WsError> {
    let uri = request.uri();
    let host = uri.host().ok_or(WsError::Url(UrlError::NoHostName))?;
    let host = host.trim_start_matches('[').trim_end_matches(']').to_owned();
    let port = uri.port_u16().unwrap_or(if uri.scheme_str() == Some("wss") { 443 } else { 80 });
    let tcp = async_net::TcpStream::connect((host.as_str(), port)).await?;
    tcp.set_nodelay(true)?;
    let (ws, _response) =
        async_tungstenite::smol::client_async_tls_with_connector_and_config(request, tcp, None, Some(config))
            .await?;
    Ok(ws)
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
    let dial = async { Some(open(request, config).await) };
    let expired = async {
        async_io::Timer::after(timeout).await;
        None
    };
    let ws = match futures_lite::future::or(dial, expired).await {
        Some(Ok(ws)) => ws,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(ws: &Ws) -> &async_net::TcpStream {
        match ws.get_ref() {
            async_tungstenite::stream::Stream::Plain(tcp) => tcp,
            async_tungstenite::stream::Stream::Tls(tls) => tls.get_ref().0,
        }
    }

    /// The gateway socket has Nagle's algorithm off. With it on, a frame
    /// written while the previous one is not yet acknowledged waits for the
    /// peer's delayed ACK (40 ms on Linux): every reply right behind its
    /// request's ACK did, and heartbeats behind replies (issue 7: 23 runs/s
    /// at one in flight, 44 ms each).
    #[test]
    fn the_gateway_socket_has_nodelay() {
        async_io::block_on(async {
            let listener = async_net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let url = format!("ws://{}/v0/connect", listener.local_addr().expect("addr"));
            let request = url.into_client_request().expect("request");
            let accept = async {
                let (stream, _) = listener.accept().await.expect("accept");
                async_tungstenite::accept_async(stream).await.expect("upgrade")
            };
            let (ws, _server) =
                futures_lite::future::zip(open(request, WebSocketConfig::default()), accept).await;
            assert!(tcp(&ws.expect("open")).nodelay().expect("getsockopt"));
        });
    }
}
