"""A class-based client: one reused httpx session, a context manager, typed errors."""
EXPECTED = "correct"
import random, time
import httpx

class SiliconFlowError(Exception):
    def __init__(self, status, trace, message):
        super().__init__(f"HTTP {status} trace={trace}: {message}")
        self.status_code, self.trace_id = status, trace

class ImageClient:
    TRANSIENT = {429, 500, 502, 503, 504}
    def __init__(self, base_url, api_key, http):
        self.base_url, self._key, self._http = base_url, api_key, http
    def __enter__(self): return self
    def __exit__(self, *exc): self._http.close()
    def _post(self, body):
        for attempt in range(5):
            try:
                r = self._http.post(f"{self.base_url}/images/generations", json=body,
                                    headers={"Authorization": f"Bearer {self._key}"})
            except httpx.TransportError:
                if attempt == 4: raise
                time.sleep(0.5 * 2 ** attempt + random.random()); continue
            if r.status_code in self.TRANSIENT and attempt < 4:
                time.sleep(0.5 * 2 ** attempt + random.random()); continue
            if r.status_code != 200:
                raise SiliconFlowError(r.status_code, r.headers.get("x-siliconcloud-trace-id"), r.text[:200])
            return r.json()
    def generate(self, **body):
        data = self._post(body)
        img = self._http.get(data["images"][0]["url"])
        if img.status_code != 200:
            raise SiliconFlowError(img.status_code, img.headers.get("x-amz-request-id"), "download failed")
        return img.content

def generate(ctx):
    with ImageClient(ctx.base_url, ctx.api_key, ctx.http_client(timeout=30)) as client:
        return client.generate(**ctx.request)
