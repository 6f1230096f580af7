"""FLAW: on an HTTP error raises RuntimeError("image generation failed") with neither the
status nor the trace id (and `from None`). Otherwise careful."""
EXPECTED = "errors"
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
        if r.status_code != 200:
            raise RuntimeError("image generation failed") from None
        return http.get(r.json()["images"][0]["url"]).raise_for_status().content
