"""FLAW: draws a fresh seed on every retry; here the caller asks for no seed (request without one),
so the client picks one itself and re-rolls it on each retry. Otherwise careful."""
EXPECTED = "same-body"
import random, time, httpx
def generate(ctx):
    http = ctx.http_client(timeout=30)
    body = dict(ctx.request)
    body.setdefault("seed", random.randrange(2**31))
    for attempt in range(4):
        if attempt:
            body["seed"] = random.randrange(2**31)
        try:
            r = http.post(f"{ctx.base_url}/images/generations", json=body, headers={"Authorization": f"Bearer {ctx.api_key}"})
        except httpx.TransportError:
            if attempt == 3: raise
            time.sleep(2 ** attempt); continue
        if r.status_code in (429, 500, 502, 503, 504) and attempt < 3:
            time.sleep(2 ** attempt); continue
        r.raise_for_status()
        return http.get(r.json()["images"][0]["url"]).raise_for_status().content

CHECK_KWARGS = {"request": {"model": "Kwai-Kolors/Kolors", "prompt": "a lighthouse at dawn"}}
