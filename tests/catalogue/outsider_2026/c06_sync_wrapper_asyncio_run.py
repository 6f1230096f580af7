"""A sync facade calling asyncio.run around an async httpx client."""
EXPECTED = "correct"
import asyncio
import httpx

async def agenerate(ctx):
    async with ctx.async_http_client(timeout=30) as http:
        for attempt in range(4):
            try:
                r = await http.post(f"{ctx.base_url}/images/generations", json=ctx.request,
                                    headers={"Authorization": f"Bearer {ctx.api_key}"})
            except httpx.TransportError:
                if attempt == 3: raise
                await asyncio.sleep(0.5 * 2 ** attempt); continue
            if r.status_code in (429, 500, 502, 503, 504) and attempt < 3:
                await asyncio.sleep(0.5 * 2 ** attempt); continue
            r.raise_for_status()
            return (await http.get(r.json()["images"][0]["url"])).raise_for_status().content

def generate(ctx):
    return asyncio.run(agenerate(ctx))
