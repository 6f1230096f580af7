"""A generator yielding images for a list of requests, retrying each."""
EXPECTED = "correct"
import time
import httpx

def images(http, base_url, key, requests_):
    for body in requests_:
        for attempt in range(4):
            try:
                r = http.post(f"{base_url}/images/generations", json=body, headers={"Authorization": f"Bearer {key}"})
            except httpx.TransportError:
                if attempt == 3: raise
                time.sleep(2 ** attempt); continue
            if r.status_code in (429, 500, 502, 503, 504) and attempt < 3:
                time.sleep(2 ** attempt); continue
            r.raise_for_status()
            for im in r.json()["images"]:
                yield http.get(im["url"]).raise_for_status().content
            break

def generate(ctx):
    return next(images(ctx.http_client(timeout=30), ctx.base_url, ctx.api_key, [ctx.request]))
