"""requests session from ctx, download with stream=True + iter_content."""
EXPECTED = "correct"
import time, random
import requests

def generate(ctx):
    s = ctx.requests_session()
    for attempt in range(4):
        try:
            r = s.post(f"{ctx.base_url}/images/generations", json=ctx.request,
                       headers={"Authorization": f"Bearer {ctx.api_key}"}, timeout=30)
            if r.status_code in (429, 500, 502, 503, 504) and attempt < 3:
                time.sleep(random.uniform(1, 2 ** (attempt + 1))); continue
            r.raise_for_status()
            url = r.json()["images"][0]["url"]
            break
        except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError):
            if attempt == 3: raise
            time.sleep(random.uniform(1, 2 ** (attempt + 1)))
    with s.get(url, stream=True, timeout=30) as img:
        img.raise_for_status()
        return b"".join(img.iter_content(chunk_size=4096))
