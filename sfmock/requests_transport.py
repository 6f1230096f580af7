"""An in-process ``requests`` adapter: ``requests`` sessions straight into the app, as the
httpx transports of :mod:`sfmock.transports` do it, with requests' own responses and errors.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from starlette.types import ASGIApp

from sfmock.clock import Clock
from sfmock.transports import InProcess

__all__ = ["requests_adapter"]


def requests_adapter(app: ASGIApp | InProcess, clock: Clock | None = None) -> Any:
    """A ``requests`` adapter into the app: ``session.mount("http://", requests_adapter(app))``.

    Its responses are requests' own, built by ``HTTPAdapter.build_response`` over a urllib3
    response: ``stream=True``, ``iter_content``, ``.raw`` and ``with session.get(...)``
    behave as on a network, and a body cut short raises ``ChunkedEncodingError`` when it is
    read (at once unless ``stream=True``), as it does there.
    """
    import requests
    from requests.adapters import HTTPAdapter
    from urllib3.response import HTTPResponse

    inner = app if isinstance(app, InProcess) else InProcess(app, clock)

    class SfmockAdapter(HTTPAdapter):
        def send(
            self,
            request: requests.PreparedRequest,
            stream: bool = False,
            timeout: Any = None,
            verify: Any = True,
            cert: Any = None,
            proxies: Any = None,
        ) -> requests.Response:
            read_timeout = timeout[1] if isinstance(timeout, tuple) else timeout
            body = request.body or b""
            raw_headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in request.headers.items()]
            exchange = inner.call(
                request.method or "GET",
                request.url or "/",
                raw_headers,
                body.encode("utf-8") if isinstance(body, str) else body,
                read_timeout,
            )
            failures: dict[str | None, Callable[..., Exception]] = {
                "timeout": requests.exceptions.ReadTimeout,
                "dropped": requests.exceptions.ConnectionError,
            }
            if exchange.failure in failures:
                raise failures[exchange.failure](f"sfmock fault: {exchange.failure}", request=request)
            status = exchange.status or 0
            raw = HTTPResponse(
                body=_Body(exchange.body, cut=exchange.failure == "truncated"),
                headers=exchange.headers,
                status=status,
                reason=_reason(status),
                preload_content=False,
                decode_content=True,
                request_method=request.method,
                request_url=request.url,
            )
            return self.build_response(request, raw)

    return SfmockAdapter()


class _Body(io.RawIOBase):
    """A response body on the wire: all of it, or (``cut``) a part and then the end of the
    connection, which urllib3 reports as a broken connection (``ProtocolError``, requests'
    ``ChunkedEncodingError``). The end is a socket's error, which every urllib3 translates:
    urllib3-future (niquests' engine, which takes urllib3's name when installed) does not
    translate ``http.client``'s ``IncompleteRead``."""

    def __init__(self, data: bytes, *, cut: bool) -> None:
        super().__init__()
        self._data = io.BytesIO(data)
        self._cut = cut

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        count = self._data.readinto(buffer)
        if count == 0 and self._cut and len(buffer):
            raise ConnectionResetError(f"the connection closed after {self._data.tell()} bytes of the body")
        return count


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""
