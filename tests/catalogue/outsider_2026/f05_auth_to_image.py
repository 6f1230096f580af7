"""FLAW: a session-wide Authorization header, so the key goes to the image host too."""
EXPECTED = "downloads"
import time, httpx
def generate(ctx):
    http = ctx.http_client(timeout=30, headers={"Authorization": f"Bearer {ctx.api_key}"})
    for attempt in range(4):
        try:
            r = http.post(f"{ctx.base_url}/images/generations", json=ctx.request)
        except httpx.TransportError:
            if attempt == 3: raise
            time.sleep(2 ** attempt); continue
        if r.status_code in (429, 500, 502, 503, 504) and attempt < 3:
            time.sleep(2 ** attempt); continue
        r.raise_for_status()
        return http.get(r.json()["images"][0]["url"]).raise_for_status().content
