//! SIGTERM starts a graceful shutdown. In its own test binary, because the
//! signal goes to the whole process.

mod common;

use std::time::Duration;

use common::{WAIT, dev, runtime};
use connect_tokio::{Function, Worker};
use serde_json::json;

#[cfg(unix)]
#[test]
fn sigterm_shuts_the_worker_down_gracefully() {
    let dev = dev(Duration::from_millis(100), Duration::from_millis(200));
    runtime(2).block_on(async {
        let w = Worker::builder("sig")
            .api_base_url(dev.api_url())
            .dev(true)
            .function(Function::new("f").on_event("sig/e"), |_| async { Ok(json!(null)) })
            .connect()
            .await
            .expect("connects");
        tokio::time::timeout(WAIT, w.ready()).await.expect("in time").expect("ready");
        let status = std::process::Command::new("kill")
            .args(["-TERM", &std::process::id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
        tokio::time::timeout(WAIT, w.closed()).await.expect("closed in time").expect("clean close");
    });
}
