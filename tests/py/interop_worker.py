"""A real Inngest Python SDK worker (PyPI `inngest[connect]`, pinned in requirements.txt)
for connect-dev's interop test (connect-dev/tests/py_interop.rs). It connects to the
dev server named by DEV_API_URL and serves:
  py-interop-hello  on "py/hello": returns {"greeting": "hello <data.name>"}
  py-interop-boom   on "py/boom" (retries: 1): always raises
  py-interop-steps  on "py/steps": two step.run calls, returns {"a", "b"}
Run: DEV_API_URL=http://127.0.0.1:8288 python interop_worker.py
"""

import asyncio
import os

import inngest
from inngest.connect import connect

client = inngest.Inngest(app_id="py-interop", is_production=False, api_base_url=os.environ["DEV_API_URL"])


@client.create_function(fn_id="hello", trigger=inngest.TriggerEvent(event="py/hello"), retries=0)
async def hello(ctx: inngest.Context) -> dict:
    return {"greeting": "hello " + ctx.event.data["name"]}


@client.create_function(fn_id="boom", trigger=inngest.TriggerEvent(event="py/boom"), retries=1)
async def boom(ctx: inngest.Context) -> None:
    raise Exception(f"boom on attempt {ctx.attempt}")


@client.create_function(fn_id="steps", trigger=inngest.TriggerEvent(event="py/steps"), retries=0)
async def steps(ctx: inngest.Context) -> dict:
    a = await ctx.step.run("a", lambda: ctx.event.data["start"])
    b = await ctx.step.run("b", lambda: a + 1)
    return {"a": a, "b": b}


async def main() -> None:
    conn = connect([(client, [hello, boom, steps])], instance_id="py-interop-worker")
    print("py-worker: starting", flush=True)
    await conn.start()


asyncio.run(main())
