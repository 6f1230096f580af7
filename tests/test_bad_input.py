"""A catalogue of bad input over a real socket: each a documented 4xx, promptly; the
server stays healthy and never fetches a URL it was handed."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator

import httpx
import pytest

from conftest import AUTH, LiveServer, contract_hook, run_server
from sfmock import Settings, VirtualClock

GEN = "/v1/images/generations"
OK = {"model": "Kwai-Kolors/Kolors", "prompt": "a lighthouse"}


@pytest.fixture(scope="module")
def server() -> Iterator[LiveServer]:
    with run_server(Settings(seed=1), VirtualClock()) as live:
        yield live


@pytest.fixture
def client(server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=10, event_hooks={"response": [contract_hook]}) as http:
        yield http
        # after every bad input, the server still answers a good request
        assert http.post(GEN, json=OK, headers=AUTH).status_code == 200


def post_raw(client: httpx.Client, raw: bytes, **headers: str) -> httpx.Response:
    return client.post(GEN, content=raw, headers={**AUTH, "Content-Type": "application/json", **headers})


BODIES = {
    "malformed JSON": b'{"model": Kolors}',
    "truncated JSON": json.dumps(OK).encode()[:-5],
    "empty body": b"",
    "JSON array": b"[]",
    "JSON string": b'"generate please"',
    "NaN": b'{"model":"Kwai-Kolors/Kolors","prompt":"x","guidance_scale":NaN}',
    "Infinity": b'{"model":"Kwai-Kolors/Kolors","prompt":"x","guidance_scale":-Infinity}',
    "huge float": b'{"model":"Kwai-Kolors/Kolors","prompt":"x","guidance_scale":1e400}',
    "huge integer": b'{"model":"Kwai-Kolors/Kolors","prompt":"x","seed":' + b"9" * 10_000 + b"}",
    "deeply nested": b'{"model":"Kwai-Kolors/Kolors","prompt":"x","extra":' + b"[" * 50_000 + b"]" * 50_000 + b"}",
    "invalid UTF-8": b'{"model":"Kwai-Kolors/Kolors","prompt":"\xff\xfe"}',
    "UTF-16": json.dumps(OK).encode("utf-16"),
}


@pytest.mark.parametrize("raw", BODIES.values(), ids=list(BODIES))
def test_bodies(client: httpx.Client, raw: bytes) -> None:
    response = post_raw(client, raw)
    assert response.status_code == 400 and response.json()["code"] == 20012


FIELDS = {
    "model as a number": {"model": 42},
    "prompt as an object": {"prompt": {"text": "x"}},
    "batch_size as a string": {"batch_size": "4"},
    "batch_size huge": {"batch_size": 10**30},
    "seed negative": {"seed": -1},
    "steps as a float": {"num_inference_steps": 20.5},
    "guidance_scale as a bool": {"guidance_scale": True},
    "image_size nonsense": {"image_size": "big"},
    "image_size huge": {"image_size": "9999x9999"},
    "image as invalid base64": {"image": "data:image/png;base64,***not base64***"},
    "image as a text data URL": {"image": "data:text/plain;base64,aGVsbG8="},
    "image as base64 of text": {"image": "data:image/png;base64,aGVsbG8gd29ybGQ="},
    "image as a file URL": {"image": "file:///etc/passwd"},
}


@pytest.mark.parametrize("fields", FIELDS.values(), ids=list(FIELDS))
def test_fields(client: httpx.Client, fields: dict[str, object]) -> None:
    response = client.post(GEN, json={**OK, **fields}, headers=AUTH)
    assert response.status_code == 400
    assert response.json()["message"].startswith("Invalid parameter: ")


def test_a_10_mb_prompt_is_413(client: httpx.Client) -> None:
    response = client.post(GEN, json={**OK, "prompt": "x" * 10_000_000}, headers=AUTH)
    assert response.status_code == 413 and "limit is 8388608 bytes" in response.json()["message"]


def test_unicode_and_nul_are_just_text(client: httpx.Client) -> None:
    response = client.post(
        GEN, json={**OK, "prompt": "灯塔\u0000🌊\u202e\ud7ff", "negative_prompt": "\x00" * 100}, headers=AUTH
    )
    assert response.status_code == 200


def test_wrong_content_types(client: httpx.Client) -> None:
    assert (
        post_raw(client, b"model=x&prompt=y", **{"Content-Type": "application/x-www-form-urlencoded"}).status_code
        == 400
    )
    assert post_raw(client, json.dumps(OK).encode(), **{"Content-Type": "text/plain"}).status_code == 200


@pytest.mark.parametrize(
    "path",
    [
        "/temporary/outputs/..%2F..%2Fetc%2Fpasswd",
        "/temporary/outputs/%2e%2e/%2e%2e/etc/passwd",
        "/default/../etc/passwd",
        "/temporary/outputs/....//....//etc/passwd",
        "/temporary/outputs/a.png%00.txt",
    ],
)
def test_path_traversal_on_the_image_route(client: httpx.Client, path: str) -> None:
    response = client.get(path)
    assert response.status_code in (403, 404) and b"root:" not in response.content


@pytest.mark.parametrize(
    "headers",
    [
        [("Authorization", "Bearer sk-a"), ("Authorization", "Bearer sk-b")],
        [("Authorization", "Bearer " + "k" * 8000)],
        [("Authorization", "Bearer sk-a\tb")],
        [("X-Sfmock-Strict", "1"), ("X-Sfmock-Strict", "0")],
        [("X-Sfmock-Fault", "delay=" + "9" * 400)],
    ],
    ids=["two keys", "8 KB key", "tab in key", "two strict headers", "absurd delay"],
)
def test_bad_and_duplicated_headers(server: LiveServer, client: httpx.Client, headers: list[tuple[str, str]]) -> None:
    request = client.build_request("POST", GEN, content=json.dumps(OK).encode(), headers=headers)
    try:
        response = client.send(request)
    except httpx.HTTPError:
        return  # a framing error the server closed on: fine, as long as it stays up
    assert 400 <= response.status_code < 500


def test_a_short_content_length_is_refused(server: LiveServer) -> None:
    host, port = server.url.removeprefix("http://").split(":")
    body = json.dumps(OK).encode()
    head = f"POST {GEN} HTTP/1.1\r\nHost: x\r\nAuthorization: {AUTH['Authorization']}\r\nContent-Length: 5\r\n\r\n"
    with socket.create_connection((host, int(port)), timeout=5) as raw:
        raw.sendall(head.encode() + body)
        assert raw.recv(4096).startswith(b"HTTP/1.1 400")  # the five bytes are not JSON


def test_http_level_garbage_is_refused(server: LiveServer) -> None:
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as raw:
        raw.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        assert raw.recv(1024).startswith(b"HTTP/1.1 400")


def test_image_urls_are_never_fetched(client: httpx.Client) -> None:
    # a listener that records any connection: sfmock must not call it
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.5)
    port = listener.getsockname()[1]
    connected: list[bool] = []

    def accept() -> None:
        try:
            connection, _ = listener.accept()
            connected.append(True)
            connection.close()
        except OSError:
            pass

    watcher = threading.Thread(target=accept)
    watcher.start()
    url = f"http://127.0.0.1:{port}/input.png"
    for model in ("Qwen/Qwen-Image-Edit", "Qwen/Qwen-Image-Edit-2509", "black-forest-labs/FLUX.1-Kontext-dev"):
        response = client.post(GEN, json={"model": model, "prompt": "x", "image": url, "image2": url}, headers=AUTH)
        assert response.status_code == 200
    watcher.join()
    listener.close()
    assert connected == []


SPELLINGS = [("on", True), ("yes", True), ("TRUE", True), ("off", False), ("no", False)]


@pytest.mark.parametrize(("value", "strict"), SPELLINGS)
def test_the_strict_switch_reads_each_documented_spelling(client: httpx.Client, value: str, strict: bool) -> None:
    # strict mode refuses batch_size on a model without it; lenient mode ignores it
    answer = client.post(GEN, json={**OK, "batch_size": 2}, headers={**AUTH, "X-Sfmock-Strict": value})
    assert answer.status_code == (400 if strict else 200), answer.text


def test_a_strict_switch_it_cannot_read_names_the_spellings(client: httpx.Client) -> None:
    answer = client.post(GEN, json=OK, headers={**AUTH, "X-Sfmock-Strict": "maybe"})
    assert answer.status_code == 400
    expected = "expected 1, true, yes or on (strict), or 0, false, no or off (lenient); got 'maybe'"
    assert expected in answer.json()["message"]


def test_a_number_too_long_for_python_is_refused_in_words(client: httpx.Client) -> None:
    answer = post_raw(client, b'{"model": "Kwai-Kolors/Kolors", "prompt": "x", "seed": ' + b"9" * 5000 + b"}")
    assert answer.status_code == 400
    assert answer.json()["message"] == "Invalid JSON body: seed: integer of 5000 digits is out of range"


def test_a_scenario_delay_that_runs_backwards_is_refused_as_the_header_is(client: httpx.Client) -> None:
    rules = {"rules": [{"action": {"delay": {"uniform": [5, 1]}}}]}
    answer = client.put("/_sfmock/scenario", json=rules)
    assert answer.status_code == 400
    assert "rules[0].delay: {uniform: [5, 1]} runs backwards" in answer.text
    assert client.post(GEN, json=OK, headers={**AUTH, "X-Sfmock-Fault": "delay=5..1"}).status_code == 400


def test_a_scenario_past_its_bounds_is_refused_in_a_short_message(client: httpx.Client) -> None:
    answer = client.put("/_sfmock/scenario", json={"rules": [{"action": {"error": {"status": 503}}}] * 1001})
    assert answer.status_code == 400
    assert len(answer.text) < 400, answer.text  # the 1,001 rules are not quoted back whole
    assert "(1001 items) is too long" in answer.text and "at most 1000" in answer.text


@pytest.mark.parametrize(("method", "path"), [("POST", "/v1/images/generations"), ("GET", "/v1/models")])
def test_a_known_path_with_a_trailing_slash_is_redirected_to_it(client: httpx.Client, method: str, path: str) -> None:
    # docs/answers.md: 307 to the path without the slash (as the Gin router the live service's 404 and 405 name does)
    body = {"model": "Kwai-Kolors/Kolors", "prompt": "x"} if method == "POST" else None
    answer = client.request(method, path + "/", json=body, headers=AUTH, follow_redirects=False)
    assert answer.status_code == 307 and answer.headers["location"].endswith(path)
    assert client.request(method, path + "/", json=body, headers=AUTH, follow_redirects=True).status_code == 200
