"""Make one picture with SiliconFlow and save it.  Usage: python urllib_saves_last_chunk.py [prompt]

Standard library only: 4 tries on 429, 5xx and network trouble with doubling waits; a 4xx is
final; the picture is downloaded without the key; exit status 1 on failure.
Flaw: the picture is streamed to the file in chunks, and the file is opened (so truncated)
again for every chunk: only the last chunk is saved. Caught by: saved-image.
"""

import http.client
import json
import os
import sys
import time
import urllib.error
import urllib.request

API = os.environ.get("SILICONFLOW_BASE_URL", "https://api.siliconflow.cn/v1")
KEY = os.environ["SILICONFLOW_API_KEY"]
OUT = os.environ.get("SFMOCK_OUTPUT", "picture.png")
PROMPT = sys.argv[1] if len(sys.argv) > 1 else "an old lighthouse keeper reading by lamplight"
BODY = {"model": "Kwai-Kolors/Kolors", "prompt": PROMPT, "image_size": "1024x1024", "seed": 99}


def generate() -> dict:
    request = urllib.request.Request(
        f"{API}/images/generations",
        data=json.dumps(BODY).encode(),
        headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"},
    )
    for attempt in range(4):
        if attempt:
            time.sleep(0.5 * 2 ** (attempt - 1))
        try:
            with urllib.request.urlopen(request, timeout=20) as answer:
                return json.load(answer)
        except urllib.error.HTTPError as error:
            trace = error.headers.get("x-siliconcloud-trace-id")
            failure = RuntimeError(f"HTTP {error.code} (trace {trace}): {error.read()[:200]!r}")
            if error.code != 429 and error.code < 500:
                raise failure from None
        except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as error:
            failure = RuntimeError(f"no answer: {error!r}")
    raise failure


def main() -> None:
    answer = generate()
    url = (answer.get("images") or answer.get("data"))[0]["url"]
    try:
        with urllib.request.urlopen(url, timeout=30) as picture:
            while chunk := picture.read(1024):
                with open(OUT, "wb") as file:
                    file.write(chunk)
    except urllib.error.HTTPError as error:
        request_id = error.headers.get("x-amz-request-id")
        raise RuntimeError(f"download: HTTP {error.code} (request id {request_id})") from None
    print(f"saved {OUT}")


if __name__ == "__main__":
    try:
        main()
    except Exception as error:
        print(f"failed: {error}", file=sys.stderr)
        sys.exit(1)
