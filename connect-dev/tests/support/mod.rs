//! A minimal blocking worker for the dev server's loopback tests: the start
//! call over a hand-written HTTP/1.1 request, then the WebSocket protocol
//! with `tungstenite`, frame by frame, so each test decides what to send.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use bytes::Bytes;
use connect_core::payload::{FunctionConfig, Trigger};
use connect_core::wire::*;
use tokio_tungstenite::tungstenite::{self, Message as WsMessage, client::IntoClientRequest};

pub type Socket = tungstenite::WebSocket<TcpStream>;

/// POST `body` to `path` on `addr`; returns (status, body).
pub fn http(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    auth: Option<&str>,
    body: &[u8],
) -> (u16, Vec<u8>) {
    let mut s = TcpStream::connect(addr).expect("connect api");
    s.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    let auth = auth.map(|a| format!("Authorization: {a}\r\n")).unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Type: application/protobuf\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).expect("write");
    s.write_all(body).expect("write body");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read");
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("header end");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let status: u16 = head.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("status");
    (status, raw[split + 4..].to_vec())
}

pub fn start(dev: &connect_dev::DevServer, auth: Option<&str>) -> StartResponse {
    let (status, body) = http(dev.api_addr(), "POST", "/v0/connect/start", auth, &[]);
    assert_eq!(status, 200, "start: {}", String::from_utf8_lossy(&body));
    decode_body(Bytes::from(body), "StartResponse").expect("StartResponse")
}

/// Dial the gateway, offering the subprotocol; returns the socket after reading HELLO.
pub fn dial(url: &str) -> Socket {
    let mut req = url.into_client_request().expect("request");
    req.headers_mut().insert("Sec-WebSocket-Protocol", SUBPROTOCOL.parse().expect("header"));
    let uri: tungstenite::http::Uri = url.parse().expect("uri");
    let addr = format!("{}:{}", uri.host().expect("host"), uri.port_u16().expect("port"));
    let tcp = TcpStream::connect(addr).expect("dial gateway");
    tcp.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    let (mut ws, resp) = tungstenite::client(req, tcp).expect("upgrade");
    assert_eq!(resp.headers().get("sec-websocket-protocol").and_then(|v| v.to_str().ok()), Some(SUBPROTOCOL));
    assert_eq!(recv(&mut ws), Message::GatewayHello);
    ws
}

pub fn send(ws: &mut Socket, msg: Message) {
    let frame = msg.encode(&Limits::default()).expect("encode");
    ws.send(WsMessage::Binary(frame)).expect("send");
}

pub fn send_raw(ws: &mut Socket, frame: Vec<u8>) {
    ws.send(WsMessage::Binary(frame.into())).expect("send");
}

/// The next protocol message (panics on a close: use `recv_close` when one is expected).
pub fn recv(ws: &mut Socket) -> Message {
    loop {
        match ws.read().expect("read") {
            WsMessage::Binary(b) => return Message::decode(b, &Limits::default()).expect("decode"),
            WsMessage::Close(c) => panic!("unexpected close {c:?}"),
            _ => {}
        }
    }
}

/// Read until the gateway closes; returns (code, reason).
pub fn recv_close(ws: &mut Socket) -> Option<(u16, String)> {
    loop {
        match ws.read() {
            Ok(WsMessage::Close(c)) => return c.map(|c| (u16::from(c.code), c.reason.to_string())),
            Ok(_) => {}
            Err(_) => return None,
        }
    }
}

pub fn hello(conn: &StartResponse, app: &str, functions: &[FunctionConfig], manual_ack: bool) -> Message {
    Message::WorkerConnect(Box::new(WorkerConnectRequestData {
        connection_id: conn.connection_id.clone(),
        instance_id: "test-host".into(),
        auth_data: Some(AuthData {
            session_token: conn.session_token.clone(),
            sync_token: conn.sync_token.clone(),
        }),
        capabilities: Bytes::from_static(br#"{"trust_probe":"v1","connect":"v1"}"#),
        apps: vec![AppConfiguration {
            app_name: app.into(),
            app_version: None,
            functions: Bytes::from(serde_json::to_vec(functions).expect("json")),
            feature_observations: None,
        }],
        worker_manual_readiness_ack: manual_ack,
        system_attributes: None,
        environment: None,
        framework: "connect".into(),
        platform: None,
        sdk_version: "v0.0.0".into(),
        sdk_language: "rust-test".into(),
        started_at: None,
        max_worker_concurrency: None,
    }))
}

pub fn function(slug: &str, event: &str, retries: u32) -> FunctionConfig {
    FunctionConfig::new(slug, slug, Trigger::event(event)).with_retries(retries)
}

/// Start, dial, WORKER_CONNECT, READY (and WORKER_READY): a routable worker.
pub fn connect(dev: &connect_dev::DevServer, app: &str, functions: &[FunctionConfig]) -> Socket {
    let start = start(dev, None);
    let mut ws = dial(&start.gateway_endpoint);
    send(&mut ws, hello(&start, app, functions, true));
    let Message::GatewayConnectionReady(_) = recv(&mut ws) else { panic!("expected READY") };
    send(&mut ws, Message::WorkerReady);
    ws
}

/// Receive one executor request, ack it, reply with `body` as DONE. Returns the request.
pub fn serve_one(ws: &mut Socket, status: SdkResponseStatus, body: &str) -> GatewayExecutorRequestData {
    let req = loop {
        match recv(ws) {
            Message::GatewayExecutorRequest(r) => break *r,
            _ => continue,
        }
    };
    send(
        ws,
        Message::WorkerRequestAck(Box::new(WorkerRequestAckData {
            request_id: req.request_id.clone(),
            run_id: req.run_id.clone(),
            ..Default::default()
        })),
    );
    send(
        ws,
        Message::WorkerReply(Box::new(SdkResponse {
            request_id: req.request_id.clone(),
            status: status as i32,
            body: Bytes::from(body.to_owned()),
            system_trace_ctx: req.system_trace_ctx.clone(),
            run_id: req.run_id.clone(),
            ..Default::default()
        })),
    );
    req
}
