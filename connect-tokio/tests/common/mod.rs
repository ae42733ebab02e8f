//! Shared set-up for the loopback tests: a connect-dev on ephemeral ports
//! and a worker builder pointed at it.

#![allow(dead_code)]

use std::time::Duration;

use connect_dev::{DevConfig, DevServer};
use connect_tokio::{Builder, Worker};

/// Every wait in these tests is bounded by this.
pub const WAIT: Duration = Duration::from_secs(30);

pub fn dev(heartbeat: Duration, extend: Duration) -> DevServer {
    DevServer::spawn(DevConfig {
        heartbeat_interval: heartbeat,
        extend_lease_interval: extend,
        drain_timeout: Duration::from_secs(5),
        seed: Some(7),
        ..DevConfig::ephemeral()
    })
    .expect("connect-dev starts")
}

pub fn worker(dev: &DevServer, app: &str) -> Builder {
    Worker::builder(app).api_base_url(dev.api_url()).dev(true).handle_signals(false).seed(42)
}

/// A tokio multi-thread runtime with `n` workers.
pub fn runtime(n: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(n).enable_all().build().expect("runtime")
}

/// Spin the CPU without yielding.
pub fn spin(d: Duration) {
    let until = std::time::Instant::now() + d;
    let mut x = 1u64;
    while std::time::Instant::now() < until {
        for _ in 0..1000 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        }
    }
    std::hint::black_box(x);
}
