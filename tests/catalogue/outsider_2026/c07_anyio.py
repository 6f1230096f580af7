"""anyio: fail_after per attempt, anyio.sleep back-off."""
EXPECTED = "correct"
import anyio
import httpx

async def generate(ctx):
    async with ctx.async_http_client(timeout=60) as http:
        for attempt in range(4):
            try:
                with anyio.fail_after(30):
                    r = await http.post(f"{ctx.base_url}/images/generations", json=ctx.request,
                                        headers={"Authorization": f"Bearer {ctx.api_key}"})
            except (httpx.TransportError, TimeoutError):
                if attempt == 3: raise
                await anyio.sleep(2 ** attempt); continue
            if r.status_code in (429, 500, 502, 503, 504) and attempt < 3:
                await anyio.sleep(2 ** attempt); continue
            r.raise_for_status()
            with anyio.fail_after(30):
                return (await http.get(r.json()["images"][0]["url"])).raise_for_status().content
