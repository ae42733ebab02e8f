//! The connection thread logs through the subscriber that was current where
//! the worker was built, even a thread-local one, inside the worker's span.
//! In its own test binary so that no other test's logs mix in.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{WAIT, dev, worker};
use connect_tokio::Function;
use serde_json::json;

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

#[test]
fn connection_thread_logs_reach_the_builders_thread_local_subscriber() {
    let dev = dev(Duration::from_millis(100), Duration::from_millis(200));
    let buffer = Buffer::default();
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_thread_names(true)
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .finish();
    // Thread-local: only this thread (and what the worker propagates) sees it.
    let _guard = tracing::subscriber::set_default(subscriber);
    // A current-thread runtime, so that the test's own code stays on this thread.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("rt");
    rt.block_on(async {
        let w = worker(&dev, "trace-app")
            .instance_id("trace-1")
            .function(Function::new("f").on_event("t/e"), |_| async { Ok(json!(null)) })
            .connect()
            .await
            .expect("connects");
        tokio::time::timeout(WAIT, w.ready()).await.expect("in time").expect("ready");
        w.shutdown();
        tokio::time::timeout(WAIT, w.closed()).await.expect("in time").expect("closed");
    });
    let logs = String::from_utf8(buffer.0.lock().expect("lock").clone()).expect("utf8");
    let line = logs
        .lines()
        .find(|l| l.contains("connection active"))
        .unwrap_or_else(|| panic!("no 'connection active' record in:\n{logs}"));
    assert!(line.contains("connect-trace-app"), "logged on the connection thread: {line}");
    assert!(
        line.contains("app=trace-app") && line.contains("instance=trace-1"),
        "inside the worker's span: {line}"
    );
}
