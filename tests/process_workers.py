"""A generation made in a child process (tests/test_checks_processes.py): standard library
only, so a spawned pool worker starts without importing pytest or sfmock."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any

TRANSIENT = {429, 500, 502, 503, 504}


def generate_in_child(base_url: str, api_key: str, request: dict[str, Any], retries: int) -> bytes:
    """A whole generation with ``urllib`` in a pool worker: back-off in real time there."""
    body = json.dumps(request).encode()
    headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}
    for attempt in range(retries + 1):
        if attempt:
            time.sleep(0.05 * 2**attempt)
        post = urllib.request.Request(f"{base_url}/images/generations", data=body, method="POST", headers=headers)
        try:
            with urllib.request.urlopen(post, timeout=30) as answer:
                url = json.loads(answer.read())["images"][0]["url"]
        except urllib.error.HTTPError as error:
            if error.code in TRANSIENT and attempt < retries:
                continue
            raise RuntimeError(f"HTTP {error.code} trace {error.headers.get('x-siliconcloud-trace-id')}") from None
        with urllib.request.urlopen(url, timeout=30) as image:
            return bytes(image.read())
    raise RuntimeError("unreachable")
