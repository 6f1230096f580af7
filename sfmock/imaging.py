"""Image bytes: rendering the PNGs the fake returns, and reading input images.

Rendering is a palette mosaic scaled with nearest-neighbour and saved at zlib level 1:
a few milliseconds for 1328x1328, a few kilobytes of PNG, and a bounded cache in front
so that repeated downloads of the same object cost nothing. The servers render on a
worker pool (:mod:`sfmock.offload`), not on the event loop.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import re
import threading
import warnings
from collections import OrderedDict

from PIL import Image, UnidentifiedImageError

__all__ = ["decode_base64", "forget_renders", "probe_data_url", "render_png", "rendered_png", "renders_held"]

_GRID = 8
_WHITESPACE = b"\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f "  # what str.split() drops, in ASCII
_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_PROBES_KEPT = 64
_PROBED_LOCK = threading.Lock()
_PROBED: dict[tuple[int, int], tuple[int, int] | str] = {}  # oldest first
# the renders kept: keyed by the object a URL names (and, for thumbnails, by any name a
# client makes up), so bounded in count and in bytes
RENDERS_KEPT = 256
RENDERED_BYTES = 32 * 1024 * 1024
_RENDERED: OrderedDict[tuple[bytes, int, int], bytes] = OrderedDict()  # oldest first
_RENDERED_SIZE = [0]
_RENDERED_LOCK = threading.Lock()
_DATA_URL = re.compile(r"data:(image/[A-Za-z0-9.+-]+);base64,(.*)", re.DOTALL)


def decode_base64(text: str) -> bytes:
    """The bytes of strict base64 ``text``, whitespace anywhere allowed (the docs show a space
    after the comma); ``ValueError`` if it is not base64.

    The verdicts of ``base64.b64decode("".join(text.split()), validate=True)``, whose strict
    decoder takes 16 ms for a 1.4 MB data URL. Canonical base64 (alphabet, then at most two
    ``=`` that complete the last quad) is what ``a2b_base64``'s strict mode accepts: one pass
    over the string, no copies (2 ms for 1 MB). Anything it refuses is checked again with
    ``bytes.translate`` (whitespace dropped), and what is still not canonical goes to the
    strict decoder for its verdict.
    """
    try:
        return binascii.a2b_base64(text, strict_mode=True)  # ValueError too: a non-ASCII str
    except ValueError:
        pass
    if text.isascii():
        data = text.encode("ascii").translate(None, _WHITESPACE)
        body = data.rstrip(b"=")
        if not (len(data) % 4 or len(data) - len(body) > 2 or body.translate(None, _ALPHABET)):
            return binascii.a2b_base64(data)
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("holds invalid base64 data") from None


def rendered_png(seed: bytes, width: int, height: int) -> bytes | None:
    """The PNG :func:`render_png` made for these arguments, if it still holds it (the event
    loop asks before it hands a render to a worker thread)."""
    with _RENDERED_LOCK:
        png = _RENDERED.get((seed, width, height))
        if png is not None:
            _RENDERED.move_to_end((seed, width, height))
        return png


def render_png(seed: bytes, width: int, height: int) -> bytes:
    """A deterministic PNG of ``width`` x ``height`` drawn from ``seed``; the last
    :data:`RENDERS_KEPT` (at most :data:`RENDERED_BYTES` in all) are kept."""
    png = rendered_png(seed, width, height)
    if png is None:
        png = _render(seed, width, height)
        with _RENDERED_LOCK:
            _RENDERED[(seed, width, height)] = png
            _RENDERED_SIZE[0] += len(png)
            while len(_RENDERED) > RENDERS_KEPT or _RENDERED_SIZE[0] > RENDERED_BYTES:
                _RENDERED_SIZE[0] -= len(_RENDERED.popitem(last=False)[1])
    return png


def renders_held() -> tuple[int, int]:
    """How many renders the cache holds, and their bytes."""
    with _RENDERED_LOCK:
        return len(_RENDERED), _RENDERED_SIZE[0]


def forget_renders() -> None:
    """Empty the cache of :func:`render_png` (to time a render)."""
    with _RENDERED_LOCK:
        _RENDERED.clear()
        _RENDERED_SIZE[0] = 0


def _render(seed: bytes, width: int, height: int) -> bytes:
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
    does not hold an image Pillow can identify. A request's image is probed by the
    validator and again by the generator: the second probe is remembered by the string's
    hash (computed once per string by Python) rather than by the string, which may be
    megabytes.
    """
    key = (len(text), hash(text))
    known = _PROBED.get(key)
    if known is None:
        try:
            known = _probe(text)
        except ValueError as exc:
            known = str(exc)
        with _PROBED_LOCK:  # servers in threads probe too
            _PROBED[key] = known
            if len(_PROBED) > _PROBES_KEPT:
                del _PROBED[next(iter(_PROBED))]
    if isinstance(known, str):
        raise ValueError(known)
    return known


def _probe(text: str) -> tuple[int, int]:
    match = _DATA_URL.fullmatch(text)
    if match is None:
        raise ValueError("is not a data:image/<type>;base64,<data> URL")
    raw = decode_base64(match.group(2))
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
