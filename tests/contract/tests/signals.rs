//! Signals, for every adapter: SIGTERM shuts the worker down gracefully; a
//! SIGINT starts the same drain and logs at INFO what it waits for (the runs
//! in flight, the deadline); a second SIGINT during the drain quits at once,
//! as a default SIGINT would (the shell sees "killed by SIGINT"), even while
//! the only handler thread is stuck in a handler.
//!
//! A signal goes to the whole process, and the last case ends it, so each
//! case runs in a child process: this test binary started again with
//! `CHILD` set, running only [`child`]. The parent reads the child's log
//! lines (INFO, on stdout) and sends the signals when the child is ready.

#![cfg(unix)]

use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use connect_adapter::Function;
use connect_contract_tests::adapters::{AsyncStd, Blocking, Smol, Tokio};
use connect_contract_tests::{Adapter, Gate, Spec, WAIT, dev};
use connect_dev::{ConnStatus, DevServer};
use serde_json::json;

/// Set in a child: `<adapter>:<case>`.
const CHILD: &str = "CONNECT_CONTRACT_SIGNALS_CHILD";
/// Set in a child: the API URL of the parent's dev server (the parent sees
/// what reached the gateway after the child process is gone).
const API: &str = "CONNECT_CONTRACT_SIGNALS_API";
const READY: &str = "CHILD READY";
const CLOSED: &str = "CHILD CLOSED";
const RUNNING: &str = "CHILD RUNNING";
const SIGINT: i32 = 2;

/// One child at a time: each runs a dev server and a worker.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

#[derive(Clone, Copy, PartialEq, Eq)]
enum Case {
    /// No run in flight; SIGTERM; the worker closes and the child exits 0.
    Sigterm,
    /// A run that never ends; SIGINT (drain), then SIGINT again (quit).
    SigintTwice,
}

impl Case {
    fn name(self) -> &'static str {
        match self {
            Case::Sigterm => "sigterm",
            Case::SigintTwice => "sigint-twice",
        }
    }
}

/// The child's side (a no-op in the parent): a worker with signal handling
/// on, optionally a run stuck in its handler, then wait for the worker to close.
#[test]
fn child() {
    let Ok(what) = std::env::var(CHILD) else { return };
    let (adapter, case) = what.split_once(':').expect("adapter:case");
    let case = if case == Case::Sigterm.name() { Case::Sigterm } else { Case::SigintTwice };
    match adapter {
        "tokio" => run_child::<Tokio>(case),
        "blocking" => run_child::<Blocking>(case),
        "async_std" => run_child::<AsyncStd>(case),
        "smol" => run_child::<Smol>(case),
        other => panic!("unknown adapter {other}"),
    }
}

fn run_child<A: Adapter>(case: Case) {
    tracing_subscriber::fmt()
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .with_writer(std::io::stdout)
        .init();
    let api = std::env::var(API).expect("the parent's dev server");
    let started = Gate::default();
    let running = started.clone();
    let mut spec = Spec::at(api, "sig").function(Function::new("stuck").on_event("sig/stuck"), move |_| {
        running.open();
        loop {
            std::thread::park(); // never returns: only quitting ends this run
        }
    });
    spec.handle_signals = true;
    // One handler thread, which the stuck run keeps: a signal must be heard
    // even when every thread of the user's runtime is busy in a handler.
    spec.handler_threads = 1;
    let w = A::start(spec);
    w.ready(WAIT).expect("ready");
    if case == Case::SigintTwice {
        // The parent sends the event once it reads READY.
        println!("{READY}");
        started.wait();
        println!("{RUNNING}");
    }
    if case == Case::Sigterm {
        println!("{READY}");
    }
    w.closed(WAIT).expect("closed gracefully");
    println!("{CLOSED}");
}

