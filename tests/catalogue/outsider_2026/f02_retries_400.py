"""FLAW: retries every non-200 status, 400/401/402/403/404/413 included."""
EXPECTED = "retries"
import time, httpx
def generate(ctx):
    http = ctx.http_client(timeout=30)
    for attempt in range(4):
        try:
            r = http.post(f"{ctx.base_url}/images/generations", json=ctx.request, headers={"Authorization": f"Bearer {ctx.api_key}"})
        except httpx.TransportError:
            if attempt == 3: raise
            time.sleep(2 ** attempt); continue
        if r.status_code != 200 and attempt < 3:
            time.sleep(2 ** attempt); continue
        r.raise_for_status()
        return http.get(r.json()["images"][0]["url"]).raise_for_status().content
