//! A whole worker run with signing keys (a rotated-out primary key that the
//! API refuses, then the fallback key), logged at TRACE by every thread, the
//! dev server's and the `log` crate's records (ureq, tungstenite) included:
//! neither key, raw or hashed, appears in the builder's `Debug` or in any log
//! record of ours.
//!
//! One known exception, pinned here so that it cannot grow: at TRACE,
//! tungstenite (the WebSocket library) dumps every frame's bytes, and
//! WORKER_CONNECT carries the hashed key as `auth_data.sync_token`, as
//! Inngest's protocol requires (PROTOCOL.md 2.1). Log `tungstenite=debug` or
//! quieter when running at TRACE. In its own test binary, because it installs
//! the global subscriber.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{WAIT, runtime};
use connect_core::auth::SigningKey;
use connect_dev::{DevConfig, DevServer, RunStatus};
use connect_tokio::{Function, Worker};
use serde_json::json;

/// The key the API knows.
const KEY: &str = "signkey-test-5c9f1e2d3b4a69788776655443322110ffeeddccbbaa99887766554433221100";
/// A rotated-out key, configured as the primary: refused with 401, then the fallback is used.
const OLD_KEY: &str = "signkey-test-0011223344556677889900aabbccddeeff00112233445566778899aabbccddee";

#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn secrets(raw: &str) -> Vec<String> {
    let key = SigningKey::new(raw).expect("key");
    let strip = |s: &str| s.strip_prefix(key.prefix()).unwrap_or(s).to_owned();
    vec![strip(key.expose_raw()), strip(key.hashed().expose())]
}

#[test]
fn signing_keys_never_reach_the_logs_or_debug_output() {
    let buffer = Buffer::default();
    let writer = buffer.clone();
    tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::TRACE)
        .try_init()
        .expect("the only subscriber in this binary");

    let dev = DevServer::spawn(DevConfig {
        heartbeat_interval: Duration::from_millis(100),
        extend_lease_interval: Duration::from_millis(200),
        signing_key: Some(SigningKey::new(KEY).expect("key")),
        seed: Some(11),
        ..DevConfig::ephemeral()
    })
    .expect("dev");
    let rt = runtime(2);
    let builder = Worker::builder("secrets")
        .api_base_url(dev.api_url())
        .signing_key(OLD_KEY)
        .signing_key_fallback(KEY)
        .handle_signals(false)
        .seed(3)
        .function(Function::new("hello").on_event("secrets/hello"), |ctx| async move {
            tokio::time::sleep(Duration::from_millis(500)).await; // long enough for lease extensions
            Ok(json!({ "n": ctx.event().data["n"] }))
        });
    let debug = format!("{builder:?} {builder:#?}");
    let client = dev.client();
    rt.block_on(async {
        let worker = builder.connect().await.expect("connects");
        tokio::time::timeout(WAIT, worker.ready())
            .await
            .expect("in time")
            .expect("ready with the fallback key");
        let event = client.send_event("secrets/hello", json!({ "n": 1 })).await.expect("event");
        let run = client.wait_for_run_end(&event, WAIT).await.expect("run ends");
        assert_eq!(run.status, RunStatus::Completed, "{run:?}");
        worker.shutdown();
        tokio::time::timeout(WAIT, worker.closed()).await.expect("in time").expect("closed");
    });
    drop(dev);

    let logs = String::from_utf8_lossy(&buffer.0.lock().expect("lock")).into_owned();
    assert!(logs.contains("TRACE") || logs.contains("DEBUG"), "captured the detailed logs:\n{logs}");
    let frame_dump =
        |line: &str| line.contains(" tungstenite::protocol: ") && line.contains(" frame: Frame {");
    for raw in [KEY, OLD_KEY] {
        for secret in secrets(raw) {
            for line in logs.lines().filter(|l| l.contains(&secret)) {
                assert!(frame_dump(line), "a signing key secret is in a log record:\n{line}");
            }
            assert!(!debug.contains(&secret), "a signing key secret is in the builder's Debug: {debug}");
        }
    }
}
