//! The gateway listener: WebSocket upgrades on `/v0/connect` with the
//! `v0.connect.inngest.com` subprotocol, one task per socket pumping frames
//! between the socket and the core task.

use std::time::Duration;

use connect_core::gateway::CloseFrame;
use connect_core::wire::SUBPROTOCOL;
use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode};
use tokio_tungstenite::tungstenite::protocol::{CloseFrame as WsCloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message, error::CapacityError};

use crate::core::{Cmd, WsOut};

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
    let Ok(mut ws) = tokio_tungstenite::accept_hdr_async_with_config(stream, callback, Some(config)).await
    else {
        return;
    };
    let (tx, mut rx) = mpsc::unbounded_channel();
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
    let report = |cmd: Cmd| drop(core.send(cmd));
    loop {
        tokio::select! {
            biased;
            out = rx.recv() => match out {
                Some(WsOut::Frame(frame)) => {
                    if ws.feed(Message::Binary(frame)).await.is_err() { break; }
                    // Batch whatever else is queued into one flush.
                    let mut closing = None;
                    while let Ok(more) = rx.try_recv() {
                        match more {
                            WsOut::Frame(f) => if ws.feed(Message::Binary(f)).await.is_err() { break },
                            WsOut::Close(c) => { closing = Some(c); break }
                        }
                    }
                    if ws.flush().await.is_err() { break; }
                    if let Some(close) = closing {
                        return close_socket(ws, close).await;
                    }
                }
                Some(WsOut::Close(close)) => return close_socket(ws, close).await,
                // The core forgot this connection (it saw the close): finish the closing handshake.
                None => return linger(ws).await,
            },
            msg = ws.next() => match msg {
                Some(Ok(Message::Binary(frame))) => report(Cmd::Frame { conn, frame }),
                Some(Ok(Message::Text(text))) => report(Cmd::Frame { conn, frame: bytes::Bytes::from(text) }),
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
                Some(Ok(Message::Close(frame))) => {
                    let close = frame.map(|f| CloseFrame::new(u16::from(f.code), f.reason.as_str()));
                    report(Cmd::Closed { conn, close });
                    return linger(ws).await;
                }
                Some(Err(WsError::Capacity(CapacityError::MessageTooLong { .. }))) => report(Cmd::TooLarge { conn }),
                Some(Err(_)) | None => {
                    report(Cmd::Closed { conn, close: None });
                    return;
                }
            },
        }
    }
    report(Cmd::Closed { conn, close: None });
}

type Ws = tokio_tungstenite::WebSocketStream<TcpStream>;

async fn close_socket(mut ws: Ws, close: Option<CloseFrame>) {
    let Some(close) = close else { return }; // dropped without a close frame
    let frame = WsCloseFrame { code: close.code.into(), reason: close.reason.into() };
    if ws.send(Message::Close(Some(frame))).await.is_ok() {
        linger(ws).await;
    }
}

/// Read until the peer finishes the close handshake (tungstenite answers its close), bounded.
async fn linger(mut ws: Ws) {
    let _ = tokio::time::timeout(CLOSE_LINGER, async { while let Some(Ok(_)) = ws.next().await {} }).await;
}
