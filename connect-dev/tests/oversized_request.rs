//! An event the event API accepts but whose executor request is over the
//! gateway's 8 MiB frame limit can never be forwarded: the run fails at once
//! with an error naming the size (found by a fresh-eyes review; before, the
//! run failed blaming a healthy worker that never saw the request).

mod support;

use std::time::Duration;

use connect_dev::{DevConfig, DevServer, RunStatus};
use support::*;

#[test]
fn a_request_too_large_to_forward_fails_the_run_naming_the_size() {
    let dev = DevServer::spawn(DevConfig::ephemeral()).expect("spawn");
    let _ws = connect(&dev, "app", &[function("app-big", "big/e", 0)]);
    dev.wait_for_function("app-big", Duration::from_secs(10)).expect("registered");

    // 5 MiB of data: the request payload (event + events) is over 8 MiB.
    let pad = "x".repeat(5 * 1024 * 1024);
    let event_id =
        dev.send_event("big/e", serde_json::json!({ "pad": pad })).expect("the event API accepts it");
    let run = dev.wait_for_run_end(&event_id, Duration::from_secs(30)).expect("run ends");
    assert_eq!(run.status, RunStatus::Failed);

    let error = run.attempts.last().and_then(|a| a.error.clone()).unwrap_or_default().to_string();
    assert!(
        !error.contains("connect_worker_stopped_responding") && !error.contains("no worker acknowledged"),
        "the worker never received the request; the error should name the size limit, got {error}"
    );
    assert!(error.to_lowercase().contains("large"), "the error should say the request is too large: {error}");
    dev.shutdown();
}
