//! TLS is verified by default, in every adapter: a worker whose start call goes
//! to an `https://` API, or whose gateway is a `wss://` URL, served with a
//! self-signed certificate (tests/fixtures, CN and SAN localhost), refuses the
//! certificate: the TLS server never completes a handshake, the worker logs a
//! certificate error, and it never becomes ready.

use std::io::Write;
use std::net::TcpListener;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use connect_adapter::Function;
use connect_chaos::workers::{self, Adapter, Spec};
use connect_core::worker::ConnectionState;
use connect_dev::{DevConfig, DevServer};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::json;

/// A TLS listener that reports how each handshake ended.
fn self_signed_listener() -> (u16, mpsc::Receiver<String>) {
    let cert = CertificateDer::from(include_bytes!("fixtures/self-signed-cert.der").to_vec());
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        include_bytes!("fixtures/self-signed-key.der").to_vec(),
    ));
    let config =
        rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_no_client_auth()
            .with_single_cert(vec![cert], key)
            .expect("certificate");
    let config = Arc::new(config);
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for tcp in listener.incoming() {
            let Ok(mut tcp) = tcp else { continue };
            let _ = tcp.set_read_timeout(Some(Duration::from_secs(5)));
            let mut conn = rustls::ServerConnection::new(config.clone()).expect("server connection");
            let outcome = loop {
                match conn.complete_io(&mut tcp) {
                    Ok(_) if !conn.is_handshaking() => break "handshake completed".to_owned(),
                    Ok((0, 0)) => break "connection closed during the handshake".to_owned(),
                    Ok(_) => continue,
                    Err(e) => break e.to_string(),
                }
            };
            if tx.send(outcome).is_err() {
                return;
            }
        }
    });
    (port, rx)
}

fn spec(app: &str, api_url: String, gateway_url: String) -> Spec {
    Spec {
        app: app.into(),
        api_url,
        gateway_url,
        function: Function::new("f").on_event("tls/f"),
        body: Arc::new(|_| Ok(json!(null))),
        handler_threads: 1,
        seed: 1,
        tune: workers::tune,
    }
}

#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Buffer {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|p| p.into_inner())).into_owned()
    }
}

/// Start a worker with a thread-local subscriber (which its connection thread inherits) writing to a buffer.
fn start_logged(adapter: Adapter, spec: Spec) -> (workers::Running, Buffer) {
    let logs = Buffer::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::DEBUG)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    (workers::start(adapter, spec), logs)
}

fn assert_refused(
    adapter: Adapter,
    what: &str,
    outcomes: &mpsc::Receiver<String>,
    worker: &workers::Running,
    logs: &Buffer,
) {
    let outcome = outcomes.recv_timeout(Duration::from_secs(20)).expect("the worker tried to connect");
    assert_ne!(
        outcome,
        "handshake completed",
        "{}: {what}: an untrusted certificate was accepted",
        adapter.name()
    );
    assert!(
        worker.ready(Duration::from_millis(500)).is_err(),
        "{}: ready over an untrusted {what}",
        adapter.name()
    );
    assert_ne!(worker.state(), ConnectionState::Active);
    let text = logs.text();
    assert!(
        text.to_lowercase().contains("certificate"),
        "{}: {what}: no certificate error in the worker's logs (the server saw: {outcome}):\n{text}",
        adapter.name()
    );
}

fn untrusted_gateway_is_refused(adapter: Adapter) {
    let dev = DevServer::spawn(DevConfig { seed: Some(2), ..DevConfig::ephemeral() }).expect("dev");
    let (port, outcomes) = self_signed_listener();
    let app = format!("tls-wss-{}", adapter.name());
    let (worker, logs) =
        start_logged(adapter, spec(&app, dev.api_url(), format!("wss://localhost:{port}/v0/connect")));
    assert_refused(adapter, "wss:// gateway", &outcomes, &worker, &logs);
    worker.stop(Duration::from_secs(10)).expect("stops");
}

fn untrusted_api_is_refused(adapter: Adapter) {
    let (port, outcomes) = self_signed_listener();
    let app = format!("tls-https-{}", adapter.name());
    let (worker, logs) = start_logged(
        adapter,
        spec(&app, format!("https://localhost:{port}"), "ws://127.0.0.1:9/v0/connect".into()),
    );
    assert_refused(adapter, "https:// start call", &outcomes, &worker, &logs);
    worker.stop(Duration::from_secs(10)).expect("stops");
}

#[test]
fn tokio_refuses_a_self_signed_gateway() {
    untrusted_gateway_is_refused(Adapter::Tokio);
}

#[test]
fn blocking_refuses_a_self_signed_gateway() {
    untrusted_gateway_is_refused(Adapter::Blocking);
}

#[test]
fn async_std_refuses_a_self_signed_gateway() {
    untrusted_gateway_is_refused(Adapter::AsyncStd);
}

#[test]
fn tokio_refuses_a_self_signed_api() {
    untrusted_api_is_refused(Adapter::Tokio);
}

#[test]
fn blocking_refuses_a_self_signed_api() {
    untrusted_api_is_refused(Adapter::Blocking);
}

#[test]
fn async_std_refuses_a_self_signed_api() {
    untrusted_api_is_refused(Adapter::AsyncStd);
}
