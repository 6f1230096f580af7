"""Image bytes: rendering the PNGs the fake returns, and reading input images.

Rendering is a palette mosaic scaled with nearest-neighbour and saved at zlib level 1:
a few milliseconds for 1328x1328, a few kilobytes of PNG, and a bounded cache in front
so that repeated downloads of the same object cost nothing.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import io
import re
import warnings

from PIL import Image, UnidentifiedImageError

__all__ = ["probe_data_url", "render_png"]

_GRID = 8
_DATA_URL = re.compile(r"data:(image/[A-Za-z0-9.+-]+);base64,(.*)", re.DOTALL)


@functools.lru_cache(maxsize=256)
def render_png(seed: bytes, width: int, height: int) -> bytes:
    """A deterministic PNG of ``width`` x ``height`` drawn from ``seed``."""
    stream = hashlib.shake_256(seed).digest(48 + _GRID * _GRID)
    palette, cells = stream[:48], stream[48:]
    tiles = Image.frombytes("P", (_GRID, _GRID), bytes(c % 16 for c in cells))
    tiles.putpalette(palette)
    picture = tiles.resize((width, height), Image.Resampling.NEAREST)
    out = io.BytesIO()
    picture.save(out, format="PNG", compress_level=1)
    return out.getvalue()


def probe_data_url(text: str) -> tuple[int, int]:
    """The (width, height) of the image inside a ``data:image/...;base64,`` URL.

    Raises ``ValueError`` with a message fit for a 400 when the URL is not base64 or
    does not hold an image Pillow can identify.
    """
    match = _DATA_URL.fullmatch(text)
    if match is None:
        raise ValueError("is not a data:image/<type>;base64,<data> URL")
    payload = "".join(match.group(2).split())  # the docs show a space after the comma
    try:
        raw = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("holds invalid base64 data") from None
    if not raw:
        raise ValueError("holds no image data")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(raw)) as picture:
                return picture.size
    except Image.DecompressionBombError:
        raise ValueError("holds an image too large to process") from None
    except (UnidentifiedImageError, OSError, SyntaxError):
        raise ValueError(f"does not hold a decodable {match.group(1)} image") from None