/// The parent's side: run `case` in a child, signalling it when its log says
/// so; returns how it ended and everything it printed.
fn in_child<A: Adapter>(case: Case) -> (ExitStatus, String, DevServer) {
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let dev = dev(Duration::from_millis(200), Duration::from_millis(500));
    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args(["--exact", "child", "--nocapture", "--test-threads", "1"])
        .env(CHILD, format!("{}:{}", A::NAME, case.name()))
        .env(API, dev.api_url())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("child starts");
    let pid = child.id().to_string();
    let mut reaper = KillOnDrop { pid: pid.clone(), exited: false };
    let stdout = child.stdout.take().expect("stdout");
    let (line_tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = line_tx.send(line);
        }
    });
    let (exit_tx, exited) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = exit_tx.send(child.wait());
    });
    let signal = |sig: &str| {
        let status = Command::new("kill").args([sig, &pid]).status().expect("kill runs");
        assert!(status.success(), "kill {sig} {pid}");
    };
    let mut seen = Vec::new();
    wait_for(&lines, &mut seen, READY);
    match case {
        Case::Sigterm => signal("-TERM"),
        Case::SigintTwice => {
            dev.send_event("sig/stuck", json!({})).expect("event");
            wait_for(&lines, &mut seen, RUNNING);
            signal("-INT");
            wait_for(&lines, &mut seen, "shutting down: waiting for 1 run in flight");
            signal("-INT");
        }
    }
    let status = exited.recv_timeout(WAIT).expect("the child ends in time").expect("wait");
    reaper.exited = true;
    // The rest of its output: the reader ends with the child's stdout.
    let until = Instant::now() + WAIT;
    while let Ok(line) = lines.recv_timeout(until.saturating_duration_since(Instant::now())) {
        seen.push(line);
    }
    (status, seen.join("\n"), dev)
}

/// Kills the child if the parent gives up on it (a failed assertion), so
/// that a stuck child does not outlive the test.
struct KillOnDrop {
    pid: String,
    exited: bool,
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if !self.exited {
            let _ = Command::new("kill").args(["-KILL", &self.pid]).status();
        }
    }
}

/// Read lines until one contains `what` (bounded by `WAIT`).
fn wait_for(lines: &Receiver<String>, seen: &mut Vec<String>, what: &str) {
    let until = Instant::now() + WAIT;
    loop {
        match lines.recv_timeout(until.saturating_duration_since(Instant::now())) {
            Ok(line) => {
                let found = line.contains(what);
                seen.push(line);
                if found {
                    return;
                }
            }
            Err(_) => panic!("the child never printed {what:?}:\n{}", seen.join("\n")),
        }
    }
}

fn sigterm_shuts_the_worker_down_gracefully<A: Adapter>() {
    let (status, out, dev) = in_child::<A>(Case::Sigterm);
    assert!(status.success(), "{status:?}\n{out}");
    assert!(out.contains("SIGTERM received: shutting down gracefully"), "{out}");
    assert!(!out.contains("press Ctrl-C again"), "the Ctrl-C hint is for SIGINT only: {out}");
    assert!(out.contains("shutting down: nothing in flight, closing"), "{out}");
    assert!(out.contains(CLOSED), "{out}");
    // The process exited right after `closed()` returned: the close frame was
    // out by then, so the gateway heard why the worker left (not a dropped socket).
    let conns = dev
        .wait_for_connections_where(|c| c.iter().all(|c| c.status == ConnStatus::Disconnected), WAIT)
        .expect("the gateway saw the worker go");
    assert_eq!(conns[0].disconnect_reason.as_deref(), Some("WORKER_SHUTDOWN"), "{:?}", conns[0]);
}

fn a_second_sigint_during_the_drain_quits_at_once<A: Adapter>() {
    let (status, out, _dev) = in_child::<A>(Case::SigintTwice);
    assert_eq!(status.signal(), Some(SIGINT), "ended as a default SIGINT ends a process: {status:?}\n{out}");
    assert!(
        out.contains("SIGINT received: shutting down gracefully (press Ctrl-C again to quit at once)"),
        "{out}"
    );
    let drain = out.lines().find(|l| l.contains("shutting down: waiting for")).unwrap_or_default();
    assert!(drain.contains(" INFO "), "logged at INFO: {drain}");
    assert!(
        drain.contains(
            "waiting for 1 run in flight and 0 replies to be acknowledged, for at most 1m0s (until 2"
        ),
        "what the drain waits for, and the deadline: {drain}"
    );
    assert!(out.contains("second SIGINT during the graceful shutdown: quitting now"), "{out}");
    assert!(!out.contains(CLOSED), "quit before the drain ended: {out}");
}

macro_rules! per_adapter {
    ($($module:ident: $adapter:ty),* $(,)?) => {
        $(
            mod $module {
                #[test]
                fn sigterm_shuts_the_worker_down_gracefully() {
                    super::sigterm_shuts_the_worker_down_gracefully::<$adapter>();
                }

                #[test]
                fn a_second_sigint_during_the_drain_quits_at_once() {
                    super::a_second_sigint_during_the_drain_quits_at_once::<$adapter>();
                }
            }
        )*
    };
}

per_adapter!(tokio: super::Tokio, blocking: super::Blocking, async_std: super::AsyncStd, smol: super::Smol);
