"""The object store beside the API: serves generated PNGs through pre-signed URLs."""

from __future__ import annotations

import functools
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
    ) -> None:
        self.signer = signer
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
        png = (
            self.pictures.get(name.digest)
            or rendered_png(seed, name.width, name.height)
            or await RENDERING.run(render_png, seed, name.width, name.height)  # off the event loop
        )
        issued = self.signer.issued_at(request.query_params)
        headers = {
            STORE_HEADER: request_id,
            "ETag": f'"{name.digest}"',
            "Last-Modified": _http_date(issued),
            "Cache-Control": "private, max-age=0",
        }
        return Response(png, media_type=self.content_type, headers=headers)

    def check(self, object_name: str, request: Request) -> ObjectName:
        """The object a download may have, or :class:`DownloadDenied` saying why not."""
        if "authorization" in request.headers:
            raise DownloadDenied(403, "InvalidArgument", TWO_AUTH_MECHANISMS, ArgumentName="Authorization")
        self.signer.verify(object_name, request.query_params, self.clock.now())
        name = ObjectName.parse(object_name)
        if name is None or name.width * name.height > self.max_pixels:
            raise DownloadDenied(404, "NoSuchKey", "The specified key does not exist.", Key=object_name)
        return name


@functools.lru_cache(maxsize=64)  # the URLs of one busy second share it
def _http_date(when: float) -> str:
    return formatdate(when, usegmt=True)
