"""Bodies that are not a JSON object: each a clear 4xx, never a 500."""

from __future__ import annotations

import asyncio
import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.requests import Request
from starlette.testclient import TestClient

from conftest import AUTH
from sfmock import Settings, create_app
from sfmock.service.payloads import _more_brackets, _suspect, read_json

URL = "/v1/images/generations"
JSON = {**AUTH, "Content-Type": "application/json"}


@pytest.mark.parametrize(
    ("raw", "phrase"),
    [
        (b"", "empty"),
        (b"   \n", "empty"),
        (b"{", "Invalid JSON"),
        (b'{"model": "Kwai-Kolors/Kolors", "prompt": "x"', "Invalid JSON"),
        (b"model=Kwai-Kolors/Kolors&prompt=x", "Invalid JSON"),
        (b'{"model": "Kwai-Kolors/Kolors", "prompt": "x", "seed": NaN}', "NaN is not valid JSON"),
        (b'{"model": "Kwai-Kolors/Kolors", "prompt": "x", "cfg": Infinity}', "Infinity is not valid JSON"),
        (b'{"model": "Kwai-Kolors/Kolors", "prompt": "x", "cfg": 1e999}', "out of range"),
        (b'{"model": "Kwai-Kolors/Kolors", "prompt": "x", "seed": ' + b"9" * 5000 + b"}", "Invalid JSON"),
        (b'{"model": "Kwai-Kolors/Kolors", "prompt": "x\\ud800"}', "lone surrogate"),
        (b'{"model": "Kwai-Kolors/Kolors", "prompt": "x", "\\udc00": 1}', "lone surrogate"),
        (b"\xff\xfe\x00garbage", "Invalid JSON"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (b"[1, 2]", "not an array"),
        (b'"a string"', "not a string"),
        (b"42", "not a number"),
        (b"null", "not null"),
        (b"true", "not a boolean"),
    ],
)
def test_bodies_that_are_not_an_object(client: TestClient, raw: bytes, phrase: str) -> None:
    response = client.post(URL, content=raw, headers=JSON)
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == 20012 and phrase in body["message"], body


def test_json_is_read_whatever_the_content_type(client: TestClient) -> None:
    # the real gateway parses the body as JSON without looking at Content-Type
    response = client.post(
        URL, content=b'{"model":"Kwai-Kolors/Kolors","prompt":"x"}', headers={**AUTH, "Content-Type": "text/plain"}
    )
    assert response.status_code == 200


def test_body_over_the_limit_is_413() -> None:
    with TestClient(create_app(Settings(max_body_bytes=2048))) as client:
        big = {"model": "Kwai-Kolors/Kolors", "prompt": "x" * 4096}
        response = client.post(URL, json=big, headers=AUTH)
        assert response.status_code == 413
        assert "2048 bytes" in response.json()["message"]
        assert client.post(URL, json={**big, "prompt": "x"}, headers=AUTH).status_code == 200


def test_body_over_the_limit_without_content_length_is_413() -> None:
    def chunks() -> object:
        for _ in range(10):
            yield b" " * 1024

    with TestClient(create_app(Settings(max_body_bytes=4096))) as client:
        response = client.post(URL, content=chunks(), headers=AUTH)  # type: ignore[arg-type]
        assert response.status_code == 413


def test_unicode_and_nul_in_strings_are_fine(client: TestClient) -> None:
    body = {"model": "Kwai-Kolors/Kolors", "prompt": "海上的灯塔 🌊 \u0000 end", "negative_prompt": "\u202e"}
    assert client.post(URL, json=body, headers=AUTH).status_code == 200


@settings(max_examples=1000)
@given(st.text(alphabet="[{]}a\u2003", max_size=200), st.integers(min_value=0, max_value=70))
def test_the_bracket_gate_counts_as_str_count_does(text: str, limit: int) -> None:
    # the gate in front of check_data's walk: more than `limit` of "[" and "{" together
    assert _more_brackets(text, limit) == (text.count("[") + text.count("{") > limit)


SUSPECT_BEFORE = re.compile(r"\\u[dD][89a-fA-F]|NaN|Infinity|[eE][-+]?\d{3}")  # the gate was this one regex


@settings(max_examples=2000)
@given(
    st.lists(
        st.sampled_from(["\\u", "\\", "u", "d", "D", "8", "9", "a", "F", "0", "e", "E", "+", "-", "NaN", "Na", "N"])
        | st.sampled_from(["Infinity", "Infinit", "x", "\u2003", "1", "12", "123", "é"]),
        max_size=12,
    ).map("".join)
)
def test_the_suspect_gate_finds_what_the_one_regex_found(text: str) -> None:
    assert _suspect(text) == (SUSPECT_BEFORE.search(text) is not None)


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=1000)
@given(JSON_VALUES, st.sampled_from([{}, {"ensure_ascii": False}, {"indent": 1}]))
def test_a_body_reads_as_json_reads_it(value: object, style: dict[str, object]) -> None:
    # most bodies are read by orjson: the value, its types and its key order are json's
    text = json.dumps(value, **style)  # type: ignore[arg-type]
    read = _read(text.encode())
    assert read == json.loads(text) and _shape(read) == _shape(json.loads(text))


@pytest.mark.parametrize(
    "text",
    [
        '{"seed": 123456789012345678901}',
        '{"seed": -9223372036854775809}',
        '{"a": 1, "a": 2.5, "b": [0.1, -0.0]}',
        # a long run of digits is looked for only where orjson's value holds a float (an
        # integer it could not keep whole is one), or where it holds too much to walk
        "[" + "1," * 100 + "123456789012345678901]",
        '{"image": "data:image/png;base64,' + "A0" * 2000 + '", "seed": 123456789012345678901}',
        '{"image": "data:image/png;base64,' + "1" * 4000 + '", "seed": 42}',
    ],
)
def test_long_integers_and_repeated_keys_read_as_json_reads_them(text: str) -> None:
    assert _shape(_read(text.encode())) == _shape(json.loads(text))


def _read(raw: bytes) -> object:
    request = Request({"type": "http", "headers": [], "state": {"body": raw}})
    return asyncio.run(read_json(request, 1 << 20))


def _shape(value: object) -> object:
    """``value`` with each leaf's type and each object's key order spelled out."""
    if isinstance(value, dict):
        return ("object", [(key, _shape(item)) for key, item in value.items()])
    if isinstance(value, list):
        return ("array", [_shape(item) for item in value])
    return (type(value).__name__, repr(value))
