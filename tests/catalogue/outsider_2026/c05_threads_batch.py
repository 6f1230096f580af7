"""concurrent.futures threads: generate_many fans requests out on a pool; each retries."""
EXPECTED = "correct"
import time
from concurrent.futures import ThreadPoolExecutor
import httpx

def one(http, ctx, body):
    for attempt in range(4):
        try:
            r = http.post(f"{ctx.base_url}/images/generations", json=body, headers={"Authorization": f"Bearer {ctx.api_key}"})
        except httpx.TransportError:
            if attempt == 3: raise
            time.sleep(2 ** attempt); continue
        if r.status_code in (429, 500, 502, 503, 504) and attempt < 3:
            time.sleep(2 ** attempt); continue
        r.raise_for_status()
        return http.get(r.json()["images"][0]["url"]).raise_for_status().content

def generate_many(ctx, bodies):
    http = ctx.http_client(timeout=30)
    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(lambda b: one(http, ctx, b), bodies))

def generate(ctx):
    return generate_many(ctx, [ctx.request])[0]
