"""Recording files: scrubbed of secrets, readable, and loadable (fixtures too)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import FIXTURES, assert_config_error
from sfmock.fidelity.recording import REDACTED, Exchange, Message, load_recordings, scrub, scrub_url, write_recording

SECRET_KEY = "sk-live-abcdefghijklmnop"


def test_secret_headers_lose_their_values() -> None:
    headers = {
        "authorization": f"Bearer {SECRET_KEY}",
        "cookie": "session=abc",
        "set-cookie": "sid=1",
        "x-api-key": "k1",
        "x-auth-token": "t1",
        "proxy-authorization": "Basic eDp5",
        "content-type": "application/json",
    }
    clean = scrub(headers)
    assert clean["content-type"] == "application/json"
    assert all(value == REDACTED for name, value in clean.items() if name != "content-type")


@pytest.mark.parametrize(
    ("url", "kept", "gone"),
    [
        (
            "https://s3.siliconflow.cn/default/outputs/a.png?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKID%2Fx"
            "&X-Amz-Date=20260101T000000Z&X-Amz-Expires=3600&X-Amz-SignedHeaders=host&X-Amz-Signature=deadbeef",
            ["X-Amz-Expires=3600", "X-Amz-Date=20260101T000000Z", "X-Amz-SignedHeaders=host", "/default/outputs/a.png"],
            ["AKID", "deadbeef"],
        ),
        (
            "https://sc-maas.oss-cn-shanghai.aliyuncs.com/outputs/a_0.png?OSSAccessKeyId=LTAIx&Expires=1752512039&Signature=y%2Bz",
            ["Expires=1752512039"],
            ["LTAIx", "y%2Bz", "y+z"],
        ),
        (
            "https://user:hunter2@example.com/x?api_key=abc&token=t&page=2",
            ["page=2", "example.com/x"],
            ["hunter2", "abc"],
        ),
    ],
)
def test_urls_lose_credentials_but_keep_their_shape(url: str, kept: list[str], gone: list[str]) -> None:
    clean = scrub_url(url)
    for part in kept:
        assert part in clean
    for part in gone:
        assert part not in clean
    assert scrub({"images": [{"url": url}]}) == {"images": [{"url": clean}]}


def test_keys_in_any_text_are_cut_out() -> None:
    body = {"prompt": f"my key is {SECRET_KEY}", "note": "Authorization: Bearer abc.def", "x": "custom-secret-value"}
    clean = json.dumps(scrub(body, ["custom-secret-value"]))
    assert SECRET_KEY not in clean and "abc.def" not in clean and "custom-secret-value" not in clean


def test_a_written_recording_loads_back_unchanged_but_for_secrets(tmp_path: Path) -> None:
    exchange = Exchange(
        method="POST",
        path="/v1/images/generations",
        request=Message(headers={"authorization": f"Bearer {SECRET_KEY}"}, body=b'{"model": "m", "prompt": "p"}'),
        status=502,
        response=Message(headers={"content-type": "text/html"}, body=b"<html>502</html>"),
        url="https://api.siliconflow.cn/v1/images/generations",
    )
    path = write_recording(tmp_path, 3, exchange, [SECRET_KEY])
    assert path.name == "0003-POST-v1-images-generations-502.json"
    assert SECRET_KEY not in path.read_text("utf-8")
    (loaded,) = load_recordings(tmp_path)
    assert (loaded.method, loaded.path, loaded.status) == ("POST", "/v1/images/generations", 502)
    assert loaded.response.body == b"<html>502</html>" and loaded.request.json() == {"model": "m", "prompt": "p"}
    assert loaded.request.headers["authorization"] == REDACTED


def test_binary_bodies_round_trip(tmp_path: Path) -> None:
    png = (FIXTURES / "images" / "input.png").read_bytes()
    exchange = Exchange(method="GET", path="/default/outputs/a.png", status=200, response=Message(body=png))
    (loaded,) = load_recordings(write_recording(tmp_path, 1, exchange))
    assert loaded.response.body == png


def test_fixtures_load_as_generation_answers() -> None:
    exchanges = load_recordings(FIXTURES / "responses")
    assert len(exchanges) == 17
    assert {(e.method, e.path) for e in exchanges} == {("POST", "/v1/images/generations")}


@pytest.mark.parametrize(
    ("text", "key", "phrase"),
    [
        ("not json", "(file)", "expected a JSON recording"),
        ("[]", "(top level)", "expected a JSON object"),
        ('{"request": {"method": "GET", "path": "/x"}, "response": {"status": 999}}', "response.status", "HTTP status"),
        ('{"request": {"method": "GET", "path": "x"}, "response": {"status": 200}}', "request.method/path", "absolute"),
        (
            '{"request": {"method": "GET", "path": "/x"}, "response": {"status": 200, "headers": []}}',
            "response.headers",
            "object",
        ),
    ],
)
def test_a_bad_recording_names_the_file_and_key(tmp_path: Path, text: str, key: str, phrase: str) -> None:
    assert_config_error(load_recordings, tmp_path / "bad.json", text, key, phrase)
