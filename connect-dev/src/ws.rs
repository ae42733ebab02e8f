//! The gateway listener: WebSocket upgrades on `/v0/connect` with the
//! `v0.connect.inngest.com` subprotocol, one task per socket pumping frames
//! between the socket and the core task.

use std::time::{Duration, Instant};

use connect_core::gateway::{CloseFrame, ConnId};
use connect_core::wire::SUBPROTOCOL;
use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode};
use tokio_tungstenite::tungstenite::protocol::{CloseFrame as WsCloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message, error::CapacityError};

use crate::core::{Cmd, WsOut};

/// How long a new TCP connection has to complete its WebSocket upgrade.
const UPGRADE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a closing socket waits for the peer's close frame before dropping.
const CLOSE_LINGER: Duration = Duration::from_secs(1);

pub(crate) async fn serve(listener: TcpListener, core: mpsc::UnboundedSender<Cmd>, max_frame: usize) {
    loop {
        let Ok((stream, _peer)) = listener.accept().await else { continue };
        let _ = stream.set_nodelay(true);
        tokio::spawn(connection(stream, core.clone(), max_frame));
    }
}

async fn connection(stream: TcpStream, core: mpsc::UnboundedSender<Cmd>, max_frame: usize) {
    let config = WebSocketConfig::default().max_message_size(Some(max_frame)).max_frame_size(Some(max_frame));
    // The error type is tungstenite's, so its size is not ours to choose.
    #[allow(clippy::result_large_err)]
    let callback = |req: &Request, mut resp: Response| -> Result<Response, ErrorResponse> {
        if req.uri().path().trim_end_matches('/') != "/v0/connect" {
            let mut not_found = ErrorResponse::new(Some("not found".into()));
            *not_found.status_mut() = StatusCode::NOT_FOUND;
            return Err(not_found);
        }
        let offered = req
            .headers()
            .get_all("sec-websocket-protocol")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|p| p.trim() == SUBPROTOCOL);
        if offered {
            resp.headers_mut().insert("sec-websocket-protocol", HeaderValue::from_static(SUBPROTOCOL));
        }
        Ok(resp)
    };
    let upgrade = tokio_tungstenite::accept_hdr_async_with_config(stream, callback, Some(config));
    let Ok(Ok(ws)) = tokio::time::timeout(UPGRADE_TIMEOUT, upgrade).await else {
        return; // not a WebSocket upgrade, or too slow to send one
    };
    let (tx, rx) = mpsc::unbounded_channel();
    let (id_tx, id_rx) = tokio::sync::oneshot::channel();
    let accept = Cmd::Accept {
        writer: tx,
        reply: Box::new(move |id| {
            let _ = id_tx.send(id);
        }),
    };
    if core.send(accept).is_err() {
        return;
    }
    let Ok(conn) = id_rx.await else { return };
    // Reading and writing run side by side, as Inngest's gateway does: a worker
    // that is slow to read must not stop us from reading its replies.
    let (sink, stream) = ws.split();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(write_loop(sink, rx, stop_tx));
    read_loop(stream, conn, core, stop_rx).await;
}

type Ws = tokio_tungstenite::WebSocketStream<TcpStream>;

/// How the writer ended: it sent a close frame (wait a little for the peer's), or the socket must drop now.
enum Stop {
    Linger,
    Now,
}

async fn read_loop(
    mut stream: futures_util::stream::SplitStream<Ws>,
    conn: ConnId,
    core: mpsc::UnboundedSender<Cmd>,
    mut stop: tokio::sync::oneshot::Receiver<Stop>,
) {
    let report = |cmd: Cmd| drop(core.send(cmd));
    loop {
        tokio::select! {
            msg = stream.next() => match msg {
                Some(Ok(Message::Binary(frame))) => report(Cmd::Frame { conn, frame, at: Instant::now() }),
                Some(Ok(Message::Text(text))) => {
                    report(Cmd::Frame { conn, frame: bytes::Bytes::from(text), at: Instant::now() })
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
                Some(Ok(Message::Close(frame))) => {
                    let close = frame.map(|f| CloseFrame::new(u16::from(f.code), f.reason.as_str()));
                    report(Cmd::Closed { conn, close });
                    return linger(stream).await;
                }
                Some(Err(WsError::Capacity(CapacityError::MessageTooLong { .. }))) => report(Cmd::TooLarge { conn }),
                Some(Err(_)) | None => return report(Cmd::Closed { conn, close: None }),
            },
            how = &mut stop => match how {
                Ok(Stop::Linger) => return linger(stream).await,
                Ok(Stop::Now) | Err(_) => return,
            },
        }
    }
}

async fn write_loop(
    mut sink: futures_util::stream::SplitSink<Ws, Message>,
    mut rx: mpsc::UnboundedReceiver<WsOut>,
    stop: tokio::sync::oneshot::Sender<Stop>,
) {
    let how = loop {
        let Some(out) = rx.recv().await else {
            // The core forgot this connection (it saw the peer's close): the reader finishes up.
            return;
        };
        let mut next = Some(out);
        // Batch whatever is queued into one flush.
        while let Some(out) = next.take() {
            match out {
                WsOut::Frame(frame) => {
                    if sink.feed(Message::Binary(frame)).await.is_err() {
                        break;
                    }
                    next = rx.try_recv().ok();
                }
                WsOut::Close(None) => {
                    let _ = stop.send(Stop::Now);
                    return;
                }
                WsOut::Close(Some(close)) => {
                    let frame = WsCloseFrame { code: close.code.into(), reason: close.reason.into() };
                    let sent = sink.send(Message::Close(Some(frame))).await;
                    let _ = stop.send(if sent.is_ok() { Stop::Linger } else { Stop::Now });
                    return;
                }
            }
        }
        if sink.flush().await.is_err() {
            break Stop::Now;
        }
    };
    let _ = stop.send(how);
}

/// Read until the peer finishes the close handshake (tungstenite answers its close), bounded.
async fn linger(mut stream: futures_util::stream::SplitStream<Ws>) {
    let _ =
        tokio::time::timeout(CLOSE_LINGER, async { while let Some(Ok(_)) = stream.next().await {} }).await;
}
