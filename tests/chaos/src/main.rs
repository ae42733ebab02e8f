//! `connect-chaos`: the chaos soak and the resource-flatness check.
//!
//! ```text
//! connect-chaos soak [--runs 10000] [--adapters tokio,blocking,async-std] [--seed 1]
//! connect-chaos flatness [--reconnects 1000] [--warmup 20] [--adapters tokio,blocking,async-std]
//! ```
//!
//! Each prints a report and exits 1 when its verdict is a failure. `RUST_LOG` (unset by
//! default) logs the workers' records to stderr, e.g. `RUST_LOG=connect_blocking=debug`.

use std::process::ExitCode;

use connect_chaos::workers::Adapter;
use connect_chaos::{flatness, soak};

const USAGE: &str = "usage: connect-chaos soak [--runs N] [--adapters tokio,blocking,async-std] [--seed N]\n       \
                     connect-chaos flatness [--reconnects N] [--warmup N] [--adapters tokio,blocking,async-std]";

fn main() -> ExitCode {
    // RUST_LOG=connect_blocking=debug (for example) shows the workers' log records on stderr.
    if let Ok(filter) = tracing_subscriber::EnvFilter::try_from_default_env() {
        tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("connect-chaos: {e}\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn run(args: &[String]) -> Result<bool, String> {
    let (cmd, rest) = args.split_first().ok_or("no command")?;
    let flag = |name: &str| -> Option<&str> {
        rest.iter().position(|a| a == name).and_then(|i| rest.get(i + 1)).map(String::as_str)
    };
    let number = |name: &str, default: usize| -> Result<usize, String> {
        flag(name).map_or(Ok(default), |v| v.parse().map_err(|e| format!("{name}: {e}")))
    };
    let adapters = match flag("--adapters") {
        None => Adapter::ALL.to_vec(),
        Some(list) => list
            .split(',')
            .map(|a| Adapter::parse(a).ok_or_else(|| format!("unknown adapter {a}")))
            .collect::<Result<_, _>>()?,
    };
    match cmd.as_str() {
        "soak" => {
            let config = soak::SoakConfig {
                runs: number("--runs", 10_000)?,
                seed: number("--seed", 1)? as u64,
                adapters,
                ..soak::SoakConfig::default()
            };
            let report = soak::run(config);
            println!("{report}");
            Ok(report.ok())
        }
        "flatness" => {
            let (reconnects, warmup) = (number("--reconnects", 1000)?, number("--warmup", 20)?);
            let mut ok = true;
            for adapter in adapters {
                let report = flatness::run(adapter, warmup, reconnects).map_err(|e| e.to_string())?;
                println!("{report}");
                ok &= report.ok();
            }
            Ok(ok)
        }
        "serve-dev" => flatness::serve_dev().map(|()| true).map_err(|e| e.to_string()),
        other => Err(format!("unknown command {other}")),
    }
}
