"""FLAW: caches image URLs per request forever (module-level, across calls); ignores the
1-hour expiry. Otherwise careful."""
EXPECTED = "downloads"
import json, time, httpx
_CACHE = {}
def generate(ctx):
    http = ctx.http_client(timeout=30)
    key = json.dumps(ctx.request, sort_keys=True)
    if key not in _CACHE:
        for attempt in range(4):
            try:
                r = http.post(f"{ctx.base_url}/images/generations", json=ctx.request, headers={"Authorization": f"Bearer {ctx.api_key}"})
            except httpx.TransportError:
                if attempt == 3: raise
                time.sleep(2 ** attempt); continue
            if r.status_code in (429, 500, 502, 503, 504) and attempt < 3:
                time.sleep(2 ** attempt); continue
            r.raise_for_status()
            break
        _CACHE[key] = r.json()["images"][0]["url"]
    return http.get(_CACHE[key]).raise_for_status().content
