"""batch_size 4: returns the list of four images."""
EXPECTED = "correct"
import time
import httpx

def generate(ctx):
    http = ctx.http_client(timeout=60)
    body = {**ctx.request, "batch_size": 4}
    for attempt in range(4):
        try:
            r = http.post(f"{ctx.base_url}/images/generations", json=body, headers={"Authorization": f"Bearer {ctx.api_key}"})
        except httpx.TransportError:
            if attempt == 3: raise
            time.sleep(2 ** attempt); continue
        if r.status_code in (429, 500, 502, 503, 504) and attempt < 3:
            time.sleep(2 ** attempt); continue
        r.raise_for_status()
        break
    urls = [im["url"] for im in r.json()["images"]]
    if len(urls) != 4:
        raise RuntimeError(f"asked for 4 images, got {len(urls)} (trace={r.headers.get('x-siliconcloud-trace-id')})")
    return [http.get(u).raise_for_status().content for u in urls]
