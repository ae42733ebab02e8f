//! Worker processes: finding them, starting them against the dev server,
//! reading their ACTIVE line, their RSS, and stopping them.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use connect_dev::DevServer;

use crate::config::{Kind, WorkerSpec, js_dir};
use crate::worker::READY_LINE;

/// Where the worker binaries are and whether node can run the JS worker.
#[derive(Debug, Clone)]
pub struct Env {
    pub bin_dir: PathBuf,
    pub log_dir: PathBuf,
    /// `Err(why)` when the JS rows are skipped.
    pub node: Result<String, String>,
}

impl Env {
    pub fn detect(log_dir: &Path) -> Env {
        let bin_dir = std::env::current_exe()
            .ok()
            .and_then(|p| p.parent().map(Path::to_path_buf))
            .unwrap_or_else(|| PathBuf::from("."));
        Env { bin_dir, log_dir: log_dir.to_path_buf(), node: node_ready() }
    }

    /// `None` if the worker can run here, else why not.
    pub fn skip_reason(&self, spec: &WorkerSpec) -> Option<String> {
        match &spec.kind {
            Kind::Rust { bin, .. } => {
                let path = self.bin_dir.join(bin);
                (!path.exists()).then(|| format!("skipped ({bin} not built: adapter not in this workspace)"))
            }
            Kind::Js { .. } => self.node.as_ref().err().cloned(),
        }
    }
}

fn version_of(tool: &str) -> Option<String> {
    let out = Command::new(tool).arg("--version").stderr(Stdio::null()).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Node's version if node runs and the pinned SDK is installed (running `npm ci` once if npm is there).
fn node_ready() -> Result<String, String> {
    let Some(version) = version_of("node") else { return Err("skipped (node not found)".into()) };
    if !js_dir().join("node_modules/inngest/package.json").exists() {
        if version_of("npm").is_none() {
            return Err("skipped (npm not found to install tests/js)".into());
        }
        eprintln!("installing the pinned JS SDK: npm ci in tests/js");
        let ok = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(js_dir())
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            return Err("skipped (npm ci failed in tests/js)".into());
        }
    }
    Ok(version)
}

/// A running worker process. Dropping it kills the process.
#[derive(Debug)]
pub struct Proc {
    child: Child,
    stdin: Option<ChildStdin>,
    pub spawned: Instant,
    lines: mpsc::Receiver<(Instant, String)>,
}

impl Proc {
    /// Start `spec` as app `app` with `connections` connections, instance ids `<app>-<i>`.
    pub fn spawn(
        env: &Env,
        dev: &DevServer,
        spec: &WorkerSpec,
        app: &str,
        connections: usize,
    ) -> std::io::Result<Proc> {
        let mut cmd = match &spec.kind {
            Kind::Rust { bin, args } => {
                let mut c = Command::new(env.bin_dir.join(bin));
                c.args(*args).args(["--app", app, "--connections", &connections.to_string()]);
                c
            }
            Kind::Js { isolate } => {
                let mut c = Command::new("node");
                c.arg("bench-worker.mjs")
                    .current_dir(js_dir())
                    .env("NODE_OPTIONS", "--experimental-websocket")
                    .env("INNGEST_CONNECT_GATEWAY_URL", dev.gateway_url())
                    .env("BENCH_APP", app)
                    .env("BENCH_CONNECTIONS", connections.to_string())
                    .env("INNGEST_CONNECT_ISOLATE_EXECUTION", if *isolate { "1" } else { "0" });
                c
            }
        };
        let log = std::fs::File::create(env.log_dir.join(format!("{app}.log")))?;
        cmd.env("DEV_API_URL", dev.api_url())
            .env_remove("INNGEST_SIGNING_KEY")
            .env_remove("INNGEST_SIGNING_KEY_FALLBACK")
            .env_remove("INNGEST_BASE_URL")
            .env_remove("INNGEST_API_BASE_URL")
            .env_remove("INNGEST_DEV")
            .env_remove("INNGEST_CONNECT_MAX_WORKER_CONCURRENCY")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log);
        let spawned = Instant::now();
        let mut child = cmd.spawn()?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send((Instant::now(), line)).is_err() {
                    break;
                }
            }
        });
        Ok(Proc { child, stdin, spawned, lines })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Wait for the `bench-worker: ready` line (every connection ACTIVE); returns when it was read.
    pub fn wait_ready(&mut self, timeout: Duration) -> Result<Instant, String> {
        let end = Instant::now() + timeout;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok((at, line)) if line.starts_with(READY_LINE) => return Ok(at),
                Ok(_) => {}
                Err(mpsc::RecvTimeoutError::Timeout) => return Err(format!("not ACTIVE within {timeout:?}")),
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = self.child.wait().map(|s| s.to_string()).unwrap_or_default();
                    return Err(format!("exited before ACTIVE ({status})"));
                }
            }
        }
    }

    /// Resident set size now, in KiB (`VmRSS` of /proc/PID/status).
    pub fn rss_kib(&self) -> Option<u64> {
        rss_kib(self.pid())
    }

    /// Close stdin (the graceful shutdown signal) and wait up to `grace`; then kill.
    pub fn stop(mut self, grace: Duration) {
        drop(self.stdin.take());
        let end = Instant::now() + grace;
        while Instant::now() < end {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// CPU time (user + system) a process has used, from /proc/PID/stat (`self` for this one).
pub fn cpu_secs(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) in parentheses.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// `threads` OS threads spinning for `duration` in a child process (this
/// binary, `compare __hog`): the CPU load on the cores that JS handlers, on
/// one thread, cannot occupy themselves.
#[derive(Debug)]
pub struct Hog(Child);

impl Hog {
    pub fn start(env: &Env, threads: usize, duration: Duration) -> std::io::Result<Hog> {
        // By path, not current_exe(): a rebuild may have replaced this binary meanwhile.
        let child = Command::new(env.bin_dir.join("compare"))
            .args(["__hog", &threads.to_string(), &duration.as_millis().to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()?;
        Ok(Hog(child))
    }
}

impl Drop for Hog {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The body of `compare __hog THREADS MS`.
pub fn hog_main(threads: usize, ms: u64) {
    let handles: Vec<_> = (0..threads).map(|_| std::thread::spawn(move || crate::worker::spin(ms))).collect();
    for h in handles {
        let _ = h.join();
    }
}

/// Run this process's thread named `name` at nice `nice` (`renice` on its
/// thread id; lowering it needs root or CAP_SYS_NICE). The orchestrator does
/// this for connect-dev's thread: the gateway is the instrument, and on a real
/// deployment it does not share the worker's starved cores.
pub fn renice_thread(name: &str, nice: i32) -> Result<u32, String> {
    let find = || -> Option<u32> {
        std::fs::read_dir("/proc/self/task")
            .ok()?
            .filter_map(Result::ok)
            .find(|t| std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.trim() == name))
            .and_then(|t| t.file_name().to_str().and_then(|s| s.parse::<u32>().ok()))
    };
    // A thread names itself once it runs: wait for it a little.
    let end = std::time::Instant::now() + Duration::from_secs(2);
    let tid = loop {
        match find() {
            Some(tid) => break tid,
            None if std::time::Instant::now() < end => std::thread::sleep(Duration::from_millis(5)),
            None => return Err(format!("no thread named {name}")),
        }
    };
    let out = Command::new("renice")
        .args(["-n", &nice.to_string(), "-p", &tid.to_string()])
        .output()
        .map_err(|e| format!("renice: {e}"))?;
    if out.status.success() { Ok(tid) } else { Err(String::from_utf8_lossy(&out.stderr).trim().to_owned()) }
}
