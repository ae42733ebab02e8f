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

const USAGE: &str = "usage: connect-dev [FLAG VALUE | FLAG=VALUE]...
  --api-listen ADDR             the HTTP API (default 127.0.0.1:8288); ADDR is host:port
  --gateway-listen ADDR         the WebSocket gateway at /v0/connect (default 127.0.0.1:8289)
  --heartbeat-interval DUR      sent in READY (default 10s; 10ms to 5m)
  --extend-lease-interval DUR   sent in READY (default 30s; 10ms to 5m)
  --drain-timeout DUR           GATEWAY_CLOSING to the forced close (default 25s; at most 10m)
  --retry-delay DUR             before a failed attempt is retried (default 0s)
  --signing-key KEY             require this key (hashed) on start and flush calls (default: none)
  Durations are Go style: 10s, 250ms, 1m30s. SIGUSR1 drains the gateway.
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

/// `host:port`, a host name (`localhost:9999`) resolved to its first address.
fn listen_addr(flag: &str, value: &str) -> Result<std::net::SocketAddr, String> {
    use std::net::ToSocketAddrs;
    let mut addrs =
        value.to_socket_addrs().map_err(|e| format!("{flag}: {value:?}: {e} (want host:port)"))?;
    addrs.next().ok_or_else(|| format!("{flag}: {value:?} resolves to no address"))
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
        if FLAGS.contains(&value.split('=').next().unwrap_or_default()) {
            return Err(format!("{flag} needs a value (got the flag {value})"));
        }
        let dur = |v: &str| parse_go_duration(v).map_err(|e| format!("{flag}: {e}"));
        match flag.as_str() {
            "--api-listen" => c.api_listen = listen_addr(&flag, &value)?,
            "--gateway-listen" => c.gateway_listen = listen_addr(&flag, &value)?,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_args(args: &[&str]) -> Result<DevConfig, String> {
        parse(args.iter().map(|a| a.to_string()))
    }

    #[test]
    fn a_flag_without_its_value_does_not_swallow_the_next_flag() {
        let e = parse_args(&["--heartbeat-interval", "--api-listen", "127.0.0.1:1"]).expect_err("refused");
        assert_eq!(e, "--heartbeat-interval needs a value (got the flag --api-listen)");
        let e = parse_args(&["--drain-timeout"]).expect_err("refused");
        assert_eq!(e, "--drain-timeout needs a value");
    }

    #[test]
    fn listen_addresses_take_host_names_and_errors_name_the_flag() {
        let c =
            parse_args(&["--api-listen", "localhost:9999", "--gateway-listen=127.0.0.1:9998"]).expect("ok");
        assert!(c.api_listen.ip().is_loopback() && c.api_listen.port() == 9999, "{}", c.api_listen);
        assert_eq!(c.gateway_listen.to_string(), "127.0.0.1:9998");
        let e = parse_args(&["--api-listen", "nowhere"]).expect_err("refused");
        assert!(e.starts_with("--api-listen: \"nowhere\""), "{e}");
        let e = parse_args(&["--retry-delay", "soon"]).expect_err("refused");
        assert!(e.starts_with("--retry-delay: "), "{e}");
        let e = parse_args(&["--heartbeat-interval", "1ns"]).expect_err("refused");
        assert!(e.starts_with("--heartbeat-interval: "), "{e}");
    }

    #[test]
    fn a_port_in_use_names_the_address_and_the_flag() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
        let config = DevConfig { api_listen: taken.local_addr().expect("addr"), ..DevConfig::ephemeral() };
        let e = DevServer::spawn(config).expect_err("in use").to_string();
        let want =
            format!("could not listen on {} (the API, --api-listen): ", taken.local_addr().expect("addr"));
        assert!(e.starts_with(&want), "{e}");
    }
}
