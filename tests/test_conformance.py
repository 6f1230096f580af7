"""The response checker fails on what the contract does not allow (or it proves nothing)."""

from __future__ import annotations

import io
import json

import pytest
from PIL import Image

from sfmock import ContractViolation, check_response

JSON = {"content-type": "application/json; charset=utf-8", "x-siliconcloud-trace-id": "t-1"}
OK_BODY = {"images": [{"url": "http://127.0.0.1:8000/a.png"}], "timings": {"inference": 0.2}, "seed": 1}
GEN = "/v1/images/generations"


def dumps(value: object) -> bytes:
    return json.dumps(value).encode()


def test_a_good_response_passes() -> None:
    check_response("POST", GEN, 200, JSON, dumps(OK_BODY))


@pytest.mark.parametrize(
    ("method", "path", "status", "headers", "body", "phrase"),
    [
        ("POST", GEN, 200, JSON, dumps({**OK_BODY, "seed": "1"}), "seed"),
        ("POST", GEN, 200, JSON, dumps({"timings": {"inference": 1}, "seed": 1}), "'images' is a required"),
        ("POST", GEN, 200, JSON, dumps({**OK_BODY, "images": []}), "images"),
        ("POST", GEN, 200, JSON, b"{not json", "not JSON"),
        ("POST", GEN, 200, {"content-type": "application/json"}, dumps(OK_BODY), "missing header"),
        ("POST", GEN, 200, {**JSON, "content-type": "text/html"}, dumps(OK_BODY), "content type"),
        ("POST", GEN, 418, JSON, dumps("teapot"), "not documented"),
        ("POST", GEN, 401, JSON, dumps("Unauthorized"), "Invalid token"),
        ("POST", GEN, 400, JSON, dumps({"message": "x"}), "'code' is a required"),
        ("POST", GEN, 429, JSON, dumps({"message": "slow down", "data": "t"}), "Details:"),
        ("GET", "/nowhere", 200, JSON, dumps("ok"), "unknown path must answer 404"),
        ("GET", "/nowhere", 404, JSON, dumps("not here"), "404 page not found"),
        ("PUT", "/v1/models", 404, JSON, dumps("x"), "wrong method must answer 405"),
        (
            "GET",
            "/temporary/outputs/a.png",
            200,
            {"content-type": "image/png", "x-amz-request-id": "r"},
            b"GIF89a",
            "not a PNG",
        ),
        (
            "GET",
            "/temporary/outputs/a.png",
            403,
            {"content-type": "application/xml", "x-amz-request-id": "r"},
            b"<Oops/>",
            "<Error>",
        ),
        (
            "GET",
            "/temporary/outputs/a.png",
            403,
            {"content-type": "application/xml", "x-amz-request-id": "r"},
            b"<Error><Code>Teapot</Code><Message>m</Message><RequestId>r</RequestId></Error>",
            "Teapot",
        ),
        (
            "GET",
            "/temporary/outputs/a.png",
            404,
            {"content-type": "application/xml", "x-amz-request-id": "r"},
            b"<Error>",
            "not XML",
        ),
    ],
)
def test_violations_are_caught(
    method: str, path: str, status: int, headers: dict[str, str], body: bytes, phrase: str
) -> None:
    with pytest.raises(ContractViolation, match=phrase):
        check_response(method, path, status, headers, body)


def test_violation_is_an_assertion_error() -> None:
    with pytest.raises(AssertionError):
        check_response("POST", GEN, 418, JSON, b'""')


def test_store_responses_need_their_request_id() -> None:
    body = b"<Error><Code>NoSuchKey</Code><Message>m</Message><RequestId>r</RequestId></Error>"
    with pytest.raises(ContractViolation, match="x-amz-request-id"):
        check_response("GET", "/temporary/outputs/a.png", 404, {"content-type": "application/xml"}, body)


def test_a_truncated_png_is_caught() -> None:
    png = io.BytesIO()
    Image.new("RGB", (64, 64), (1, 2, 3)).save(png, "PNG")
    with pytest.raises(ContractViolation, match="not a valid image/png"):
        check_response(
            "GET",
            "/temporary/outputs/a.png",
            200,
            {"content-type": "image/png", "x-amz-request-id": "r"},
            png.getvalue()[:40],
        )
