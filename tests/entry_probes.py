"""What tests/test_entry_points.py observes of a running fake, whichever entry point
configured it: the same requests against a base URL, the documented effects as plain
JSON data, so a server started from a config file, from flags, from the pytest marker
or from ``Settings`` can be compared with the others and with what the docs promise.

Each probe sends its requests in a fixed order with its own bearer tokens (each token
is its own account in open mode), so that the keys set together do not disturb each
other's observations.
"""

from __future__ import annotations

import json
import socket
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from sfmock import check_response

CONTROL_TOKEN = "tok-entry-123"
CONTROL = {"X-Sfmock-Token": CONTROL_TOKEN}
KOLORS = {"model": "Kwai-Kolors/Kolors", "prompt": "a lighthouse", "image_size": "1024x1024"}  # strict wants a size
QWEN = {"model": "Qwen/Qwen-Image", "prompt": "a lighthouse", "image_size": "1328x1328"}
RECORDED = {"model": "Kwai-Kolors/Kolors", "prompt": "a recorded lighthouse", "image_size": "1024x1024"}


def _client(base: str, dialect: str, image_prefix: str) -> httpx.Client:
    """A client whose every answer is checked against the contract."""

    def check(response: httpx.Response) -> None:
        response.read()
        request = response.request
        check_response(
            request.method,
            request.url.path,
            response.status_code,
            response.headers,
            response.content,
            dialect=dialect,
            image_prefix=image_prefix,
        )

    return httpx.Client(base_url=base, timeout=20, event_hooks={"response": [check]})


def _gen(client: httpx.Client, token: str, body: dict[str, Any]) -> httpx.Response:
    return client.post("/v1/images/generations", json=body, headers={"Authorization": f"Bearer {token}"})


def _status_code(answer: httpx.Response) -> list[Any]:
    body = answer.json()
    return [answer.status_code, body.get("code") if isinstance(body, dict) else None]


def _balance(client: httpx.Client, token: str) -> str:
    info = client.get("/v1/user/info", headers={"Authorization": f"Bearer {token}"})
    return str(info.json()["data"]["totalBalance"])


