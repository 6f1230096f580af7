"""asyncio.TaskGroup fanning out several requests (here the list the check gives: one)."""
EXPECTED = "correct"
import asyncio
import httpx

async def one(http, ctx, body):
    for attempt in range(4):
        try:
            r = await http.post(f"{ctx.base_url}/images/generations", json=body, headers={"Authorization": f"Bearer {ctx.api_key}"})
        except httpx.TransportError:
            if attempt == 3: raise
            await asyncio.sleep(2 ** attempt); continue
        if r.status_code in (429, 500, 502, 503, 504) and attempt < 3:
            await asyncio.sleep(2 ** attempt); continue
        r.raise_for_status()
        return (await http.get(r.json()["images"][0]["url"])).raise_for_status().content

async def generate(ctx):
    async with ctx.async_http_client(timeout=30) as http:
        async with asyncio.TaskGroup() as tg:
            tasks = [tg.create_task(one(http, ctx, b)) for b in [ctx.request]]
        return tasks[0].result()
