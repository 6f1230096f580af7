"""Bodies that are not a JSON object: each a clear 4xx, never a 500."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from conftest import AUTH
from sfmock import Settings, create_app
from sfmock.service.payloads import _more_brackets, _suspect

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
