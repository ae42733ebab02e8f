//! The `SystemAttributes` a worker reports in WORKER_CONNECT.

use connect_core::wire::SystemAttributes;

/// CPU cores, total memory and OS of this machine, read once at start.
pub fn system_attributes() -> SystemAttributes {
    let cpu_cores = std::thread::available_parallelism().map(|n| n.get() as i32).unwrap_or(1);
    SystemAttributes { cpu_cores, mem_bytes: total_memory().unwrap_or(0), os: std::env::consts::OS.into() }
}

/// `MemTotal` from /proc/meminfo on Linux; unknown elsewhere.
fn total_memory() -> Option<i64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: i64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}
