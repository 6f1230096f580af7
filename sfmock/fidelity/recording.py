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
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from sfmock.errors import ConfigError

__all__ = ["REDACTED", "Exchange", "Message", "load_recordings", "scrub", "scrub_url", "write_recording"]

REDACTED = "REDACTED"
GENERATION_PATH = "/v1/images/generations"
# a header or query parameter whose name says it carries a secret
_SECRET_NAME = re.compile(r"auth|token|key|secret|signature|credential|cookie|session|password", re.IGNORECASE)
_URL = re.compile(r"https?://[^\s\"'<>]+")
_USERINFO = re.compile(r"//[^/@\s]+@")
_BEARER = re.compile(r"(Bearer\s+)[^\s\"',]+", re.IGNORECASE)
_API_KEY = re.compile(r"\bsk-[A-Za-z0-9_-]{6,}")


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
            request=Message(headers=_headers(request, source, "request"), body=_decode_body(request)),
            status=status,
            response=Message(headers=_headers(response, source, "response"), body=_decode_body(response)),
            url=str(request.get("url", "")),
            source=source,
        )


def write_recording(directory: Path, index: int, exchange: Exchange, secrets: Iterable[str] = ()) -> Path:
    """Write ``exchange`` (scrubbed) as ``NNNN-METHOD-path-STATUS.json`` in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    slug = re.sub(r"[^A-Za-z0-9]+", "-", exchange.path).strip("-")[:60] or "root"
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
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise ConfigError(str(file), "(file)", f"expected a JSON recording: {exc}") from None
        exchanges.append(Exchange.from_document(document, str(file)))
    return exchanges


def scrub(value: Any, secrets: Iterable[str] = ()) -> Any:
    """``value`` with credentials replaced by ``REDACTED``, wherever they sit.

    Headers and keys whose names say secret (authorization, cookie, anything with
    token, key, signature, credential...) lose their values; URLs lose their user
    info and secret query parameters; bearer tokens, ``sk-...`` keys and each string
    of ``secrets`` are cut out of any text.
    """
    known = [s for s in secrets if len(s) >= 4]
    return _scrub(value, known, None)


def _scrub(value: Any, secrets: list[str], name: str | None) -> Any:
    if isinstance(value, dict):
        return {k: _scrub(v, secrets, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(v, secrets, name) for v in value]
    if not isinstance(value, str):
        return value
    if name is not None and _SECRET_NAME.search(name) and name not in _KEEP:
        return REDACTED if value else value
    text = _URL.sub(lambda m: scrub_url(m.group(0)), value)
    text = _BEARER.sub(r"\g<1>" + REDACTED, text)
    text = _API_KEY.sub(REDACTED, text)
    for secret in secrets:
        text = text.replace(secret, REDACTED)
    return text


# names matching _SECRET_NAME that hold no secret: the structure of a recording
_KEEP = frozenset({"x-amz-signedheaders", "X-Amz-SignedHeaders"})


def scrub_url(url: str) -> str:
    """``url`` without user info and with secret query parameters redacted."""
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit(parts._replace(netloc=netloc, query=scrub_query(parts.query)))


def scrub_query(query: str) -> str:
    """A query string with the values of secret parameters redacted."""
    if not query:
        return query
    pairs = parse_qsl(query, keep_blank_values=True)
    clean = [(k, REDACTED if _SECRET_NAME.search(k) and k not in _KEEP else v) for k, v in pairs]
    return urlencode(clean, safe="")


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


def _decode_body(part: Mapping[str, Any]) -> bytes:
    if "body" in part:
        return json.dumps(part["body"], ensure_ascii=False).encode("utf-8")
    if "body_text" in part:
        return str(part["body_text"]).encode("utf-8")
    if "body_base64" in part:
        return base64.b64decode(str(part["body_base64"]))
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
