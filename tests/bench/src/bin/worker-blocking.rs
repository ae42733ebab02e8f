//! The connect-blocking bench worker: `worker-blocking --app ID [--connections N]`.
//! Handlers run on each worker's pool of one thread per core. See
//! `connect_bench::worker` for the functions and protocol.

use std::time::Duration;

use connect_bench::worker::{self, WorkerArgs};
use connect_blocking::{Function, Worker};

fn main() {
    let args = WorkerArgs::parse();
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let mut workers = Vec::with_capacity(args.connections);
    for i in 0..args.connections {
        let builder = Worker::builder(args.app.clone())
            .instance_id(args.instance_id(i))
            .api_base_url(args.api_url.clone())
            .dev(true)
            .handle_signals(false)
            .threads(cores)
            .function(Function::new("spin").on_event(worker::spin_event(&args.app)).retries(0), |ctx| {
                Ok(serde_json::json!(worker::spin(worker::spin_ms(&ctx.event().data))))
            })
            .function(Function::new("echo").on_event(worker::echo_event(&args.app)).retries(0), |ctx| {
                Ok(ctx.event().data.clone())
            });
        match builder.connect() {
            Ok(w) => workers.push(w),
            Err(e) => {
                eprintln!("worker-blocking: could not start: {e}");
                std::process::exit(1);
            }
        }
    }
    for w in &workers {
        if let Err(e) = w.ready(Duration::from_secs(60)) {
            eprintln!("worker-blocking: not ready: {e}");
            std::process::exit(1);
        }
    }
    worker::print_ready();
    worker::wait_for_stdin_eof();
    for w in &workers {
        w.shutdown();
    }
    for w in &workers {
        let _ = w.closed(Duration::from_secs(10));
    }
}
