// A real Inngest JS SDK worker (npm `inngest`, pinned in package.json) for the
// connect-dev interop test (connect-dev/tests/js_interop.rs). It connects in the
// SDK's default worker-thread mode to the dev server named by DEV_API_URL and
// serves two functions:
//   js-interop-hello  on "js/hello": returns { greeting: "hello <data.name>" }
//   js-interop-boom   on "js/boom" (retries: 1): always throws
//   js-interop-steps  on "js/steps": step.run, step.sleep("1s"), step.run, returns { a, b }
//
// With SIGNING_KEY set it runs as a production worker (isDev: false) that authenticates with that key.
// With SEND_EVENT_NAME set it sends one such event with `inngest.send` once connected and prints its id.
//
// Run (Node 20): NODE_OPTIONS=--experimental-websocket DEV_API_URL=http://127.0.0.1:8288 node interop-worker.mjs
// It prints "interop-worker: ready <connectionId>" once connected, and exits on SIGTERM/SIGINT.
import { Inngest } from "inngest";
import { connect } from "inngest/connect";

const baseUrl = process.env.DEV_API_URL;
if (!baseUrl) {
  console.error("interop-worker: DEV_API_URL is not set");
  process.exit(2);
}

const signingKey = process.env.SIGNING_KEY;
const inngest = signingKey
  ? new Inngest({ id: "js-interop", isDev: false, baseUrl, signingKey })
  : new Inngest({ id: "js-interop", isDev: true, baseUrl });

const hello = inngest.createFunction(
  { id: "hello", retries: 0, triggers: [{ event: "js/hello" }] },
  async ({ event }) => ({ greeting: `hello ${event.data.name}` }),
);

const boom = inngest.createFunction(
  { id: "boom", retries: 1, triggers: [{ event: "js/boom" }] },
  async ({ attempt }) => {
    throw new Error(`boom on attempt ${attempt}`);
  },
);

const steps = inngest.createFunction(
  { id: "steps", retries: 0, triggers: [{ event: "js/steps" }] },
  async ({ event, step }) => {
    const a = await step.run("a", () => event.data.start);
    await step.sleep("nap", "1s");
    const b = await step.run("b", () => a + 1);
    return { a, b };
  },
);

const connection = await connect({
  apps: [{ client: inngest, functions: [hello, boom, steps] }],
  instanceId: "js-interop-worker",
});
console.log(`interop-worker: ready ${connection.connectionId}`);
// The SDK's own event client, against the dev server's event API (POST /e/{key}).
if (process.env.SEND_EVENT_NAME) {
  const { ids } = await inngest.send({ name: process.env.SEND_EVENT_NAME, data: { name: "from the SDK" } });
  console.log(`interop-worker: sent ${ids[0]}`);
}
await connection.closed;
console.log("interop-worker: closed");
