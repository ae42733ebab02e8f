//! One WebSocket: dialled in blocking mode on a helper thread (TCP connect,
//! TLS, upgrade, all bounded by the machine's timeout), then switched to
//! non-blocking and owned by the connection thread, which reads it when mio
//! says it is readable and flushes it when it is writable.

use std::io::ErrorKind;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use connect_adapter::session::FrameSink;
use connect_core::wire::Limits;
use connect_core::worker::ConnId;
use tungstenite::client::IntoClientRequest;
use tungstenite::http::HeaderValue;
use tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

pub(crate) type IoEvent = connect_adapter::session::IoEvent<Conn>;

/// An open WebSocket. It is also the pump's [`FrameSink`] for it: frames are
/// written in place (into tungstenite's buffer, flushed as far as the socket
/// takes them), so nothing but the connection thread ever touches it.
#[derive(Debug)]
pub(crate) struct Conn {
    pub id: ConnId,
    ws: WebSocket<MaybeTlsStream<TcpStream>>,
    /// A second handle on the same kernel socket, used only to register it
    /// with mio (tungstenite owns the stream itself).
    registration: mio::net::TcpStream,
    /// Where `close` hands the socket back to the pump, which keeps reading
    /// it until the peer answers the close frame.
    retired: mpsc::Sender<Conn>,
    /// A write failed: the pump reports the connection closed.
    pub broken: bool,
    /// Registered with the pump's poll once (never again after a deregistration).
    registered: bool,
}

/// Dial `url` offering `subprotocol`, all within `timeout`. Blocking: runs on
/// a helper thread, never on the connection thread.
pub(crate) fn dial(
    id: ConnId,
    url: &str,
    subprotocol: &'static str,
    timeout: Duration,
    limits: Limits,
    retired: mpsc::Sender<Conn>,
) -> Result<Conn, String> {
    let deadline = Instant::now() + timeout;
    let remaining = || deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(1));
    let mut request = url.into_client_request().map_err(|e| format!("bad gateway URL {url:?}: {e}"))?;
    request.headers_mut().insert("Sec-WebSocket-Protocol", HeaderValue::from_static(subprotocol));
    let uri = request.uri();
    let host = uri.host().ok_or_else(|| format!("no host in {url:?}"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port = uri.port_u16().unwrap_or(if uri.scheme_str() == Some("wss") { 443 } else { 80 });
    let addrs: Vec<SocketAddr> =
        (host, port).to_socket_addrs().map_err(|e| format!("cannot resolve {host}: {e}"))?.collect();
    let mut last_error = format!("{host} has no address");
    let mut stream = None;
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, remaining()) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last_error = format!("connect to {addr}: {e}"),
        }
    }
    let stream = stream.ok_or(last_error)?;
    let io = |e: std::io::Error| e.to_string();
    stream.set_nodelay(true).map_err(io)?;
    stream.set_read_timeout(Some(remaining())).map_err(io)?;
    stream.set_write_timeout(Some(remaining())).map_err(io)?;
    let handle = stream.try_clone().map_err(io)?;
    let config = WebSocketConfig::default()
        .max_message_size(Some(limits.max_recv_frame))
        .max_frame_size(Some(limits.max_recv_frame));
    let (ws, _response) = tungstenite::client_tls_with_config(request, stream, Some(config), None)
        .map_err(|e| e.to_string())?;
    if Instant::now() > deadline {
        return Err(format!("WebSocket upgrade timed out after {timeout:?}"));
    }
    // O_NONBLOCK belongs to the socket, so this switches `ws`'s stream too.
    handle.set_nonblocking(true).map_err(io)?;
    let registration = mio::net::TcpStream::from_std(handle);
    Ok(Conn { id, ws, registration, retired, broken: false, registered: false })
}

impl Conn {
    pub fn register(&mut self, registry: &mio::Registry) -> std::io::Result<()> {
        self.registered = true;
        let token = mio::Token(self.id.0 as usize);
        registry.register(&mut self.registration, token, mio::Interest::READABLE | mio::Interest::WRITABLE)
    }

    pub fn is_registered(&self) -> bool {
        self.registered
    }

    pub fn deregister(&mut self, registry: &mio::Registry) {
        let _ = registry.deregister(&mut self.registration);
    }

