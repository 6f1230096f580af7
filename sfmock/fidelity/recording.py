"""Recorded exchanges with the real service: one readable JSON file per request.

A recording holds the request (method, path, query, headers, body) and the answer
(status, headers, body). Bodies are kept as JSON when they are JSON, as text when they
are text, and as base64 otherwise (a PNG). Everything goes through :func:`scrub`
before it is written: API keys, signatures and credentials never reach the disk.

The files of ``fixtures/responses/`` (``{status, headers, body}`` only) load too, as
answers to ``POST /v1/images/generations``.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import re
import struct
import warnings
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from PIL import Image, UnidentifiedImageError

from sfmock.errors import ConfigError
from sfmock.scrubbing import REDACTED, scrub, scrub_query, scrub_text

__all__ = ["REDACTED", "Exchange", "Message", "load_recordings", "scrub", "scrub_url", "write_recording"]

GENERATION_PATH = "/v1/images/generations"
_URL = re.compile(r"https?://[^\s\"'<>]+", re.IGNORECASE)
MAX_DEPTH = 64  # nesting of a recording's JSON; a real answer has a handful of levels
MAX_PICTURE_PIXELS = 4096 * 4096  # a recorded image larger than any the service makes is refused


@dataclass(frozen=True, kw_only=True)
class Message:
    """One side of an exchange: headers (lower-case names) and the raw body."""

    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""

    def json(self) -> Any:
        """The body as JSON (``ValueError`` when it is not)."""
        return json.loads(self.body)


@dataclass(frozen=True, kw_only=True)
class Exchange:
    """A request and the answer it got."""

    method: str
    path: str
    query: str = ""
    request: Message = field(default_factory=Message)
    status: int
    response: Message = field(default_factory=Message)
    url: str = ""  # the full URL called, scrubbed
    source: str = ""  # the file it came from, when loaded

    def to_document(self, secrets: Iterable[str] = ()) -> dict[str, Any]:
        """A JSON-ready document, secrets (and each string of ``secrets``) scrubbed."""
        document: dict[str, Any] = scrub(
            {
                "request": {
                    "method": self.method,
                    "url": self.url,
                    "path": self.path,
                    "query": scrub_query(self.query),
                    "headers": dict(self.request.headers),
                    **_encode_body(self.request),
                },
                "response": {
                    "status": self.status,
                    "headers": dict(self.response.headers),
                    **_encode_body(self.response),
                },
            },
            secrets,
        )
        return document

    @classmethod
    def from_document(cls, document: Any, source: str) -> Exchange:
        """An exchange from a recording file, or a ``{status, headers, body}`` fixture."""
        if not isinstance(document, dict):
            raise ConfigError(source, "(top level)", "expected a JSON object with 'request' and 'response'")
        if "response" not in document and "status" in document:
            document = {"request": {"method": "POST", "path": GENERATION_PATH}, "response": document}
        request, response = document.get("request"), document.get("response")
        if not isinstance(request, dict) or not isinstance(response, dict):
            raise ConfigError(source, "request/response", "expected both, each a JSON object")
        status = response.get("status")
        if not isinstance(status, int) or not 100 <= status <= 599:
            raise ConfigError(source, "response.status", f"expected an HTTP status, got {status!r}")
        method, path = request.get("method"), request.get("path")
        if not isinstance(method, str) or not isinstance(path, str) or not path.startswith("/"):
            raise ConfigError(source, "request.method/path", "expected a method and an absolute path")
        return cls(
            method=method.upper(),
            path=path,
            query=str(request.get("query", "")),
            request=Message(
                headers=_headers(request, source, "request"), body=_decode_body(request, source, "request")
            ),
            status=status,
            response=Message(
                headers=_headers(response, source, "response"), body=_decode_body(response, source, "response")
            ),
            url=str(request.get("url", "")),
            source=source,
        )


def write_recording(directory: Path, index: int, exchange: Exchange, secrets: Iterable[str] = ()) -> Path:
    """Write ``exchange`` (scrubbed) as ``NNNN-METHOD-path-STATUS.json`` in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    clean = scrub_text(exchange.path, secrets)  # a key inside the path stays out of the name too
    slug = re.sub(r"[^A-Za-z0-9]+", "-", clean).strip("-")[:60] or "root"
    path = directory / f"{index:04d}-{exchange.method}-{slug}-{exchange.status}.json"
    text = json.dumps(exchange.to_document(secrets), indent=2, ensure_ascii=False, sort_keys=False)
    path.write_text(text + "\n", "utf-8")
    return path


