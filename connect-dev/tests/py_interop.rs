//! Interop with a second client no one here wrote: the Inngest Python SDK
//! worker (PyPI `inngest[connect]==0.5.19`, every dependency pinned in
//! tests/py/requirements.txt) connects to connect-dev, runs a function and a
//! step function, and fails a raising function after its retry.
//!
//! The SDK is installed into a virtualenv under the cargo target directory on
//! first use. Without `python3` (with `venv`) the test is skipped with a
//! message, except under `CI=true`, where it fails.

mod external;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use external::{Killed, forward_lines, in_ci, wait_bounded};

use connect_dev::{DevConfig, DevServer, RunStatus};
use serde_json::json;

const T: Duration = Duration::from_secs(30);

fn py_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/py")
}

/// The virtualenv's python with the pinned SDK, or `None` (skip) when Python cannot be had outside CI.
fn python() -> Option<PathBuf> {
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("py-interop-venv");
    let python = venv.join("bin/python");
    let marker = venv.join("installed-requirements.txt");
    let wanted = std::fs::read_to_string(py_dir().join("requirements.txt")).expect("requirements.txt");
    if std::fs::read_to_string(&marker).ok().as_deref() == Some(wanted.as_str()) {
        return Some(python);
    }
    let made = Command::new("python3").args(["-m", "venv"]).arg(&venv).status();
    if !made.is_ok_and(|s| s.success()) {
        assert!(!in_ci(), "CI=true but `python3 -m venv` failed: the Python interop test cannot run");
        eprintln!("SKIPPED py_interop: python3 with venv is not available");
        return None;
    }
    let mut pip = Command::new(&python)
        .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r"])
        .arg(py_dir().join("requirements.txt"))
        .spawn()
        .expect("spawn pip");
    let status = wait_bounded(&mut pip, Duration::from_secs(300)).expect("pip install finished in 5 min");
    assert!(status.success(), "pip install of tests/py/requirements.txt failed");
    std::fs::write(&marker, wanted).expect("marker");
    Some(python)
}

#[test]
fn the_inngest_python_sdk_runs_functions_through_connect_dev() {
    let Some(python) = python() else { return };
    // The Python SDK heartbeats every 10 s whatever READY says, so keep Inngest's 10 s interval.
    let dev = DevServer::spawn(DevConfig::ephemeral()).expect("spawn dev server");
    let mut child = Command::new(python)
        .arg("interop_worker.py")
        .current_dir(py_dir())
        .env("DEV_API_URL", dev.api_url())
        .env_remove("INNGEST_SIGNING_KEY")
        .env_remove("INNGEST_DEV")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn the Python worker");
    let _lines = forward_lines(child.stdout.take().expect("stdout"), "python");
    let _worker = Killed(child);
    dev.wait_for_function("py-interop-hello", T).expect("the Python app registered its functions");
    assert_eq!(dev.connections().expect("connections")[0].sdk, "py:0.5.19");

    let hello = dev.send_event("py/hello", json!({ "name": "Ada" })).expect("event");
    let run = dev.wait_for_run_end(&hello, T).expect("hello run ends");
    assert_eq!(
        (run.status, run.output.clone()),
        (RunStatus::Completed, Some(json!({ "greeting": "hello Ada" })))
    );

    let boom = dev.send_event("py/boom", json!({})).expect("event");
    let run = dev.wait_for_run_end(&boom, T).expect("boom run ends");
    assert_eq!((run.status, run.attempts.len()), (RunStatus::Failed, 2), "{run:?}");
    assert_eq!(run.output.as_ref().and_then(|o| o["message"].as_str()), Some("boom on attempt 1"));

    let stepped = dev.send_event("py/steps", json!({ "start": 41 })).expect("event");
    let run = dev.wait_for_run_end(&stepped, T).expect("steps run ends");
    assert_eq!(run.status, RunStatus::Completed, "{run:?}");
    assert_eq!(run.output, Some(json!({ "a": 41, "b": 42 })));
    dev.shutdown();
}
