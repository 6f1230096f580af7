"""Parses error bodies for code/message and raises an APIError with them (and the status)."""
EXPECTED = "correct"
import time
import httpx

class APIError(Exception):
    def __init__(self, status_code, code, message, trace_id):
        self.status_code, self.code, self.trace_id = status_code, code, trace_id
        super().__init__(f"[{status_code}] code={code} {message} (trace {trace_id})")

def raise_api_error(r):
    try:
        j = r.json()
        code, msg = (j.get("code"), j.get("message")) if isinstance(j, dict) else (None, str(j))
    except ValueError:
        code, msg = None, r.text[:200]
    raise APIError(r.status_code, code, msg, r.headers.get("x-siliconcloud-trace-id"))

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
            raise_api_error(r)
        break
    img = http.get(r.json()["images"][0]["url"])
    if img.status_code != 200:
        raise APIError(img.status_code, None, "download failed", img.headers.get("x-amz-request-id"))
    return img.content
