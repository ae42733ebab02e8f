//! The worker machine driven from a plain std loop, for people who embed the
//! core in their own runtime: `std::net::TcpStream`, blocking `tungstenite`,
//! threads and channels, no async runtime.
//!
//! ```text
//! cargo run -p connect-dev &                                  # a local gateway on 8288/8289
//! cargo run -p connect-core --example blocking_worker -- http://127.0.0.1:8288 30
//! curl -s -XPOST 127.0.0.1:8288/e/key -d '{"name":"demo/hello","data":{"who":"std"}}'
//! ```
//!
//! The arguments are the API base URL and how many seconds to run before a
//! graceful shutdown. Plain `http://` and `ws://` only (no TLS here).
//!
//! The loop has the shape the crate docs describe: drain outputs, wait until
//! the next deadline or IO, feed inputs with the time they happened. Blocking
//! work (HTTP calls, dials, the app's handler) runs on helper threads that
//! report back through one channel, so the loop itself never blocks for long
//! and heartbeats go out on time whatever the handler does. Sockets are read
//! with a short timeout, which keeps the example small; a real adapter waits
//! on readiness (epoll, a reactor) instead.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use connect_core::payload::{FunctionConfig, Trigger};
use connect_core::worker::{
    ConnId, Durable, Event, HttpId, HttpRequest, HttpResponse, Output, Reply, Worker, WorkerConfig,
};
use tungstenite::client::IntoClientRequest;
use tungstenite::protocol::CloseFrame;
use tungstenite::{Message as WsMessage, WebSocket};

/// What helper threads report to the loop.
enum Input {
    Http(HttpId, Result<HttpResponse, String>),
    Dialed(ConnId, Result<WebSocket<TcpStream>, String>),
    Replied(String, Reply),
}

