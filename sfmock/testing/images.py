"""The images of a run: those its downloads delivered whole (a 200's body, or an object put
together from the parts its client asked for with ``Range``, a download resumed after a
cut or fetched in parts, as object storage serves them: 206, ``Content-Range``), and those
the client returned, read as images to compare with them."""

from __future__ import annotations

import base64
import binascii
import io
import os
import re
from collections.abc import Iterable, Sequence
from typing import Any
from urllib.parse import unquote_to_bytes

from sfmock.transports import Exchange

__all__ = ["as_images", "describe", "downloads_fine", "whole_images"]

_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+)")


def whole_images(downloads: Iterable[Exchange]) -> list[bytes]:
    """Each object the client had whole, in the order it had it: a 200 answered in full,
    or the moment its parts (the start of a cut 200, 206 answers, cut or not) covered every
    byte of it."""
    images: list[bytes] = []
    parts: dict[str, dict[int, bytes]] = {}  # object path -> offset -> the longest bytes got there
    sizes: dict[str, int] = {}
    for exchange in downloads:
        if exchange.status == 200:
            if exchange.failure is None:
                images.append(exchange.body)
            offset, size = 0, int(exchange.headers.get("content-length", "-1") or -1)
        elif exchange.status == 206:
            found = _CONTENT_RANGE.fullmatch(exchange.headers.get("content-range", ""))
            if found is None:
                continue
            offset, size = int(found.group(1)), int(found.group(3))
        else:
            continue
        if size >= 0:
            sizes[exchange.path] = size
        got = parts.setdefault(exchange.path, {})
        if exchange.body and len(exchange.body) > len(got.get(offset, b"")):
            got[offset] = exchange.body
        if exchange.status == 206:
            joined = _joined(got, sizes.get(exchange.path, -1))
            if joined is not None:
                images.append(joined)
    return images


def downloads_fine(downloads: Iterable[Exchange]) -> bool:
    """Every download was answered in full (200, or the 206 of a range), with no fault."""
    return all(d.status in (200, 206) and d.failure is None and d.fault is None for d in downloads)


def _joined(parts: dict[int, bytes], size: int) -> bytes | None:
    """The object of ``size`` bytes the ``parts`` (offset -> bytes) cover, or ``None``."""
    if size <= 0:
        return None
    whole, reached = bytearray(size), 0
    for offset in sorted(parts):
        if offset > reached:
            return None  # a gap
        piece = parts[offset][: size - offset]
        whole[offset : offset + len(piece)] = piece
        reached = max(reached, offset + len(piece))
        if reached >= size:
            return bytes(whole)
    return None


def as_images(result: Any, served: Sequence[bytes] = ()) -> list[bytes] | None:
    """The images a client returned, as bytes to compare with those ``served``: bytes, a
    path, a ``data:image/...;base64,`` URL, a Pillow image (the served PNG whose pixels it
    holds), or a list of those; ``None`` for anything else."""
    if isinstance(result, bytes | bytearray | memoryview):
        return [bytes(result)]
    if isinstance(result, str) and result.startswith("data:image/"):
        head, _, data = result.partition(",")
        try:
            return [base64.b64decode(data, validate=True) if head.endswith(";base64") else unquote_to_bytes(data)]
        except (binascii.Error, ValueError):
            return None
    if type(result).__module__.startswith("PIL.") and hasattr(result, "tobytes"):
        return [_shown(result, served)]
    if isinstance(result, os.PathLike) or (isinstance(result, str) and 0 < len(result) < 4096):
        try:
            with open(result, "rb") as file:
                return [file.read()]
        except (OSError, ValueError):
            return None
    if isinstance(result, list | tuple) and result:
        images = [as_images(item, served) for item in result]
        if all(image is not None and len(image) == 1 for image in images):
            return [image[0] for image in images if image]
    return None


def _shown(picture: Any, served: Sequence[bytes]) -> bytes:
    """The served PNG whose decoded pixels a Pillow image holds (``b"PIL"`` when none does:
    no image's bytes)."""
    from PIL import Image

    for png in served:
        try:
            with Image.open(io.BytesIO(png)) as image:
                if image.size == picture.size and image.convert(picture.mode).tobytes() == picture.tobytes():
                    return png
        except (OSError, ValueError, SyntaxError):
            continue
    return b"PIL"


def describe(result: Any, served: list[bytes]) -> str:
    if result is None:
        return "None"
    if isinstance(result, bytes | bytearray | memoryview):
        data = bytes(result)
        if not data:
            return 'b""'
        if any(image.startswith(data) for image in served):
            whole = next(len(image) for image in served if image.startswith(data))
            return f"part of the image ({len(data)} of {whole} bytes)"
        return f"{len(data)} bytes that are not the image (they begin {data[:24]!r})"
    if type(result).__module__.startswith("PIL.") and hasattr(result, "size"):
        width, height = result.size
        return f"a Pillow image ({width}x{height}, {result.mode}) whose pixels are not the image's"
    return f"a {type(result).__name__} ({str(result)[:60]!r})"
