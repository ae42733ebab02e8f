// The Inngest JS SDK worker (npm `inngest`, pinned in package.json) for the
// benchmark (tests/bench, `compare`). It serves the same functions as the Rust
// bench workers (tests/bench/src/worker.rs), app id $BENCH_APP:
//   <app>-spin  on "<app>/spin": spins the CPU for data.ms milliseconds without yielding
//   <app>-echo  on "<app>/echo": returns the event's data
//
// Env: DEV_API_URL (the dev server), BENCH_APP (app id, and instance id prefix),
// BENCH_CONNECTIONS (connections in this process, default 1), and
// INNGEST_CONNECT_ISOLATE_EXECUTION=0 for the SDK's same-thread mode (default:
// worker-thread mode). Run on Node 20 with NODE_OPTIONS=--experimental-websocket.
// Prints "bench-worker: ready" once every connection is ACTIVE, and closes
// gracefully when stdin closes.
import { Inngest } from "inngest";
import { connect } from "inngest/connect";

const baseUrl = process.env.DEV_API_URL;
if (!baseUrl) {
  console.error("bench-worker: DEV_API_URL is not set");
  process.exit(2);
}
const app = process.env.BENCH_APP ?? "bench-js";
const connections = Number.parseInt(process.env.BENCH_CONNECTIONS ?? "1", 10);

const silent = { info() {}, warn() {}, error: console.error, debug() {} };
const inngest = new Inngest({ id: app, isDev: true, baseUrl, logger: silent });

const spin = inngest.createFunction(
  { id: "spin", retries: 0, triggers: [{ event: `${app}/spin` }] },
  async ({ event }) => {
    const until = performance.now() + (event.data.ms ?? 0);
    let x = 0;
    while (performance.now() < until) {
      x = (x + 1) | 0;
    }
    return x;
  },
);

const echo = inngest.createFunction(
  { id: "echo", retries: 0, triggers: [{ event: `${app}/echo` }] },
  async ({ event }) => event.data,
);

const conns = [];
for (let i = 0; i < connections; i++) {
  conns.push(
    await connect({
      apps: [{ client: inngest, functions: [spin, echo] }],
      instanceId: `${app}-${i}`,
      handleShutdownSignals: [],
    }),
  );
}
console.log("bench-worker: ready");

process.stdin.on("data", () => {});
process.stdin.on("end", async () => {
  await Promise.all(conns.map((c) => c.close()));
  process.exit(0);
});
