"""What the catalogue's clients share: the error they raise and small helpers.

The helpers are the dull parts every client writes the same way (which statuses are
transient, reading ``Retry-After``, finding the image URLs); each client's style and its
one flaw live in the client itself.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

TRANSIENT = frozenset({429, 500, 502, 503, 504})
TRACE = "x-siliconcloud-trace-id"
READ_TIMEOUT = 60.0  # a generation takes seconds; the real service sometimes takes tens of seconds

# a 1x1 transparent PNG: what a "never fail the page" client shows instead of the picture
PLACEHOLDER_PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII="
)


class ImageApiError(Exception):
    """A generation or download that failed: the status and the trace id, never the key."""

    def __init__(self, message: str, *, status: int | None = None, trace_id: str | None = None) -> None:
        self.status_code = status
        self.trace_id = trace_id
        where = f"HTTP {status}" if status is not None else "no answer"
        super().__init__(f"{where}: {message} (trace id {trace_id})")


class Transient(ImageApiError):
    """A failure worth another try, with the seconds the server asked us to wait."""

    def __init__(
        self, message: str, *, status: int | None = None, trace_id: str | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message, status=status, trace_id=trace_id)
        self.retry_after = retry_after


def retry_after(headers: Mapping[str, str]) -> float | None:
    """``Retry-After`` in seconds when the server sent a number, else None."""
    value = headers.get("retry-after")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def image_urls(body: Mapping[str, Any]) -> list[str]:
    """The image URLs of a generation answer: ``images`` is documented, ``data`` is the OpenAI-style copy."""
    items = body.get("images") or body.get("data") or []
    return [item["url"] for item in items]


def status_error(status: int, headers: Mapping[str, str], text: str) -> ImageApiError:
    """The error for an HTTP failure of a generation, transient or not."""
    message = text[:200]
    if status in TRANSIENT:
        return Transient(message, status=status, trace_id=headers.get(TRACE), retry_after=retry_after(headers))
    return ImageApiError(message, status=status, trace_id=headers.get(TRACE))


def download_error(status: int, headers: Mapping[str, str], text: str, trace_id: str | None) -> ImageApiError:
    """The error for a refused download: its status, the store's request id and the generation's trace id."""
    request_id = headers.get("x-amz-request-id")
    message = f"image download refused (request id {request_id}): {text[:200]}"
    return ImageApiError(message, status=status, trace_id=trace_id)
