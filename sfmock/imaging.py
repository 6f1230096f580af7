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
from typing import IO, TYPE_CHECKING, cast

from PIL import Image, UnidentifiedImageError

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

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
    reader = _Base64Reader.of(match.group(2))
    # anything but canonical base64 is decoded whole (or refused) by the general path; the
    # cast: typeshed's RawIOBase is not an IO[bytes], though Pillow reads it as one
    source = cast("IO[bytes]", reader) if reader is not None else io.BytesIO(decode_base64(match.group(2)))
    if not source.seek(0, io.SEEK_END):
        raise ValueError("holds no image data")
    source.seek(0)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(source) as picture:
                return picture.size
    except Image.DecompressionBombError:
        raise ValueError("holds an image too large to process") from None
    except (UnidentifiedImageError, OSError, SyntaxError):
        raise ValueError(f"does not hold a decodable {match.group(1)} image") from None


class _Base64Reader(io.RawIOBase):
    """The bytes canonical base64 decodes to, as a file decoded on demand.

    A probe reads only an image's header, a few hundred bytes; decoding all of a 1 MB data
    URL to read them took 2 ms, checking that all of it is canonical base64 takes 0.5 ms.
    """

    def __init__(self, data: bytes, size: int) -> None:
        super().__init__()
        self._data = data
        self._size = size
        self._at = 0

    @classmethod
    def of(cls, text: str) -> _Base64Reader | None:
        """A reader of ``text``'s bytes if ``text`` is canonical base64 (the alphabet, then at
        most two ``=`` that complete the last quad), else ``None``."""
        if not text.isascii():
            return None
        data = text.encode("ascii")
        body = data.rstrip(b"=")
        if len(data) % 4 or len(data) - len(body) > 2 or body.translate(None, _ALPHABET):
            return None
        return cls(data, len(body) * 3 // 4)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._at

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        at = offset + (0, self._at, self._size)[whence]
        if at < 0:
            raise ValueError(f"negative seek value {at}")
        self._at = at
        return at

    def read(self, size: int | None = -1) -> bytes:
        start = min(self._at, self._size)
        end = self._size if size is None or size < 0 else min(self._size, start + size)
        if end <= start:
            return b""
        first, last = start // 3, -(-end // 3)  # the quads that hold [start, end)
        decoded = binascii.a2b_base64(self._data[first * 4 : last * 4])
        self._at = end
        return decoded[start - first * 3 : end - first * 3]

    def readall(self) -> bytes:
        return self.read()

    def readinto(self, buffer: WriteableBuffer) -> int:
        chunk = self.read(len(memoryview(buffer)))
        memoryview(buffer).cast("B")[: len(chunk)] = chunk
        return len(chunk)
