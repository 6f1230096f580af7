"""``sfmock proxy``: forward the API to the real service, check and record what it says.

The proxy answers each API call with the real service's answer, unchanged, and checks
the exchange against the contract (:mod:`sfmock.fidelity.drift`); disagreements are logged,
kept in a :class:`DriftLog` (``GET /_sfmock/drift``) and reported at exit. With a
recording folder, each exchange is written there, secrets scrubbed.

Outbound traffic goes to the ``upstream`` origin only, and only under ``/v1/`` once the
path is resolved (:mod:`sfmock.fidelity.proxy_guard`); bodies are capped as ``serve``
caps them. The one exception is opt-in (``downloads=True``): the image URLs of the
service's generation answers, on the upstream's origin or an allowed image origin,
are rewritten to point at the proxy, and the proxy downloads exactly those URLs, and
nothing else. A request can never make the proxy fetch a URL of its choosing.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections import OrderedDict
from collections.abc import AsyncIterator, Collection, Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sfmock.contract.openapi import Contract, load_contract
from sfmock.errors import ConfigError
from sfmock.fidelity.drift import Drift, check_exchange
from sfmock.fidelity.proxy_guard import (
    DEFAULT_MAX_BODY_BYTES,
    REAL_IMAGE_ORIGINS,
    browser_refusal,
    image_urls,
    read_body,
    upstream_path,
)
from sfmock.fidelity.recording import GENERATION_PATH, Exchange, Message, write_recording
from sfmock.scrubbing import scrub_text, secrets_in

__all__ = ["DriftLog", "create_proxy", "upstream_origin"]

log = logging.getLogger("sfmock.fidelity.proxy")

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
        "content-encoding",
    }
)
MAX_REMEMBERED_URLS = 1000
MAX_KEPT_DRIFTS = 10_000  # a proxy left running for days keeps the most recent


def upstream_origin(url: str, source: str = "--upstream") -> str:
    """``scheme://host[:port]`` of ``url`` (a trailing ``/v1`` is allowed and dropped);
    :class:`ConfigError` for anything else."""
    try:
        parts = urlsplit(url.strip())
        parts.port  # noqa: B018 - parses the host and the port
    except ValueError as exc:
        raise ConfigError(source, "upstream", f"expected an http(s) URL, got {url!r}: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(source, "upstream", f"expected an http(s) URL like https://api.siliconflow.cn, got {url!r}")
    if parts.path.rstrip("/") not in ("", "/v1") or parts.query or parts.fragment or parts.username:
        raise ConfigError(source, "upstream", f"expected the service's origin (no path, query or user), got {url!r}")
    return f"{parts.scheme}://{parts.netloc}"


class DriftLog:
    """The exchanges the proxy saw and the drift of each, bounded (oldest dropped)."""

    def __init__(self, size: int = 1000) -> None:
        self.size = size
        self._entries: list[dict[str, Any]] = []
        self._drifts: list[Drift] = []
        self._lock = threading.Lock()
        self.count = 0

    def add(self, exchange: Exchange, drifts: list[Drift]) -> None:
        """Note one exchange and its drift."""
        with self._lock:
            self.count += 1
            entry = {
                "id": self.count,
                "method": exchange.method,
                "path": scrub_text(exchange.path),
                "status": exchange.status,
                "drift": [d.to_json() for d in drifts],
            }
            self._entries = [*self._entries[-(self.size - 1) :], entry]
            self._drifts = [*self._drifts, *drifts][-MAX_KEPT_DRIFTS:]

    def drifts(self) -> list[Drift]:
        """Every drift seen so far, in order."""
        with self._lock:
            return list(self._drifts)

    def to_json(self) -> dict[str, Any]:
        """The control API's view: every drift, and the recent exchanges."""
        with self._lock:
            return {
                "exchanges": self.count,
                "drift": [d.to_json() for d in self._drifts],
                "entries": list(self._entries),
            }

    def clear(self) -> None:
        """Forget everything."""
        with self._lock:
            self._entries.clear()
            self._drifts.clear()
            self.count = 0