def load_recordings(location: str | Path) -> list[Exchange]:
    """Every ``*.json`` recording in a folder (sorted by name), or one file."""
    root = Path(location)
    if root.is_dir():
        files: Iterable[Path] = sorted(root.glob("*.json"))
    elif root.is_file():
        files = [root]
    else:
        raise ConfigError(str(root), "(path)", "no such file or folder of recordings")
    exchanges = []
    for file in files:
        try:
            document = json.loads(file.read_text("utf-8"))
            json.dumps(document, ensure_ascii=False).encode("utf-8")  # a lone surrogate cannot be served
        except RecursionError:
            raise ConfigError(str(file), "(file)", f"expected JSON nested at most {MAX_DEPTH} deep") from None
        except (OSError, ValueError) as exc:
            raise ConfigError(str(file), "(file)", f"expected a JSON recording in UTF-8: {exc}") from None
        if _too_deep(document):
            raise ConfigError(str(file), "(file)", f"expected JSON nested at most {MAX_DEPTH} deep")
        exchange = Exchange.from_document(document, str(file))
        _check_urls(exchange)
        _check_picture(exchange)
        exchanges.append(exchange)
    return exchanges


def _too_deep(document: Any) -> bool:
    level: list[Any] = [document]
    for _ in range(MAX_DEPTH + 1):
        level = [
            child
            for value in level
            if isinstance(value, dict | list)
            for child in (value.values() if isinstance(value, dict) else value)
        ]
        if not level:
            return False
    return True


def _check_urls(exchange: Exchange) -> None:
    """Every URL a recording holds parses (replay signs its image URLs again)."""
    try:
        body: Any = exchange.response.json()
    except ValueError:
        body = None
    for where, url in [("request.url", exchange.url), *(("response.body", u) for u in iter_urls(body))]:
        try:
            urlsplit(url).port  # noqa: B018 - parses the host and the port
        except ValueError as exc:
            raise ConfigError(exchange.source, where, f"expected a URL, got {url[:200]!r}: {exc}") from None


def _check_picture(exchange: Exchange) -> None:
    """A recorded image is one Pillow reads, of a size the service makes."""
    if not exchange.response.headers.get("content-type", "").startswith("image/"):
        return
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(exchange.response.body)) as picture:
                width, height = picture.size
    except Image.DecompressionBombError:  # Pillow names no size: a PNG's header does
        body = exchange.response.body
        if body[12:16] != b"IHDR":
            message = f"expected an image of at most {MAX_PICTURE_PIXELS} pixels; its header claims far more"
            raise ConfigError(exchange.source, "response.body_base64", message) from None
        width, height = struct.unpack(">II", body[16:24])
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise ConfigError(exchange.source, "response.body_base64", "expected an image Pillow can read") from None
    if width * height > MAX_PICTURE_PIXELS:
        raise ConfigError(
            exchange.source,
            "response.body_base64",
            f"expected an image of at most {MAX_PICTURE_PIXELS} pixels, got {width}x{height}",
        )


def scrub_url(url: str) -> str:
    """``url`` without user info and with secret query parameters redacted."""
    return scrub_text(url)


def _encode_body(message: Message) -> dict[str, Any]:
    if not message.body:
        return {}
    try:
        return {"body": json.loads(message.body)}
    except ValueError:
        pass
    try:
        return {"body_text": message.body.decode("utf-8")}
    except UnicodeDecodeError:
        return {"body_base64": base64.b64encode(message.body).decode("ascii")}


def _decode_body(part: Mapping[str, Any], source: str, side: str) -> bytes:
    if "body" in part:
        return json.dumps(part["body"], ensure_ascii=False).encode("utf-8")
    if "body_text" in part:
        return str(part["body_text"]).encode("utf-8")
    if "body_base64" in part:
        try:
            return base64.b64decode(str(part["body_base64"]), validate=True)
        except (binascii.Error, ValueError):
            raise ConfigError(source, f"{side}.body_base64", "expected base64 (A-Z a-z 0-9 + /, = padding)") from None
    return b""


def _headers(part: Mapping[str, Any], source: str, side: str) -> dict[str, str]:
    headers = part.get("headers", {})
    if not isinstance(headers, dict):
        raise ConfigError(source, f"{side}.headers", "expected a JSON object of header names to values")
    return {str(k).lower(): str(v) for k, v in headers.items()}


def iter_urls(value: Any) -> Iterator[str]:
    """Every http(s) URL inside a JSON value."""
    if isinstance(value, dict):
        for item in value.values():
            yield from iter_urls(item)
    elif isinstance(value, list):
        for item in value:
            yield from iter_urls(item)
    elif isinstance(value, str):
        yield from _URL.findall(value)
