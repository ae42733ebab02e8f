//! `connect-dev`: run a local Inngest Connect gateway and executor.
//!
//! ```text
//! cargo run -p connect-dev -- [--api-listen 127.0.0.1:8288] [--gateway-listen 127.0.0.1:8289]
//!     [--heartbeat-interval 10s] [--extend-lease-interval 30s] [--drain-timeout 25s]
//!     [--signing-key signkey-...] [--retry-delay 0s]
//! ```
//! SIGUSR1 drains the gateway (as `POST /v0/dev/drain` does); Ctrl-C stops it.

use connect_core::auth::SigningKey;
use connect_core::duration::parse_go_duration;
use connect_dev::{DevConfig, DevServer, GatewayConfigError};

const USAGE: &str =
    "usage: connect-dev [--api-listen ADDR] [--gateway-listen ADDR] [--heartbeat-interval DUR] \
[--extend-lease-interval DUR] [--drain-timeout DUR] [--signing-key KEY] [--retry-delay DUR]
  durations are Go style: 10s, 250ms, 1m30s; intervals from 10ms to 5m, the drain timeout up to 10m.
  Env RUST_LOG sets the log filter (default info).";

fn main() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt().with_env_filter(filter).init();
    let config = match parse(std::env::args().skip(1)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("connect-dev: {e}\n{USAGE}");
            std::process::exit(2);
        }
    };
    let dev = match DevServer::spawn(config) {
        Ok(dev) => dev,
        Err(e) => {
            eprintln!("connect-dev: {e}");
            std::process::exit(1);
        }
    };
    println!("connect-dev: API {}  gateway {}", dev.api_url(), dev.gateway_url());
    wait_for_signals(&dev);
    if let Ok(summary) = dev.summary() {
        println!("connect-dev: summary: {summary}");
    }
    dev.shutdown();
}

/// SIGUSR1 drains; SIGINT/SIGTERM stop. Signals are watched on a small runtime of their own.
fn wait_for_signals(dev: &DevServer) {
    let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
    rt.block_on(async {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut usr1), Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::user_defined1()),
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            return;
        };
        let client = dev.client();
        loop {
            tokio::select! {
                _ = usr1.recv() => { let _ = client.drain().await; }
                _ = term.recv() => return,
                _ = int.recv() => return,
            }
        }
    });
}

fn parse(mut args: impl Iterator<Item = String>) -> Result<DevConfig, String> {
    let mut c = DevConfig::default();
    while let Some(flag) = args.next() {
        if flag == "-h" || flag == "--help" {
            println!("{USAGE}");
            std::process::exit(0);
        }
        let (flag, inline) = match flag.split_once('=') {
            Some((f, v)) => (f.to_owned(), Some(v.to_owned())),
            None => (flag, None),
        };
        const FLAGS: [&str; 7] = [
            "--api-listen",
            "--gateway-listen",
            "--heartbeat-interval",
            "--extend-lease-interval",
            "--drain-timeout",
            "--retry-delay",
            "--signing-key",
        ];
        if !FLAGS.contains(&flag.as_str()) {
            return Err(format!("unknown flag {flag}"));
        }
        let value = inline.or_else(|| args.next()).ok_or_else(|| format!("{flag} needs a value"))?;
        let dur = |v: &str| parse_go_duration(v).map_err(|e| e.to_string());
        match flag.as_str() {
            "--api-listen" => c.api_listen = value.parse().map_err(|e| format!("{flag}: {e}"))?,
            "--gateway-listen" => c.gateway_listen = value.parse().map_err(|e| format!("{flag}: {e}"))?,
            "--heartbeat-interval" => c.heartbeat_interval = dur(&value)?,
            "--extend-lease-interval" => c.extend_lease_interval = dur(&value)?,
            "--drain-timeout" => c.drain_timeout = dur(&value)?,
            "--retry-delay" => c.retry_delay = dur(&value)?,
            "--signing-key" => {
                c.signing_key = Some(SigningKey::new(value).map_err(|e| format!("{flag}: {e}"))?)
            }
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    c.validate().map_err(|e| match e {
        // The field names are the flags' names.
        GatewayConfigError::OutOfRange { what, .. } => format!("--{}: {e}", what.replace('_', "-")),
        e => e.to_string(),
    })?;
    Ok(c)
}
