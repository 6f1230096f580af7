"""The object store beside the API: serves generated PNGs through pre-signed URLs."""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from email.utils import formatdate

from starlette.requests import Request
from starlette.responses import Response

from sfmock.clock import Clock
from sfmock.errors import DownloadDenied
from sfmock.imaging import render_png, rendered_png
from sfmock.offload import RENDERING
from sfmock.service.responses import xml_error
from sfmock.service.signing import ObjectName, UrlSigner
from sfmock.service.tracing import STORE_HEADER

__all__ = [
    "IMAGE_CONTENT_TYPES",
    "IMAGE_PREFIX",
    "SESSION_PARAM",
    "ImageHost",
]

# where images are served by default: seen in 2026 (``/default/outputs/`` until then)
IMAGE_PREFIX = "/temporary/outputs/"

TWO_AUTH_MECHANISMS = (
    "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, "
    "Signature query string parameter or the Authorization header should be specified"
)

# the image_content_type setting: what the store says a PNG is; the live one sends
# application/octet-stream [seen 2026], so a client checking for image/* fails on it
IMAGE_CONTENT_TYPES = ("image/png", "application/octet-stream")

# Downloads carry no header of their own: an image URL issued in a session names it in this
# query parameter (the image host ignores it; the chaos layer reads it).
SESSION_PARAM = "X-Sfmock-Session"


class ImageHost:
    """Checks a download's signature and expiry on the clock, then renders the PNG."""

    def __init__(
        self,
        signer: UrlSigner,
        clock: Clock,
        max_pixels: int,
        pictures: Mapping[str, bytes] | None = None,
        content_type: str = "image/png",
        ranges: bool = True,
    ) -> None:
        self.signer = signer
        self.ranges = ranges  # the byte_ranges setting: one Range answered 206, as S3 does
        self.content_type = content_type
        self.clock = clock
        self.max_pixels = max_pixels
        self.pictures = pictures if pictures is not None else {}  # digest -> recorded PNG (replay)

    async def download(self, request: Request) -> Response:
        """``GET {image_prefix}{object}`` (``/temporary/outputs/`` by default)."""
        request_id = request.state.trace_id
        try:
            name = self.check(request.path_params["object"], request)
        except DownloadDenied as denied:
            return xml_error(denied, request_id)
        seed = bytes.fromhex(name.digest)
        png = self.pictures.get(name.digest) or rendered_png(seed, name.width, name.height)
        if png is None:
            png = await RENDERING.run(render_png, seed, name.width, name.height)  # off the event loop
        issued = self.signer.issued_at(request.query_params)
        etag, modified = f'"{name.digest}"', _http_date(issued)
        headers = {
            STORE_HEADER: request_id,
            "ETag": etag,
            "Last-Modified": modified,
            "Cache-Control": "private, max-age=0",
        }
        if not self.ranges:
            return Response(png, media_type=self.content_type, headers=headers)
        headers["Accept-Ranges"] = "bytes"
        asked = request.headers.get("range")
        if asked is None or request.headers.get("if-range", etag) not in (etag, modified):
            return Response(png, media_type=self.content_type, headers=headers)
        span = byte_range(asked, len(png))
        if span is None:  # not one well-formed byte range: the whole object, as S3 does
            return Response(png, media_type=self.content_type, headers=headers)
        if span is UNSATISFIABLE:
            refused = DownloadDenied(
                416,
                "InvalidRange",
                "The requested range is not satisfiable",
                RangeRequested=asked[:200],
                ActualObjectSize=str(len(png)),
            )
            answer = xml_error(refused, request_id)
            answer.headers["Content-Range"] = f"bytes */{len(png)}"
            return answer
        first, last = span
        headers["Content-Range"] = f"bytes {first}-{last}/{len(png)}"
        return Response(png[first : last + 1], 206, media_type=self.content_type, headers=headers)

    def check(self, object_name: str, request: Request) -> ObjectName:
        """The object a download may have, or :class:`DownloadDenied` saying why not."""
        if "authorization" in request.headers:
            raise DownloadDenied(403, "InvalidArgument", TWO_AUTH_MECHANISMS, ArgumentName="Authorization")
        self.signer.verify(object_name, request.query_params, self.clock.now())
        name = ObjectName.parse(object_name)
        if name is None or name.width * name.height > self.max_pixels:
            raise DownloadDenied(404, "NoSuchKey", "The specified key does not exist.", Key=object_name)
        return name


UNSATISFIABLE = (-1, -1)  # byte_range: a range that starts past the object's end
_RANGE = re.compile(r"bytes=(?:(\d{1,30})-(\d*)|-(\d{1,30}))", re.IGNORECASE)


def byte_range(header: str, size: int) -> tuple[int, int] | None:
    """The first and last byte a ``Range`` header asks of an object of ``size`` bytes, as
    S3 reads it: one range (``bytes=0-99``, ``bytes=100-``, ``bytes=-100``), its end cut to
    the object's; :data:`UNSATISFIABLE` when it starts past the end (or asks the last 0
    bytes); ``None`` for anything else (several ranges, another unit, bad syntax), which S3
    answers with the whole object."""
    found = _RANGE.fullmatch(header.strip())
    if found is None:
        return None
    first, last, suffix = found.groups()
    if suffix is not None:
        wanted = int(suffix)
        return UNSATISFIABLE if wanted == 0 or size == 0 else (max(0, size - wanted), size - 1)
    start, digits = int(first), last.lstrip("0")
    end = size if len(digits) > 30 else int(digits or "0")  # an end of any length: past the object's
    if last and end < start:
        return None  # backwards: not a valid range (RFC 9110), ignored
    if start >= size:
        return UNSATISFIABLE
    return (start, min(end, size - 1) if last else size - 1)


@functools.lru_cache(maxsize=64)  # the URLs of one busy second share it
def _http_date(when: float) -> str:
    return formatdate(when, usegmt=True)
