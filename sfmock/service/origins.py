"""Where image URLs point: the image host's origin, as the request that asks for them sees it.

The real API answers on one host and its images live on another (an object store), so
by default sfmock names images on an origin of its own (another port); ``image_port:
same`` keeps them on the API's. Both sockets serve every route, so this decides only
which origin an image URL names; signatures do not depend on it.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from starlette.requests import Request

from sfmock.service.headers import first_header

__all__ = [
    "IMAGE_URL_STATE",
    "IN_PROCESS_API",
    "IN_PROCESS_IMAGES",
    "Origins",
]

# the host names of the in-process transports: the API, and the image host beside it
IN_PROCESS_API = "http://sfmock.test"
IN_PROCESS_IMAGES = "http://images.sfmock.test"
_IN_PROCESS_NAMES = frozenset({"sfmock.test", "images.sfmock.test"})

# scope["state"][...]: the base URL image URLs name, set by whoever serves the app on a
# socket of its own (a Recorder): it wins over everything configured
IMAGE_URL_STATE = "image_url"

_HOST = re.compile(r"(?P<name>[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252})|\[[0-9A-Fa-f:.]+\])(?::(?P<port>[0-9]{1,5}))?")


@dataclass(frozen=True, kw_only=True, eq=False)  # hashed by identity: _from_host's cache hashes it per request
class Origins:
    """The image origin of each answer.

    ``image_port`` is the image host's port (``None``: one origin, the API's);
    ``configured`` says a public URL names the images (``image_public_url``, or
    ``public_url``); ``from_host`` says the configured address means nothing to a client
    (bound off loopback without public URLs), so the request's ``Host`` decides.
    """

    image_port: int | None
    configured: bool
    from_host: bool

    def image_base(self, request: Request) -> str | None:
        """The base URL for this request's image URLs, or ``None`` for the configured one."""
        given: str | None = request.scope.get("state", {}).get(IMAGE_URL_STATE)
        if given is not None:
            return given
        if self.configured:
            return None
        scope = request.scope
        host = first_header(scope, "host") or ""
        return self._from_host(host, scope.get("scheme", "http"))

    @functools.lru_cache(maxsize=256)  # noqa: B019 - one per app, for its life; a few Host values
    def _from_host(self, host: str, scheme: str) -> str | None:
        match = _HOST.fullmatch(host)
        if match is None:
            return None
        if match["name"].lower() in _IN_PROCESS_NAMES:
            return IN_PROCESS_API if self.image_port is None else IN_PROCESS_IMAGES
        if not self.from_host:
            return None
        if self.image_port is None:
            return f"{scheme}://{match[0]}"
        return f"{scheme}://{match['name']}:{self.image_port}"
