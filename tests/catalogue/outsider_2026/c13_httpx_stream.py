"""httpx .stream() download into a file; returns the path."""
EXPECTED = "correct"
import time, tempfile, os
import httpx

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
        break
    path = os.path.join(tempfile.mkdtemp(), "image.png")
    with http.stream("GET", r.json()["images"][0]["url"]) as img:
        img.raise_for_status()
        with open(path, "wb") as f:
            for chunk in img.iter_bytes():
                f.write(chunk)
    return path