def cut_off_within(base: str, seconds: float) -> bool:
    """Whether the server closes a connection that never finishes its request within
    ``seconds`` (the default read timeout is 15 s)."""
    parts = urlsplit(base)
    with socket.create_connection((parts.hostname, parts.port), timeout=seconds) as sock:
        sock.sendall(b"POST /v1/images/generations HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
        deadline = time.monotonic() + seconds
        try:
            while time.monotonic() < deadline:
                if not sock.recv(4096):
                    return True
        except TimeoutError:
            return False
        except OSError:  # reset by the server: cut off too
            return True
    return False


def probe_open(base: str) -> dict[str, Any]:
    """Observe every key of the open-mode group (no accounts): see ``OPEN`` in the test."""
    seen: dict[str, Any] = {}
    with _client(base, "observed", "/default/outputs/") as client:
        seen["port"] = urlsplit(base).port not in (None, 0, 8000)  # a free one, not the default
        first = _gen(client, "sk-seed", KOLORS)
        seen["seed"] = first.json()["seed"]
        url = first.json()["images"][0]["url"]
        query = parse_qs(urlsplit(url).query)
        seen["url_ttl"] = query["X-Amz-Expires"][0]
        seen["public_url"] = url.startswith("http://images.example.test/base/")
        seen["image_prefix"] = urlsplit(url).path.removeprefix("/base").rsplit("/", 1)[0] + "/"
        here = base + urlsplit(url).path.removeprefix("/base") + "?" + urlsplit(url).query
        seen["signing_key"] = {"url": url, "here": client.get(here).status_code}
        seen["strict"] = _status_code(_gen(client, "sk-strict", {**QWEN, "batch_size": 2}))
        bad_rule = _gen(client, "sk-rule", {**KOLORS, "batch_size": 5})
        seen["invalid_parameter_code"] = [*_status_code(bad_rule), bad_rule.json()["message"]]
        seen["unknown_fields"] = _status_code(_gen(client, "sk-unknown", {**KOLORS, "n": 1}))
        seen["max_body_bytes"] = _gen(client, "sk-big", {**KOLORS, "prompt": "x" * 4096}).status_code
        big_scenario = json.dumps({"name": "big", "rules": [], "pad": "x" * 4096})
        seen["control_max_body_bytes"] = client.put("/_sfmock/scenario", content=big_scenario).status_code
        seen["read_timeout"] = cut_off_within(base, 10)
        limited = [_gen(client, "sk-limits", KOLORS) for _ in range(3)]
        seen["limits"] = [answer.status_code for answer in limited]
        seen["rate_limit_headers"] = [
            limited[0].headers.get("x-ratelimit-limit-ipm"),
            "retry-after" in limited[2].headers,
        ]
        seen["dialect"] = limited[2].json().get("data", "absent")  # observed: null, documented: a trace id
        seen["rate_limit_codes"] = limited[2].json().get("code")
        seen["model_limits"] = [_gen(client, "sk-qwen", QWEN).status_code for _ in range(2)]
        seen["default_balance"] = _balance(client, "sk-balance")
        _gen(client, "sk-balance", KOLORS)
        seen["prices"] = _balance(client, "sk-balance")
        seen["balance_status"] = _status_code(
            _gen(client, "sk-broke", {**KOLORS, "model": "Tongyi-MAI/Z-Image-Turbo", "image_size": "512x512"})
        )
        seen["max_open_accounts"] = _balance(client, "sk-balance")  # sk-broke came between: forgotten
        flux = {**KOLORS, "model": "black-forest-labs/FLUX.1-schnell"}
        models = client.get(
            "/v1/models", params={"type": "image"}, headers={"Authorization": "Bearer sk-retire"}
        ).json()["data"]
        listed = any(model["id"] == flux["model"] for model in models)
        seen["retire"] = [*_status_code(_gen(client, "sk-retire", flux)), listed]
        scenario = client.post(
            "/v1/images/generations", json=KOLORS, headers={"Authorization": "Bearer sk-case", "X-Case": "entry"}
        )
        seen["scenario"] = [scenario.status_code, client.get("/_sfmock/health").json()["scenario"]]
        journal = client.get("/_sfmock/journal").json()
        seen["journal_size"] = [journal["size"], len(journal["entries"]), journal["evicted"] > 0]
    return seen


def probe_accounts(base: str) -> dict[str, Any]:
    """Observe every key of the accounts group: see ``ACCOUNTS`` in the test."""
    seen: dict[str, Any] = {}
    with _client(base, "documented", "/temporary/outputs/") as client:
        seen["host"] = urlsplit(base).hostname
        seen["control_token"] = [
            client.get("/_sfmock/health").status_code,
            client.get("/_sfmock/health", headers=CONTROL).status_code,
        ]
        hit = _gen(client, "sk-entry-a", RECORDED)  # with replay_miss: error, only a recorded body answers 200
        seen["accounts"] = [
            hit.status_code,
            _gen(client, "sk-stranger", KOLORS).status_code,
            _balance(client, "sk-entry-a"),
        ]
        seen["host"] = [seen["host"], urlsplit(hit.json()["images"][0]["url"]).hostname]
        seen["replay"] = [hit.status_code, hit.json().get("seed")]
        seen["frozen_clock"] = client.get("/_sfmock/clock", headers=CONTROL).json()["frozen"]
        miss = _gen(client, "sk-entry-a", {**RECORDED, "seed": 1})
        seen["replay_match"] = miss.status_code != 200  # same model and prompt: a hit by prompt
        seen["replay_miss"] = [miss.status_code, "closest" in miss.json()]
        bulky = {"model": "no/such-model", "prompt": "x", "user": "x" * 30_000}
        for _ in range(3):
            _gen(client, "sk-entry-a", bulky)
        journal = client.get("/_sfmock/journal", headers=CONTROL).json()
        seen["journal_max_bytes"] = [journal["max_bytes"], journal["evicted"] > 0]
    return seen


def probe_plain(base: str) -> dict[str, Any]:
    """Keys without a probe of their own: the server answers a generation. Also where its
    images live (``image_port: same`` is set here): on the API's origin, or their own."""
    with _client(base, "documented", "/temporary/outputs/") as client:
        answer = _gen(client, "sk-plain", KOLORS)
        url = answer.json()["images"][0]["url"]
        same = urlsplit(url).netloc == urlsplit(base).netloc
        return {"plain": answer.status_code, "image_port": ["same" if same else "own", client.get(url).status_code]}


def probe_images(base: str) -> dict[str, Any]:
    """``image_public_url``: image URLs are named by it, and the object they name downloads
    from the fake (the path and signature are the fake's own). Also the 2026 service's
    images and 400s (issue 24): ``url_token``, ``object_names``, ``image_content_type``,
    ``range_errors``, ``size_errors``, ``byte_ranges``."""
    with _client(base, "documented", "/temporary/outputs/") as client:
        url = _gen(client, "sk-images", KOLORS).json()["images"][0]["url"]
        parts = urlsplit(url)
        local = client.get(parts.path.removeprefix("/base") + "?" + parts.query)
        named = url.startswith("http://img.example.test/base/temporary/outputs/")
        return {
            "image_public_url": [named, local.status_code],
            "url_token": "X-Amz-Security-Token=" in parts.query,
            "object_names": parts.path.endswith("_00001_.png"),
            "image_content_type": local.headers["content-type"],
            "byte_ranges": client.get(
                parts.path.removeprefix("/base") + "?" + parts.query, headers={"Range": "bytes=0-9"}
            ).status_code,
            "range_errors": _status_code(_gen(client, "sk-images", {**KOLORS, "seed": -1})),
            "size_errors": _status_code(_gen(client, "sk-images", {**KOLORS, "image_size": ""})),
        }


PROBES = {"open": probe_open, "accounts": probe_accounts, "plain": probe_plain, "images": probe_images}
