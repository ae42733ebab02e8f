//! Resource flatness: everything spawned for a connection dies with it.
//!
//! The worker runs in this process; connect-dev and the proxy run in a child
//! process (this same program, `serve-dev`), so that the figures are the
//! worker's alone. The child kills every proxied connection on command and
//! answers once a new connection of the worker is ready. After a warm-up, the
//! process's threads (`/proc/self/task`), open file descriptors
//! (`/proc/self/fd`) and resident memory (`VmRSS`) are read, the reconnects
//! forced, and the same figures read again.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use connect_adapter::Function;
use connect_dev::{ConnStatus, DevConfig, DevServer};
use serde_json::json;

use crate::proxy::Proxy;
use crate::workers::{self, Adapter, Spec};

/// Threads, fds and RSS of this process.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Resources {
    pub threads: usize,
    pub fds: usize,
    pub rss_kb: u64,
}

impl Resources {
    pub fn now() -> Resources {
        let count = |dir| std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0);
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let rss_kb = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0);
        Resources { threads: count("/proc/self/task"), fds: count("/proc/self/fd"), rss_kb }
    }
}

#[derive(Clone, Debug)]
pub struct FlatnessReport {
    pub adapter: Adapter,
    pub warmup: usize,
    pub reconnects: usize,
    pub elapsed: Duration,
    pub start: Resources,
    pub end: Resources,
    pub limit: f64,
}

impl FlatnessReport {
    fn ratios(&self) -> [(&'static str, f64, f64, f64); 3] {
        let r = |a: f64, b: f64| if a == 0.0 { f64::INFINITY } else { b / a };
        let (s, e) = (self.start, self.end);
        [
            ("threads", s.threads as f64, e.threads as f64, r(s.threads as f64, e.threads as f64)),
            ("open fds", s.fds as f64, e.fds as f64, r(s.fds as f64, e.fds as f64)),
            ("RSS (KiB)", s.rss_kb as f64, e.rss_kb as f64, r(s.rss_kb as f64, e.rss_kb as f64)),
        ]
    }

    pub fn ok(&self) -> bool {
        self.ratios().iter().all(|(_, _, _, ratio)| *ratio <= 1.0 + self.limit)
    }
}

impl std::fmt::Display for FlatnessReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "resource flatness ({}): {} forced reconnects after {} warm-up ones, {:.1} s",
            self.adapter.name(),
            self.reconnects,
            self.warmup,
            self.elapsed.as_secs_f64()
        )?;
        writeln!(f, "{:<10} {:>10} {:>10} {:>7}", "", "start", "end", "ratio")?;
        for (name, s, e, ratio) in self.ratios() {
            writeln!(f, "{name:<10} {s:>10} {e:>10} {ratio:>7.3}")?;
        }
        write!(
            f,
            "verdict: {} (limit: within {:.0}% of the start)",
            if self.ok() { "ok" } else { "FAILED" },
            self.limit * 100.0
        )
    }
}

struct DevProcess {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl DevProcess {
    fn spawn() -> std::io::Result<(DevProcess, String, String)> {
        let mut child = Command::new(std::env::current_exe()?)
            .arg("serve-dev")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        let stdin = child.stdin.take().ok_or_else(|| std::io::Error::other("no stdin"))?;
        let stdout = BufReader::new(child.stdout.take().ok_or_else(|| std::io::Error::other("no stdout"))?);
        let mut p = DevProcess { child, stdin, stdout };
        let line = p.read_line()?;
        let mut parts = line.split_whitespace();
        let (Some(api), Some(gateway)) = (parts.next(), parts.next()) else {
            return Err(std::io::Error::other(format!("unexpected first line from serve-dev: {line:?}")));
        };
        Ok((p, api.to_owned(), gateway.to_owned()))
    }

    fn read_line(&mut self) -> std::io::Result<String> {
        let mut line = String::new();
        self.stdout.read_line(&mut line)?;
        Ok(line.trim().to_owned())
    }

    /// Kill the worker's connections; returns once a new one is ready.
    fn reconnect(&mut self) -> std::io::Result<()> {
        writeln!(self.stdin, "kill")?;
        match self.read_line()?.as_str() {
            "ok" => Ok(()),
            other => Err(std::io::Error::other(format!("serve-dev: {other}"))),
        }
    }
}

impl Drop for DevProcess {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "quit");
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Force `reconnects` reconnects of one worker and compare its resources before and after.
pub fn run(adapter: Adapter, warmup: usize, reconnects: usize) -> std::io::Result<FlatnessReport> {
    let (mut dev, api_url, gateway_url) = DevProcess::spawn()?;
    let spec = Spec {
        app: "flat".into(),
        api_url,
        gateway_url,
        function: Function::new("noop").on_event("flat/noop"),
        body: std::sync::Arc::new(|_| Ok(json!(null))),
        handler_threads: 2,
        seed: 5,
        tune: workers::tune_fast_reconnect,
    };
    let worker = workers::start(adapter, spec);
    worker.ready(Duration::from_secs(30)).map_err(std::io::Error::other)?;
    for _ in 0..warmup {
        dev.reconnect()?;
    }
    std::thread::sleep(Duration::from_millis(500));
    let start = Resources::now();
    let t0 = Instant::now();
    for _ in 0..reconnects {
        dev.reconnect()?;
    }
    let elapsed = t0.elapsed();
    std::thread::sleep(Duration::from_millis(500));
    let end = Resources::now();
    let _ = worker.stop(Duration::from_secs(10));
    drop(dev);
    Ok(FlatnessReport { adapter, warmup, reconnects, elapsed, start, end, limit: 0.10 })
}

/// The child: connect-dev behind a proxy; `kill` on stdin kills every proxied
/// connection and answers `ok` once a newer connection is ready.
pub fn serve_dev() -> std::io::Result<()> {
    let dev = DevServer::spawn(DevConfig { seed: Some(5), ..DevConfig::ephemeral() })
        .map_err(std::io::Error::other)?;
    let proxy = Proxy::start(dev.gateway_addr())?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{} {}", dev.api_url(), proxy.gateway_url())?;
    out.flush()?;
    for line in std::io::stdin().lock().lines() {
        match line?.trim() {
            "kill" => {
                let newest = dev.connections().map_err(std::io::Error::other)?.iter().map(|c| c.conn).max();
                proxy.kill_all();
                let ready = dev.wait_for_connections_where(
                    move |cs| cs.iter().any(|c| Some(c.conn) > newest && c.status == ConnStatus::Ready),
                    Duration::from_secs(30),
                );
                match ready {
                    Ok(_) => writeln!(out, "ok")?,
                    Err(e) => writeln!(out, "error: {e}")?,
                }
                out.flush()?;
            }
            "quit" => break,
            _ => {}
        }
    }
    Ok(())
}