class Proxy:
    """The handlers: forward, check, record, and (opt-in) download remembered URLs."""

    def __init__(
        self,
        origin: str,
        *,
        record: Path | None,
        downloads: bool,
        contract: Contract,
        transport: httpx.AsyncBaseTransport | None,
        timeout: float,
        max_body_bytes: int,
        host_names: Collection[str],
        image_origins: Iterable[str],
    ) -> None:
        self.origin = origin
        self.max_body_bytes = max_body_bytes
        self.host_names = frozenset(host_names)
        self.image_origins = (origin, *image_origins)
        self.record = record
        self.downloads = downloads
        self.contract = contract
        self.log = DriftLog()
        self.client = httpx.AsyncClient(transport=transport, timeout=timeout, follow_redirects=False)
        self._client_options: dict[str, Any] = {"transport": transport, "timeout": timeout}
        self._images: OrderedDict[str, str] = OrderedDict()  # path?query on the proxy -> real URL
        self._lock = threading.Lock()
        self._index = 0

    async def forward(self, request: Request) -> Response:
        """Any method under ``/v1/``: the upstream's answer, unchanged."""
        raw = request.scope.get("raw_path") or request.url.path.encode()
        path = upstream_path(raw.decode("latin-1"))
        if path is None:
            message = "sfmock proxy: the path must stay under /v1/ (no '..' above it, no encoded '/' or '\\')"
            return JSONResponse({"error": message}, 400)
        body = await read_body(request, self.max_body_bytes)
        if isinstance(body, Response):
            return body
        query = request.url.query
        target = f"{self.origin}{path}" + (f"?{query}" if query else "")
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        try:
            answer = await self.client.request(request.method, target, headers=headers, content=body)
        except httpx.HTTPError as exc:
            log.warning("upstream %s failed: %s", self.origin, type(exc).__name__)
            return JSONResponse(f"sfmock proxy: the upstream failed: {type(exc).__name__}", status_code=502)
        exchange = Exchange(
            method=request.method,
            path=path,
            query=query,
            request=Message(headers=dict(request.headers), body=body),
            status=answer.status_code,
            response=Message(headers=_headers(answer.headers), body=answer.content),
            url=target,
        )
        self.note(exchange, secrets=secrets_in(request.headers, query))
        content = answer.content
        if self.downloads and answer.status_code == 200 and (request.method, path) == ("POST", GENERATION_PATH):
            content = self.expose_images(exchange, str(request.base_url).rstrip("/"))
        return Response(content, answer.status_code, headers=_headers(answer.headers))

    async def download(self, request: Request) -> Response:
        """``GET`` of an image URL the upstream returned (rewritten to this proxy)."""
        key = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        with self._lock:
            real = self._images.get(key)
        if real is None:
            return JSONResponse({"error": "sfmock proxy: not an image URL the upstream returned"}, status_code=404)
        try:
            answer = await self.client.get(real)
        except httpx.HTTPError as exc:
            return JSONResponse(f"sfmock proxy: the image host failed: {type(exc).__name__}", status_code=502)
        parts = urlsplit(real)
        exchange = Exchange(
            method="GET",
            path=parts.path,
            query=parts.query,
            request=Message(),
            status=answer.status_code,
            response=Message(headers=_headers(answer.headers), body=answer.content),
            url=real,
        )
        self.note(exchange, secrets=())
        return Response(answer.content, answer.status_code, headers=_headers(answer.headers))

    def note(self, exchange: Exchange, secrets: list[str] | tuple[str, ...]) -> None:
        """Check an exchange, log its drift, and record it."""
        drifts = check_exchange(exchange, self.contract)
        for drift in drifts:
            log.warning("drift: %s", drift)
        self.log.add(exchange, drifts)
        if self.record is not None:
            with self._lock:
                self._index += 1
                index = self._index
            write_recording(self.record, index, exchange, secrets)

    def expose_images(self, exchange: Exchange, base: str) -> bytes:
        """The body with each image URL moved onto this proxy, the real ones remembered.

        The body is parsed and written again: the service may escape ``&`` in JSON."""
        try:
            document = exchange.response.json()
        except ValueError:
            return exchange.response.body
        moved: dict[str, str] = {}
        for url in image_urls(document, self.image_origins):
            parts = urlsplit(url)
            key = parts.path + (f"?{parts.query}" if parts.query else "")
            if key.startswith(("/v1/", "/_sfmock/")):  # the proxy's own routes: never a download
                continue
            moved[url] = base + key
            with self._lock:
                self._images[key] = url
                while len(self._images) > MAX_REMEMBERED_URLS:
                    self._images.popitem(last=False)
        return json.dumps(_replace(document, moved), ensure_ascii=False, separators=(",", ":")).encode("utf-8")

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        """Open upstream connections for the app's life, and close them at the end."""
        self.client = httpx.AsyncClient(**self._client_options, follow_redirects=False)
        try:
            yield
        finally:
            await self.client.aclose()

    async def drift(self, request: Request) -> Response:
        """``GET /_sfmock/drift`` (the report so far) and ``DELETE`` (clear it)."""
        refusal = browser_refusal(request, self.host_names)
        if refusal is not None:
            return refusal
        if request.method == "DELETE":
            self.log.clear()
        return JSONResponse(self.log.to_json())


def create_proxy(
    upstream: str,
    *,
    record: str | Path | None = None,
    downloads: bool = False,
    contract: Contract | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    timeout: float = 180.0,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    host_names: Collection[str] = ("localhost", "127.0.0.1"),
    image_origins: Iterable[str] = REAL_IMAGE_ORIGINS,
) -> Starlette:
    """The recording, checking proxy as an ASGI app (``app.state.proxy.log`` is the drift log).

    ``max_body_bytes``: larger request bodies answer 413; ``host_names``: the names its
    control route answers to in ``Host`` (IP literals always pass); ``image_origins``:
    where, besides the upstream, image URLs may point for ``downloads``."""
    proxy = Proxy(
        upstream_origin(upstream),
        record=Path(record) if record is not None else None,
        downloads=downloads,
        contract=contract or load_contract(),
        transport=transport,
        timeout=timeout,
        max_body_bytes=max_body_bytes,
        host_names=host_names,
        image_origins=image_origins,
    )
    methods = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
    routes = [
        Route("/_sfmock/drift", proxy.drift, methods=["GET", "DELETE"]),
        Route("/v1/{rest:path}", proxy.forward, methods=methods),
    ]
    if downloads:
        routes.append(Route("/{rest:path}", proxy.download, methods=["GET"]))
    app = Starlette(routes=routes, lifespan=proxy.lifespan)
    app.state.proxy = proxy
    return app


def _replace(value: Any, moved: Mapping[str, str]) -> Any:
    if isinstance(value, dict):
        return {k: _replace(v, moved) for k, v in value.items()}
    if isinstance(value, list):
        return [_replace(v, moved) for v in value]
    if isinstance(value, str):
        return moved.get(value, value)
    return value


def _headers(headers: Mapping[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items() if k.lower() not in HOP_BY_HOP}