    /// Read every message the socket has (mio is edge-triggered: stop only
    /// at `WouldBlock`). Returns false once the connection is over, after
    /// pushing its `Closed`.
    pub fn read_ready(&mut self, out: &mut Vec<IoEvent>) -> bool {
        loop {
            match self.ws.read() {
                Ok(Message::Binary(b)) => out.push(IoEvent::Frame(self.id, b)),
                Ok(Message::Text(t)) => {
                    out.push(IoEvent::Frame(self.id, Bytes::copy_from_slice(t.as_bytes())))
                }
                Ok(Message::Close(frame)) => {
                    // tungstenite queued the answer; send it if the socket takes it.
                    let _ = self.ws.flush();
                    let close = frame.map(|f| (u16::from(f.code), f.reason.to_string()));
                    out.push(IoEvent::Closed(self.id, close));
                    return false;
                }
                Ok(_) => {} // ping/pong: tungstenite queues the pong, flushed below
                Err(tungstenite::Error::Io(e)) if e.kind() == ErrorKind::WouldBlock => {
                    self.flush();
                    if self.broken {
                        out.push(IoEvent::Closed(self.id, None));
                    }
                    return !self.broken;
                }
                Err(e) => {
                    tracing::debug!(conn = self.id.0, "socket closed: {e}");
                    out.push(IoEvent::Closed(self.id, None));
                    return false;
                }
            }
        }
    }

    /// Write out what tungstenite has buffered, as far as the socket takes
    /// it; the rest goes when mio reports the socket writable.
    pub fn flush(&mut self) {
        match self.ws.flush() {
            Ok(()) => {}
            Err(tungstenite::Error::Io(e)) if e.kind() == ErrorKind::WouldBlock => {}
            Err(e) => {
                tracing::debug!(conn = self.id.0, "write failed: {e}");
                self.broken = true;
            }
        }
    }

    /// After our close frame: read and discard until the peer's answer ends
    /// the connection. Returns true when it is over.
    pub fn drain_closing(&mut self) -> bool {
        loop {
            match self.ws.read() {
                Ok(_) => {}
                Err(tungstenite::Error::Io(e)) if e.kind() == ErrorKind::WouldBlock => {
                    self.flush();
                    return self.broken;
                }
                Err(_) => return true,
            }
        }
    }
}

impl FrameSink for Conn {
    fn send(&mut self, frame: Bytes) {
        match self.ws.write(Message::Binary(frame)) {
            Ok(()) => {}
            Err(tungstenite::Error::Io(e)) if e.kind() == ErrorKind::WouldBlock => {}
            Err(e) => {
                // A full write buffer means the peer stopped reading long ago.
                tracing::debug!(conn = self.id.0, "write failed: {e}");
                self.broken = true;
            }
        }
    }

    fn close(mut self, code: u16, reason: String) {
        let _ = self.ws.close(Some(CloseFrame { code: code.into(), reason: reason.into() }));
        self.flush();
        let retired = self.retired.clone();
        let _ = retired.send(self);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tungstenite::handshake::server::{Request, Response};

    /// The gateway socket has Nagle's algorithm off, so a frame written right
    /// after another (a reply after its request's ACK) never waits for the
    /// peer's delayed ACK.
    #[test]
    fn the_gateway_socket_has_nodelay() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("ws://{}/v0/connect", listener.local_addr().expect("addr"));
        let server = std::thread::spawn(move || {
            let (stream, _) = listener.accept().expect("accept");
            // The error type is tungstenite's, so its size is not ours to choose.
            #[allow(clippy::result_large_err)]
            let with_protocol = |_: &Request, mut resp: Response| {
                resp.headers_mut().insert("Sec-WebSocket-Protocol", HeaderValue::from_static("test"));
                Ok(resp)
            };
            tungstenite::accept_hdr(stream, with_protocol).expect("upgrade")
        });
        let (retired, _) = mpsc::channel();
        let conn =
            dial(ConnId(1), &url, "test", Duration::from_secs(10), Limits::default(), retired).expect("dial");
        assert!(conn.registration.nodelay().expect("getsockopt"));
        drop(server.join());
    }
}
