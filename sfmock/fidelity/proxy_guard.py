"""What ``sfmock proxy`` lets in: paths under ``/v1/``, bodies under the cap, its control
route only from this machine's pages, and downloads only of the service's image URLs.

The proxy forwards with the caller's key, so a path that leaves ``/v1/`` once the
upstream resolves it (``/v1/%2e%2e/admin``) would carry that key anywhere on the
service; a download of any URL an answer holds would be a reflected SSRF. Everything
here decides before a byte goes out.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator
from typing import Any
from urllib.parse import unquote, urlsplit

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response

from sfmock.service.sameorigin import expected_host, local_origin

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "REAL_IMAGE_ORIGINS",
    "browser_refusal",
    "image_urls",
    "origin_of",
    "read_body",
    "upstream_path",
]

DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024  # serve's max_body_bytes
# where the real service's answers name their images (docs/siliconflow-api facts)
REAL_IMAGE_ORIGINS = ("https://s3.siliconflow.cn", "https://sc-maas.oss-cn-shanghai.aliyuncs.com")
_DEFAULT_PORTS = {"http": 80, "https": 443}


def upstream_path(raw_path: str) -> str | None:
    """The path to forward, its dot segments resolved and empty ones dropped, or ``None``
    when it leaves ``/v1/`` or holds what an upstream may read as a separator (``%2F``,
    ``\\``) or a control character. Each segment keeps its percent-encoding."""
    kept: list[tuple[str, str]] = []  # (as sent, decoded)
    for segment in raw_path.split("/")[1:]:
        decoded = unquote(segment)
        if decoded in ("", "."):
            continue
        if decoded == "..":
            if len(kept) <= 1:  # would climb out of /v1/
                return None
            kept.pop()
            continue
        if "/" in decoded or "\\" in decoded or any(ord(c) < 0x20 or ord(c) == 0x7F for c in decoded):
            return None
        kept.append((segment, decoded))
    if len(kept) < 2 or kept[0][1] != "v1":
        return None
    return "/" + "/".join(segment for segment, _ in kept)


async def read_body(request: Request, limit: int) -> bytes | Response:
    """The request's body, or the 413 once it passes ``limit`` (read no further)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                return _too_large(limit)
            chunks.append(chunk)
    except ClientDisconnect:
        return JSONResponse({"error": "sfmock proxy: the client went away before its body arrived"}, 400)
    return b"".join(chunks)


def _too_large(limit: int) -> Response:
    response = JSONResponse({"error": f"sfmock proxy: body over the limit of {limit} bytes"}, 413)
    response.headers["connection"] = "close"  # the rest of the body is not read
    return response


def browser_refusal(request: Request, host_names: Collection[str]) -> Response | None:
    """403 for a page of another origin (CSRF) or an unexpected ``Host`` (DNS rebinding),
    as ``serve``'s control API answers them; ``None`` to go on."""
    origins = request.headers.getlist("origin")
    if origins and not all(local_origin(origin, host_names) for origin in origins):
        return _forbidden(f"cross-origin request refused (Origin {origins[0][:100]!r})")
    if request.headers.get("sec-fetch-site") == "cross-site":
        return _forbidden("cross-site request refused (Sec-Fetch-Site: cross-site)")
    host = request.headers.get("host", "")
    if not expected_host(host, host_names):
        return _forbidden(f"unexpected Host {host[:100]!r} (DNS rebinding?)")
    return None


def _forbidden(message: str) -> Response:
    return JSONResponse({"error": f"sfmock proxy: {message}"}, 403)


def origin_of(url: str) -> str | None:
    """``scheme://host:port`` of an http(s) URL (the port always written), else ``None``."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname or parts.username is not None:
        return None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{scheme}://{host}:{port or _DEFAULT_PORTS[scheme]}"


def image_urls(answer: Any, allowed: Iterable[str]) -> Iterator[str]:
    """The image URLs of a generation's answer (``images[].url``, ``data[].url``) on an
    allowed origin; any other URL in the answer is not one."""
    origins = {origin_of(url) for url in allowed} - {None}
    if not isinstance(answer, dict):
        return
    for key in ("images", "data"):
        listed = answer.get(key)
        for image in listed if isinstance(listed, list) else ():
            url = image.get("url") if isinstance(image, dict) else None
            if isinstance(url, str) and origin_of(url) in origins:
                yield url
