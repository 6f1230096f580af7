"""Rendering PNGs and reading input images."""

from __future__ import annotations

import base64
import binascii
import io
import re
import warnings
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, UnidentifiedImageError

from conftest import data_url
from sfmock.imaging import _probe, decode_base64, forget_renders, probe_data_url, render_png


@pytest.mark.parametrize("size", [(1, 1), (96, 64), (1024, 1024), (1328, 1328), (720, 1440)])
def test_render_has_the_size_asked(size: tuple[int, int]) -> None:
    with Image.open(io.BytesIO(render_png(b"seed", *size))) as picture:
        picture.load()
        assert picture.format == "PNG" and picture.size == size


def test_render_is_deterministic_and_seed_dependent() -> None:
    forget_renders()
    first = render_png(b"a", 256, 256)
    forget_renders()
    assert render_png(b"a", 256, 256) == first
    assert render_png(b"b", 256, 256) != first


def test_probe_reads_the_input_size() -> None:
    assert probe_data_url(data_url()) == (96, 64)
    jpeg = io.BytesIO()
    Image.new("RGB", (33, 44)).save(jpeg, "JPEG")
    assert probe_data_url("data:image/jpeg;base64," + base64.b64encode(jpeg.getvalue()).decode()) == (33, 44)


def test_probe_tolerates_the_space_the_docs_show() -> None:
    url = data_url().replace("base64,", "base64, ")
    assert probe_data_url(url) == (96, 64)


@pytest.mark.parametrize(
    ("url", "phrase"),
    [
        ("data:image/png;base64,@@@", "invalid base64"),
        ("data:image/png;base64,", "no image data"),
        ("data:image/png;base64,aGVsbG8=", "decodable image/png"),
        ("data:text/plain;base64,aGVsbG8=", "data:image"),
        ("data:image/png,raw", "data:image"),
    ],
)
def test_probe_errors(url: str, phrase: str) -> None:
    with pytest.raises(ValueError, match=phrase):
        probe_data_url(url)


def test_probe_refuses_decompression_bombs() -> None:
    # a valid PNG header claiming 100000 x 100000 pixels, with no pixel data behind it
    big = io.BytesIO()
    Image.new("1", (1, 1)).save(big, "PNG")
    raw = bytearray(big.getvalue())
    raw[16:24] = (100_000).to_bytes(4, "big") * 2
    raw[29:33] = zlib.crc32(bytes(raw[12:29])).to_bytes(4, "big")
    with pytest.raises(ValueError, match="too large"):
        probe_data_url("data:image/png;base64," + base64.b64encode(bytes(raw)).decode())


# The fast base64 path gives the strict decoder's verdicts, byte for byte.
PIECES = [*"ABCxyz019+/=", " ", "\n", "\t", "\u2003", "\xa0", "-", "_", "é", "\x1c", "\x00", "*"]


def strict(text: str) -> bytes | None:
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except ValueError:
        return None


def fast(text: str) -> bytes | None:
    try:
        return decode_base64(text)
    except ValueError:
        return None


@settings(max_examples=3000)
@given(
    st.lists(st.sampled_from(PIECES), max_size=14).map("".join)
    | st.binary(max_size=40).map(lambda data: base64.b64encode(data).decode())
)
def test_the_fast_path_agrees_with_the_strict_decoder(text: str) -> None:
    assert fast(text) == strict(text)


def previous(text: str) -> bytes | None:
    """decode_base64 before its one-pass path (a2b_base64's strict mode) was put in front."""
    if text.isascii():
        data = text.encode("ascii").translate(None, b"\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f ")
        body = data.rstrip(b"=")
        alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
        if not (len(data) % 4 or len(data) - len(body) > 2 or body.translate(None, alphabet)):
            return binascii.a2b_base64(data)
    return strict(text)


# the padding cases a2b_base64's strict mode treats one by one: leading, excess, discontinuous
PADDED = ["", "=", "==", "===", "A", "AB", "ABC", "ABCD", "AB=", "AB==", "ABC=", "A=B=", "AB=C", "ABCD=", "AB==AB=="]


@settings(max_examples=3000)
@given(
    st.lists(st.sampled_from(PIECES) | st.sampled_from(PADDED), max_size=10).map("".join)
    | st.binary(max_size=40).map(lambda data: base64.b64encode(data).decode())
)
def test_the_one_pass_path_agrees_with_the_previous_decoder(text: str) -> None:
    assert fast(text) == previous(text)


def test_a_probe_remembered_by_hash_still_answers_each_image_by_its_own_bytes() -> None:
    urls = []
    for width in (3, 5):
        out = io.BytesIO()
        Image.new("RGB", (width, 2)).save(out, format="PNG")
        urls.append("data:image/png;base64," + base64.b64encode(out.getvalue()).decode())
    for _ in range(2):  # the second round answers from what was remembered
        assert [probe_data_url(url) for url in urls] == [(3, 2), (5, 2)]
    broken = urls[0][:-8] + "!!!!!!!!"
    for _ in range(2):
        with pytest.raises(ValueError, match="invalid base64"):
            probe_data_url(broken)


# A probe decodes canonical base64 on demand (only the header Pillow reads): it answers
# what decoding all of it first answered, for every format Pillow reads and any damage.
def probe_decoded_whole(text: str) -> tuple[int, int] | str:
    match = re.fullmatch(r"data:(image/[A-Za-z0-9.+-]+);base64,(.*)", text, re.DOTALL)
    assert match is not None
    try:
        raw = decode_base64(match.group(2))
        if not raw:
            return "holds no image data"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(raw)) as picture:
                return picture.size
    except Image.DecompressionBombError:
        return "holds an image too large to process"
    except ValueError as exc:
        return str(exc)
    except (UnidentifiedImageError, OSError, SyntaxError):
        return f"does not hold a decodable {match.group(1)} image"


def probed(text: str) -> tuple[int, int] | str:
    try:
        return _probe(text)
    except ValueError as exc:
        return str(exc)


def encoded(kind: str, size: tuple[int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("RGBA" if kind in ("PNG", "WEBP", "TIFF", "ICO") else "RGB", size).save(out, kind)
    return out.getvalue()


@settings(max_examples=250, deadline=None)
@given(
    st.sampled_from(["PNG", "JPEG", "GIF", "BMP", "WEBP", "TIFF", "ICO", "PPM", "TGA"]),
    st.tuples(st.integers(1, 40), st.integers(1, 40)),
    st.integers(0, 400),
    st.sampled_from(["", "!", "=", "==", "A", " ", "\n", "é", "AAAA", "////"]),
    st.sampled_from(["cut", "insert", "replace"]),
)
def test_a_probe_decoding_on_demand_agrees_with_decoding_all_first(
    kind: str, size: tuple[int, int], at: int, piece: str, damage: str
) -> None:
    text = base64.b64encode(encoded(kind, size)).decode()
    at = min(at, len(text))
    damaged = {
        "cut": text[:at] + (piece if piece in ("=", "==") else ""),
        "insert": text[:at] + piece + text[at:],
        "replace": text[:at] + piece + text[at + len(piece) :],
    }[damage]
    url = f"data:image/{kind.lower()};base64,{damaged}"
    with warnings.catch_warnings(record=True) as warned:  # Pillow warns of damaged files
        warnings.simplefilter("always")
        answer = probed(url)
        expected = probe_decoded_whole(url)
    assert answer == expected
    said = [str(warning.message) for warning in warned]
    assert said[: len(said) // 2] == said[len(said) // 2 :]
