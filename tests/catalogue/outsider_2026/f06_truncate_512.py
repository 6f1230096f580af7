"""FLAW: stores the URL in a VARCHAR(512)-like field: url[:512]. (The fake's URLs are ~350
characters, so this flaw may be latent.)"""
EXPECTED = "downloads"
import time, httpx
def generate(ctx):
    http = ctx.http_client(timeout=30)
    for attempt in range(4):
        try:
            r = http.post(f"{ctx.base_url}/images/generations", json=ctx.request, headers={"Authorization": f"Bearer {ctx.api_key}"})
        except httpx.TransportError:
            if attempt == 3: raise
            time.sleep(2 ** attempt); continue
        if r.status_code in (429, 500, 502, 503, 504) and attempt < 3:
            time.sleep(2 ** attempt); continue
        r.raise_for_status()
        return http.get(r.json()["images"][0]["url"][:512]).raise_for_status().content
