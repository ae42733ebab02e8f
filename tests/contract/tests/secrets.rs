//! Signing keys never reach a log record or `Debug` output, whatever the
//! adapter: a whole worker run with signing keys (a rotated-out primary key
//! that the API refuses, then the fallback key), logged at TRACE by every
//! thread, the dev server's and the `log` crate's records (ureq, tungstenite)
//! included: neither key, raw or hashed, appears in the builder's `Debug` or
//! in any log record of ours. Once per adapter, one test each.
//!
//! One known exception, pinned here so that it cannot grow: at TRACE,
//! tungstenite (the WebSocket library under every adapter) dumps every
//! frame's bytes, and WORKER_CONNECT carries the hashed key as
//! `auth_data.sync_token`, as Inngest's protocol requires (PROTOCOL.md 2.1).
//! Log `tungstenite=debug` or quieter when running at TRACE. In its own test
//! binary, because it installs the global subscriber.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use connect_adapter::Function;
use connect_contract_tests::adapters::{AsyncStd, Blocking, Smol, Tokio};
use connect_contract_tests::{Adapter, Spec, WAIT};
use connect_core::auth::SigningKey;
use connect_dev::{DevConfig, DevServer, RunStatus};
use serde_json::json;

/// The key the API knows.
const KEY: &str = "signkey-test-5c9f1e2d3b4a69788776655443322110ffeeddccbbaa99887766554433221100";
/// A rotated-out key, configured as the primary: refused with 401, then the fallback is used.
const OLD_KEY: &str = "signkey-test-0011223344556677889900aabbccddeeff00112233445566778899aabbccddee";

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

/// Every record of every test in this binary, at TRACE.
fn logs() -> &'static Buffer {
    static LOGS: OnceLock<Buffer> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .with_max_level(tracing::Level::TRACE)
            .try_init()
            .expect("the only subscriber in this binary");
        buffer
    })
}

fn secrets(raw: &str) -> Vec<String> {
    let key = SigningKey::new(raw).expect("key");
    let strip = |s: &str| s.strip_prefix(key.prefix()).unwrap_or(s).to_owned();
    vec![strip(key.expose_raw()), strip(key.hashed().expose())]
}

fn spec<A: Adapter>(dev: &DevServer) -> Spec {
    let mut spec = Spec::new(dev, &format!("secrets-{}", A::NAME)).function(
        Function::new("hello").on_event(format!("secrets/{}", A::NAME)),
        |ctx| {
            std::thread::sleep(Duration::from_millis(500)); // long enough for lease extensions
            Ok(json!({ "n": ctx.event().data["n"] }))
        },
    );
    spec.signing_key = Some(OLD_KEY.into());
    spec.signing_key_fallback = Some(KEY.into());
    spec
}

fn signing_keys_never_reach_the_logs_or_debug_output<A: Adapter>() {
    let buffer = logs();
    let dev = DevServer::spawn(DevConfig {
        heartbeat_interval: Duration::from_millis(100),
        extend_lease_interval: Duration::from_millis(200),
        signing_key: Some(SigningKey::new(KEY).expect("key")),
        seed: Some(11),
        ..DevConfig::ephemeral()
    })
    .expect("dev");
    let debug = A::builder_debug(spec::<A>(&dev));
    let worker = A::start(spec::<A>(&dev));
    worker.ready(WAIT).expect("ready with the fallback key");
    let event = dev.send_event(&format!("secrets/{}", A::NAME), json!({ "n": 1 })).expect("event");
    let run = dev.wait_for_run_end(&event, WAIT).expect("run ends");
    assert_eq!(run.status, RunStatus::Completed, "{run:?}");
    worker.shutdown();
    worker.closed(WAIT).expect("closed");
    drop(dev);

    let logs = String::from_utf8_lossy(&buffer.0.lock().unwrap_or_else(|p| p.into_inner())).into_owned();
    let ours = format!("app=secrets-{}", A::NAME);
    assert!(
        logs.lines().any(|l| l.contains(&ours) && (l.contains("TRACE") || l.contains("DEBUG"))),
        "captured this worker's detailed logs:\n{logs}"
    );
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

#[test]
fn tokio_signing_keys_never_reach_the_logs_or_debug_output() {
    signing_keys_never_reach_the_logs_or_debug_output::<Tokio>();
}

#[test]
fn blocking_signing_keys_never_reach_the_logs_or_debug_output() {
    signing_keys_never_reach_the_logs_or_debug_output::<Blocking>();
}

#[test]
fn async_std_signing_keys_never_reach_the_logs_or_debug_output() {
    signing_keys_never_reach_the_logs_or_debug_output::<AsyncStd>();
}

#[test]
fn smol_signing_keys_never_reach_the_logs_or_debug_output() {
    signing_keys_never_reach_the_logs_or_debug_output::<Smol>();
}
