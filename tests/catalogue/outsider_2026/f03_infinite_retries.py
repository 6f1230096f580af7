"""FLAW: retries transient failures forever (no cap), back-off capped at 8 s."""
EXPECTED = "retries"
import time, httpx
def generate(ctx):
    http = ctx.http_client(timeout=30)
    attempt = 0
    while True:
        try:
            r = http.post(f"{ctx.base_url}/images/generations", json=ctx.request, headers={"Authorization": f"Bearer {ctx.api_key}"})
        except httpx.TransportError:
            time.sleep(min(8, 2 ** attempt)); attempt += 1; continue
        if r.status_code in (429, 500, 502, 503, 504):
            time.sleep(min(8, 2 ** attempt)); attempt += 1; continue
        r.raise_for_status()
        return http.get(r.json()["images"][0]["url"]).raise_for_status().content
