//! SIGTERM starts a graceful shutdown. In its own test binary, because the
//! signal goes to the whole process.

use std::time::Duration;

use connect_async_std::{Function, Worker};
use connect_dev::{DevConfig, DevServer};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(30);

#[cfg(unix)]
#[test]
fn sigterm_shuts_the_worker_down_gracefully() {
    let dev = DevServer::spawn(DevConfig {
        heartbeat_interval: Duration::from_millis(100),
        ..DevConfig::ephemeral()
    })
    .expect("connect-dev starts");
    let w = Worker::builder("sig")
        .api_base_url(dev.api_url())
        .dev(true)
        .function(Function::new("f").on_event("sig/e"), |_| async { Ok(json!(null)) })
        .connect();
    let w = async_std::task::block_on(w).expect("connects");
    within(w.ready()).expect("ready in time").expect("ready");
    let status = std::process::Command::new("kill")
        .args(["-TERM", &std::process::id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
    within(w.closed()).expect("closed in time").expect("clean close");
}

fn within<T>(fut: impl std::future::Future<Output = T>) -> Result<T, async_std::future::TimeoutError> {
    async_std::task::block_on(async_std::future::timeout(WAIT, fut))
}
