"""asyncio.wait_for around each call (no httpx timeout of its own)."""
EXPECTED = "correct"
import asyncio
import httpx

async def generate(ctx):
    http = ctx.async_http_client(timeout=None)
    for attempt in range(4):
        try:
            r = await asyncio.wait_for(http.post(f"{ctx.base_url}/images/generations", json=ctx.request,
                                                 headers={"Authorization": f"Bearer {ctx.api_key}"}), 30)
        except (httpx.TransportError, asyncio.TimeoutError):
            if attempt == 3: raise
            await asyncio.sleep(2 ** attempt); continue
        if r.status_code in (429, 500, 502, 503, 504) and attempt < 3:
            await asyncio.sleep(2 ** attempt); continue
        r.raise_for_status()
        img = await asyncio.wait_for(http.get(r.json()["images"][0]["url"]), 30)
        return img.raise_for_status().content
