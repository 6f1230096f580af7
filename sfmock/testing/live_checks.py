"""What a client meets on the live service in 2026 (issue 24), for the client checks.

Outcomes: the live service's other error bodies, drawn only where the configured fake
sends them too (``LIVE_CONDITIONAL``, read by ``strategies.drawn_outcomes``):
``400-range`` (code 20015, ``FIELD: Must be ...``, no
``data``) and ``400-size`` (code 20026) under the ``range_errors`` / ``size_errors``
settings, ``429-plain`` (no code, no ``Details``) with a live dialect. A client that parses
one error shape only meets the others here and is caught by ``errors`` or ``retries``.

Invariants, which read what the fake served: ``whole-url`` (an image URL is used whole:
live ones run to ~1.9 KB, the ``url_token`` setting) and ``image-type`` (an image served as
``application/octet-stream``, as the live store does, is still an image: the
``image_content_type`` setting).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any, Final
from urllib.parse import unquote, urlsplit

from sfmock.config import Settings
from sfmock.service.rule_errors import RANGE_CODE, SIZE_FORMAT_CODE, SIZE_FORMAT_MESSAGE
from sfmock.testing.evidence import Run

__all__ = ["LIVE_CONDITIONAL", "LIVE_OUTCOMES", "LIVE_PERMANENT", "LIVE_TRANSIENT", "image_type", "whole_url"]

RANGE_BODY: Final = {"code": RANGE_CODE, "message": "seed: Must be greater than or equal to 0"}
LIVE_OUTCOMES: Final[Mapping[str, Any]] = {
    "400-range": {"error": {"status": 400, "body": RANGE_BODY}},
    "400-size": {
        "error": {"status": 400, "body": {"code": SIZE_FORMAT_CODE, "message": SIZE_FORMAT_MESSAGE, "data": None}}
    },
    "429-plain": {"error": {"status": 429, "limit": "IPM"}, "dialect": "plain"},
}
LIVE_TRANSIENT: Final = frozenset({"429-plain"})
LIVE_PERMANENT: Final = frozenset({"400-range", "400-size"})

# outcome -> (the setting under which the fake sends its body by itself, whether ``settings`` do)
LIVE_CONDITIONAL: Final[Mapping[str, tuple[str, Callable[[Settings], bool]]]] = {
    "400-range": ("range_errors: observed", lambda settings: settings.range_errors == "observed"),
    "400-size": ("size_errors: observed", lambda settings: settings.size_errors == "observed"),
    # a live dialect: all three were seen
    "429-plain": ("dialect: observed or plain", lambda settings: settings.dialect != "documented"),
}


def whole_url(run: Run) -> str | None:
    """Every image URL is downloaded whole, never cut short (live URLs carry an STS token and
    run to ~1.9 KB: a 255- or 512-character column cuts them)."""
    served = _served(run)
    for exchange in run.downloads:
        if exchange.url in served:
            continue
        asked = _comparable(exchange.url)
        if "?" not in asked.rstrip("?"):
            continue  # the query dropped whole, not cut: a stripped URL, which ``downloads`` names
        whole = next(
            (url for url in served if len(asked) < len(_comparable(url)) and _comparable(url).startswith(asked)), None
        )
        if whole is not None:
            name = urlsplit(whole).path.rsplit("/", 1)[-1]
            return (
                f"downloaded {name} by its URL cut to {len(exchange.url)} characters of the {len(whole)} served: "
                "keep image URLs whole (live ones carry a ~1.3 KB token, ~1.9 KB in all)"
            )
    return None


def image_type(run: Run) -> str | None:
    """An image served as ``application/octet-stream`` (as the live store serves them) is still
    the image: a client judges the bytes, not the Content-Type."""
    if run.error is None:
        return None
    for exchange in run.downloads:
        kind = exchange.headers.get("content-type", "")
        good = exchange.status == 200 and exchange.failure is None and exchange.fault is None
        if good and not kind.startswith("image/") and exchange.body.startswith(b"\x89PNG\r\n\x1a\n"):
            return (
                f"raised {type(run.error).__name__} on an image served as {kind!r}, as the live store serves "
                f"them: check the bytes (a PNG starts with \\x89PNG), not the Content-Type: {str(run.error)[:120]!r}"
            )
    return None


_BROKEN_ESCAPE = re.compile(r"%[0-9A-Fa-f]?$")


def _comparable(url: str) -> str:
    """``url`` decoded, without an escape cut in half at its end (``...%2`` of ``%2B``)."""
    return _BROKEN_ESCAPE.sub("", unquote(url))


def _served(run: Run) -> list[str]:
    urls: list[str] = []
    for exchange in run.generations:
        if exchange.status != 200:
            continue
        try:
            body = json.loads(exchange.body)
        except ValueError:
            continue
        for key in ("images", "data"):
            items = body.get(key) if isinstance(body, dict) else None
            for item in items if isinstance(items, list) else []:
                if isinstance(item, dict) and isinstance(item.get("url"), str):
                    urls.append(item["url"])
    return urls