type Result<T, E = Box<dyn std::error::Error>> = std::result::Result<T, E>;

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let api = args.next().unwrap_or_else(|| "http://127.0.0.1:8288".into());
    let run_for = Duration::from_secs(args.next().and_then(|s| s.parse().ok()).unwrap_or(30));

    let hello = FunctionConfig::new("demo-hello", "hello", Trigger::event("demo/hello"));
    let mut config = WorkerConfig::new("demo", vec![hello], "blocking-example", SystemTime::now());
    config.api_base_url = api;
    config.sdk_language = "rust-example".into();
    let started = Instant::now();
    let mut worker = Worker::new(config, Durable::default(), started)?;

    let (tx, rx) = mpsc::channel::<Input>();
    let mut sockets: HashMap<ConnId, WebSocket<TcpStream>> = HashMap::new();
    let mut shutdown_sent = false;
    loop {
        // 1. Drain every output.
        while let Some(output) = worker.poll_output() {
            match output {
                Output::Http { id, request } => spawn_http(id, request, tx.clone()),
                Output::Connect { conn, url, subprotocol, timeout } => {
                    spawn_dial(conn, url, subprotocol, timeout, tx.clone())
                }
                Output::Send { conn, frame } => {
                    if let Some(ws) = sockets.get_mut(&conn) {
                        if let Err(e) = ws.send(WsMessage::Binary(frame)) {
                            sockets.remove(&conn);
                            worker.handle_closed(Instant::now(), conn, None);
                            eprintln!("send on {conn:?} failed: {e}");
                        }
                    }
                }
                Output::Close { conn, code, reason } => {
                    if let Some(mut ws) = sockets.remove(&conn) {
                        let frame = CloseFrame { code: code.into(), reason: reason.into() };
                        let _ = ws.close(Some(frame));
                        let _ = ws.flush();
                    }
                }
                Output::Event(Event::Invocation(req)) => spawn_handler(req, tx.clone()),
                Output::Event(Event::Closed) => {
                    println!("closed");
                    return Ok(());
                }
                Output::Event(event) => println!("event: {event:?}"),
            }
        }
        if !shutdown_sent && started.elapsed() >= run_for {
            shutdown_sent = true;
            worker.shutdown(Instant::now());
            continue;
        }

        // 2. Read whatever the sockets have (each read waits at most a few ms).
        let mut got_frames = false;
        let conns: Vec<ConnId> = sockets.keys().copied().collect();
        for conn in conns {
            let Some(ws) = sockets.get_mut(&conn) else { continue };
            match ws.read() {
                Ok(WsMessage::Binary(frame)) => {
                    got_frames = true;
                    worker.handle_frame(Instant::now(), conn, frame);
                }
                Ok(WsMessage::Text(text)) => {
                    got_frames = true;
                    worker.handle_frame(Instant::now(), conn, Bytes::copy_from_slice(text.as_bytes()));
                }
                Ok(WsMessage::Close(frame)) => {
                    sockets.remove(&conn);
                    let close = frame.map(|f| (u16::from(f.code), f.reason.to_string()));
                    worker.handle_closed(Instant::now(), conn, close);
                }
                Ok(_) => {} // ping/pong: tungstenite answers pings itself
                Err(tungstenite::Error::Io(e))
                    if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
                Err(e) => {
                    sockets.remove(&conn);
                    eprintln!("read on {conn:?} failed: {e}");
                    worker.handle_closed(Instant::now(), conn, None);
                }
            }
        }
        if got_frames {
            continue;
        }

        // 3. Wait for a helper thread until the next deadline (or a short poll
        //    interval while sockets are open), then fire due timers.
        let wait = match worker.poll_timeout() {
            Some((at, _why)) => at.saturating_duration_since(Instant::now()),
            None => Duration::from_secs(1),
        };
        let wait = if sockets.is_empty() { wait } else { wait.min(Duration::from_millis(5)) };
        match rx.recv_timeout(wait) {
            Ok(Input::Http(id, result)) => worker.handle_http_response(Instant::now(), id, result),
            Ok(Input::Dialed(conn, Ok(ws))) => {
                sockets.insert(conn, ws);
                worker.handle_connected(Instant::now(), conn);
            }
            Ok(Input::Dialed(conn, Err(e))) => worker.handle_connect_failed(Instant::now(), conn, e),
            Ok(Input::Replied(id, reply)) => {
                if let Err(e) = worker.reply(Instant::now(), &id, reply) {
                    eprintln!("reply for {id}: {e}");
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => unreachable!("the loop holds a sender"),
        }
        worker.handle_timeout(Instant::now());
    }
}

/// The app: answers `{"hello": <event data>}`. Runs on its own thread, as any
/// user code should: it can take as long as it likes.
fn spawn_handler(req: connect_core::wire::ExecutorRequest, tx: Sender<Input>) {
    std::thread::spawn(move || {
        let payload: serde_json::Value = serde_json::from_slice(req.request_payload()).unwrap_or_default();
        let body = serde_json::json!({ "hello": payload["event"]["data"] });
        println!("running {} for request {}", req.function_slug(), req.request_id());
        let _ = tx.send(Input::Replied(req.request_id().to_owned(), Reply::done(body.to_string())));
    });
}

/// Dial `ws://host:port/path` offering the subprotocol; the socket is then read
/// with a short timeout by the loop.
fn spawn_dial(conn: ConnId, url: String, subprotocol: &'static str, timeout: Duration, tx: Sender<Input>) {
    std::thread::spawn(move || {
        let dial = || -> Result<WebSocket<TcpStream>> {
            let (host, port, _) = split_url(&url, "ws://", 80)?;
            let stream = connect_tcp(&host, port, timeout)?;
            let mut request = url.as_str().into_client_request()?;
            request.headers_mut().insert("Sec-WebSocket-Protocol", subprotocol.parse()?);
            let (ws, _response) = tungstenite::client(request, stream).map_err(|e| e.to_string())?;
            ws.get_ref().set_read_timeout(Some(Duration::from_millis(2)))?;
            Ok(ws)
        };
        let _ = tx.send(Input::Dialed(conn, dial().map_err(|e| e.to_string())));
    });
}

/// One HTTP/1.1 POST, `Connection: close`, on a helper thread.
fn spawn_http(id: HttpId, request: HttpRequest, tx: Sender<Input>) {
    std::thread::spawn(move || {
        let _ = tx.send(Input::Http(id, post(&request).map_err(|e| e.to_string())));
    });
}

fn post(request: &HttpRequest) -> Result<HttpResponse> {
    let (host, port, path) = split_url(&request.url, "http://", 80)?;
    let mut stream = connect_tcp(&host, port, request.timeout)?;
    stream.set_read_timeout(Some(request.timeout))?;
    stream.set_write_timeout(Some(request.timeout))?;
    let mut head = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Length: {}\r\nConnection: close\r\n",
        request.body.len()
    );
    for (name, value) in &request.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(&request.body)?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").ok_or("no end of headers")?;
    let head = std::str::from_utf8(&raw[..split])?;
    let status = head.split(' ').nth(1).ok_or("no status")?.parse()?;
    let mut body = raw[split + 4..].to_vec();
    if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        body = dechunk(&body)?;
    }
    Ok(HttpResponse { status, body: Bytes::from(body) })
}

fn dechunk(mut raw: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = raw.windows(2).position(|w| w == b"\r\n").ok_or("bad chunk")?;
        let size = usize::from_str_radix(std::str::from_utf8(&raw[..line_end])?.trim(), 16)?;
        raw = &raw[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        out.extend_from_slice(raw.get(..size).ok_or("short chunk")?);
        raw = raw.get(size + 2..).ok_or("short chunk")?;
    }
}

/// `scheme://host:port/path` into its parts.
fn split_url(url: &str, scheme: &str, default_port: u16) -> Result<(String, u16, String)> {
    let rest = url.strip_prefix(scheme).ok_or_else(|| format!("{url}: only {scheme} URLs here"))?;
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (h.to_owned(), p.parse()?),
        None => (authority.to_owned(), default_port),
    };
    Ok((host, port, if path.is_empty() { "/".into() } else { path.into() }))
}

fn connect_tcp(host: &str, port: u16, timeout: Duration) -> Result<TcpStream> {
    use std::net::ToSocketAddrs;
    let addr = (host, port).to_socket_addrs()?.next().ok_or("no address")?;
    let stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_nodelay(true)?;
    Ok(stream)
}
