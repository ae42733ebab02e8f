//! The connect-tokio bench worker: `worker-tokio --app ID [--connections N] [--same-runtime]`.
//! Handlers run on a multi-thread runtime with one worker thread per core; the
//! connection runs on its own thread (default) or as a task on that runtime
//! (`--same-runtime`). See `connect_bench::worker` for the functions and protocol.

use std::time::Duration;

use connect_bench::worker::{self, WorkerArgs};
use connect_tokio::{Function, Worker};

fn main() {
    let args = WorkerArgs::parse();
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cores)
        .enable_all()
        .build()
        .expect("runtime");
    let code = runtime.block_on(run(args));
    runtime.shutdown_timeout(Duration::from_secs(1));
    std::process::exit(code);
}

async fn run(args: WorkerArgs) -> i32 {
    let mut workers = Vec::with_capacity(args.connections);
    for i in 0..args.connections {
        let builder = Worker::builder(args.app.clone())
            .instance_id(args.instance_id(i))
            .api_base_url(args.api_url.clone())
            .dev(true)
            .handle_signals(false)
            .same_runtime(args.same_runtime)
            .function(
                Function::new("spin").on_event(worker::spin_event(&args.app)).retries(0),
                |ctx| async move {
                    // Deliberately blocking inside async code: no .await while it spins.
                    Ok(serde_json::json!(worker::spin(worker::spin_ms(&ctx.event().data))))
                },
            )
            .function(
                Function::new("echo").on_event(worker::echo_event(&args.app)).retries(0),
                |ctx| async move { Ok(ctx.event().data.clone()) },
            );
        match builder.connect().await {
            Ok(w) => workers.push(w),
            Err(e) => {
                eprintln!("worker-tokio: could not start: {e}");
                return 1;
            }
        }
    }
    for w in &workers {
        if let Err(e) = w.ready().await {
            eprintln!("worker-tokio: not ready: {e}");
            return 1;
        }
    }
    worker::print_ready();
    let _ = tokio::task::spawn_blocking(worker::wait_for_stdin_eof).await;
    for w in &workers {
        w.shutdown();
    }
    for w in &workers {
        let _ = tokio::time::timeout(Duration::from_secs(10), w.closed()).await;
    }
    0
}
