"""Every status the contract documents, on every route, is produced and checked.

Natural causes where there are some (a bad key, a wrong method, an expired URL), faults
for the rest (503 overload, 504, ...). The test fails if the contract documents a status
that no case here produces, so a new response in the contract needs a case.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from decimal import Decimal
from urllib.parse import urlsplit

import httpx
import pytest
from starlette.testclient import TestClient

from conftest import AUTH, contract_hook
from sfmock import Account, Settings, SystemClock, VirtualClock, create_app, load_contract
from sfmock.service.signing import UrlSigner

GEN = "/v1/images/generations"
BODY = {"model": "Kwai-Kolors/Kolors", "prompt": "a lighthouse"}
INJECTABLE = (400, 401, 402, 403, 404, 429, 500, 502, 503, 504)
Call = Callable[[TestClient], httpx.Response]


@pytest.fixture
def client() -> Iterator[TestClient]:
    accounts = (
        Account(id="ok", balance=Decimal(100), keys=(("sk-ok-0123456789", True),)),
        Account(id="off", status="disabled", keys=(("sk-off-0123456789", True),)),
    )
    settings = Settings(
        seed=1, accounts=accounts, max_body_bytes=4096, control_token="control-token", control_max_body_bytes=1024
    )
    with TestClient(create_app(settings, clock=VirtualClock())) as test_client:
        test_client.event_hooks = {"request": [], "response": [contract_hook]}
        yield test_client


KEY = {"Authorization": "Bearer sk-ok-0123456789"}
TOKEN = {"X-Sfmock-Token": "control-token"}


def fault(method: str, path: str, status: int) -> Call:
    return lambda c: c.request(
        method, path, json=BODY if method == "POST" else None, headers={**KEY, "X-Sfmock-Fault": str(status)}
    )


def image_url(c: TestClient) -> str:
    url = c.post(GEN, json=BODY, headers=KEY).json()["images"][0]["url"]
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def fixed_clock() -> TestClient:
    """A fake on the wall clock itself, which the control API cannot move."""
    other = TestClient(create_app(Settings(), clock=SystemClock()))
    other.event_hooks = {"request": [], "response": [contract_hook]}
    return other


def expired(c: TestClient) -> httpx.Response:
    url = image_url(c)
    c.post("/_sfmock/clock", json={"advance": 3600}, headers=TOKEN)
    return c.get(url)


TWO_HOSTS = [("host", "127.0.0.1"), ("host", "x.test")]  # RFC 9112: a 400

CASES: dict[tuple[str, str, int], Call] = {
    (GEN, "POST", 200): lambda c: c.post(GEN, json=BODY, headers=KEY),
    (GEN, "POST", 400): lambda c: c.post(GEN, json={"model": "x/none", "prompt": "x"}, headers=KEY),
    (GEN, "POST", 401): lambda c: c.post(GEN, json=BODY, headers=AUTH),
    (GEN, "POST", 403): lambda c: c.post(GEN, json=BODY, headers={"Authorization": "Bearer sk-off-0123456789"}),
    (GEN, "POST", 405): lambda c: c.put(GEN, json=BODY, headers=KEY),
    (GEN, "POST", 413): lambda c: c.post(GEN, json={**BODY, "prompt": "x" * 5000}, headers=KEY),
    ("/v1/models", "GET", 200): lambda c: c.get("/v1/models", headers=KEY),
    ("/v1/models", "GET", 405): lambda c: c.delete("/v1/models", headers=KEY),
    ("/v1/user/info", "GET", 200): lambda c: c.get("/v1/user/info", headers=KEY),
    ("/v1/user/info", "GET", 405): lambda c: c.post("/v1/user/info", headers=KEY),
    ("/temporary/outputs/{object}", "GET", 200): lambda c: c.get(image_url(c)),
    ("/temporary/outputs/{object}", "GET", 403): expired,
    ("/temporary/outputs/{object}", "GET", 404): lambda c: c.get(
        "/temporary/outputs/none.png?" + UrlSigner(Settings().signing_key).query("none.png", 1_767_225_600)
    ),
    ("/temporary/outputs/{object}", "GET", 405): lambda c: c.post(image_url(c)),
    ("/temporary/outputs/{object}", "GET", 400): lambda c: c.get(image_url(c), headers={"X-Sfmock-Fault": "no"}),
    ("/temporary/outputs/{object}", "GET", 500): lambda c: c.get(image_url(c), headers={"X-Sfmock-Fault": "500"}),
    ("/temporary/outputs/{object}", "GET", 206): lambda c: c.get(image_url(c), headers={"Range": "bytes=0-99"}),
    ("/temporary/outputs/{object}", "GET", 416): lambda c: c.get(image_url(c), headers={"Range": "bytes=99999999-"}),
    ("/_sfmock/health", "GET", 200): lambda c: c.get("/_sfmock/health", headers=TOKEN),
    ("/_sfmock/health", "GET", 401): lambda c: c.get("/_sfmock/health"),
    ("/_sfmock/health", "GET", 405): lambda c: c.post("/_sfmock/health", headers=TOKEN),
    ("/_sfmock/reset", "POST", 200): lambda c: c.post("/_sfmock/reset", headers=TOKEN),
    ("/_sfmock/reset", "POST", 401): lambda c: c.post("/_sfmock/reset"),
    ("/_sfmock/reset", "POST", 405): lambda c: c.get("/_sfmock/reset", headers=TOKEN),
    ("/_sfmock/scenario", "GET", 200): lambda c: c.get("/_sfmock/scenario", headers=TOKEN),
    ("/_sfmock/scenario", "GET", 401): lambda c: c.get("/_sfmock/scenario"),
    ("/_sfmock/scenario", "GET", 405): lambda c: c.post("/_sfmock/scenario", headers=TOKEN),
    ("/_sfmock/scenario", "PUT", 200): lambda c: c.put("/_sfmock/scenario", json={"rules": []}, headers=TOKEN),
    ("/_sfmock/scenario", "PUT", 400): lambda c: c.put("/_sfmock/scenario", json={"rules": 1}, headers=TOKEN),
    ("/_sfmock/scenario", "PUT", 401): lambda c: c.put("/_sfmock/scenario", json={"rules": []}),
    ("/_sfmock/scenario", "DELETE", 200): lambda c: c.delete("/_sfmock/scenario", headers=TOKEN),
    ("/_sfmock/scenario", "DELETE", 401): lambda c: c.delete("/_sfmock/scenario"),
    ("/_sfmock/clock", "GET", 200): lambda c: c.get("/_sfmock/clock", headers=TOKEN),
    ("/_sfmock/clock", "GET", 401): lambda c: c.get("/_sfmock/clock"),
    ("/_sfmock/clock", "GET", 405): lambda c: c.put("/_sfmock/clock", headers=TOKEN),
    ("/_sfmock/clock", "POST", 200): lambda c: c.post("/_sfmock/clock", json={"advance": 1}, headers=TOKEN),
    ("/_sfmock/clock", "POST", 400): lambda c: c.post("/_sfmock/clock", json={"advance": -1}, headers=TOKEN),
    ("/_sfmock/clock", "POST", 401): lambda c: c.post("/_sfmock/clock", json={"advance": 1}),
    ("/_sfmock/clock", "POST", 409): lambda c: fixed_clock().post("/_sfmock/clock", json={"advance": 1}),
    ("/_sfmock/journal", "GET", 200): lambda c: c.get("/_sfmock/journal", headers=TOKEN),
    ("/_sfmock/journal", "GET", 400): lambda c: c.get("/_sfmock/journal?limit=many", headers=TOKEN),
    ("/_sfmock/journal", "GET", 401): lambda c: c.get("/_sfmock/journal"),
    ("/_sfmock/journal", "GET", 405): lambda c: c.post("/_sfmock/journal", headers=TOKEN),
    ("/_sfmock/journal", "DELETE", 200): lambda c: c.delete("/_sfmock/journal", headers=TOKEN),
    ("/_sfmock/journal", "DELETE", 401): lambda c: c.delete("/_sfmock/journal"),
}
for _path in ("/v1/images/generations", "/v1/models", "/v1/user/info"):
    _method = "POST" if _path == GEN else "GET"
    for _status in INJECTABLE:
        CASES.setdefault((_path, _method, _status), fault(_method, _path, _status))
# the old route (the model in its path) and the chat endpoint's refusals (issue 24)
LEGACY, OLD = "/v1/{model}/text-to-image", "/v1/Kwai-Kolors/Kolors/text-to-image"
CHAT = "/v1/chat/completions"
CASES.update(
    {
        (LEGACY, "POST", 200): lambda c: c.post(OLD, json={"prompt": "x"}, headers=KEY),
        (LEGACY, "POST", 400): lambda c: c.post("/v1/x/none/text-to-image", json={"prompt": "x"}, headers=KEY),
        (LEGACY, "POST", 401): lambda c: c.post(OLD, json={"prompt": "x"}, headers=AUTH),
        (LEGACY, "POST", 403): lambda c: c.post(
            OLD, json={"prompt": "x"}, headers={"Authorization": "Bearer sk-off-0123456789"}
        ),
        (LEGACY, "POST", 405): lambda c: c.get(OLD, headers=KEY),
        (LEGACY, "POST", 413): lambda c: c.post(OLD, json={"prompt": "x" * 5000}, headers=KEY),
        (CHAT, "POST", 400): lambda c: c.post(CHAT, json={"model": "Kwai-Kolors/Kolors", "messages": []}, headers=KEY),
        (CHAT, "POST", 401): lambda c: c.post(CHAT, json={"model": "a/chat", "messages": []}, headers=AUTH),
        (CHAT, "POST", 404): lambda c: c.post(CHAT, json={"model": "a/chat", "messages": []}, headers=KEY),
        (CHAT, "POST", 405): lambda c: c.get(CHAT, headers=KEY),
        (CHAT, "POST", 413): lambda c: c.post(CHAT, json={"model": "x" * 5000}, headers=KEY),
    }
)
for _path, _concrete in ((LEGACY, OLD), (CHAT, CHAT)):
    for _status in INJECTABLE:
        CASES.setdefault((_path, "POST", _status), fault("POST", _concrete, _status))
CONTROL = {
    "/_sfmock/health": ("GET",),
    "/_sfmock/reset": ("POST",),
    "/_sfmock/scenario": ("GET", "PUT", "DELETE"),
    "/_sfmock/clock": ("GET", "POST"),
    "/_sfmock/journal": ("GET", "DELETE"),
}


def _control(method: str, path: str, status: int) -> Call:
    if status == 403:  # a page on another origin, in the developer's browser
        return lambda c: c.request(method, path, headers={**TOKEN, "Origin": "http://evil.example"})
    return lambda c: c.request(method, path, content=b"x" * 2048, headers=TOKEN)  # over the 1024-byte cap


for _path, _methods in CONTROL.items():
    for _method in _methods:
        for _status in (403, 413):
            CASES[(_path, _method, _status)] = _control(_method, _path, _status)
CASES[("/temporary/outputs/{object}", "GET", 503)] = lambda c: c.get(image_url(c), headers={"X-Sfmock-Fault": "503"})


def thumbnail(c: TestClient) -> httpx.Response:
    return c.get("/_sfmock/ui/thumbnail/" + urlsplit(image_url(c)).path.rsplit("/", 1)[1], headers=TOKEN)


VERIFY = {"pattern": {"status": 200}, "at_most": 0}
CASES.update(
    {
        ("/_sfmock/verify", "POST", 200): lambda c: c.post("/_sfmock/verify", json=VERIFY, headers=TOKEN),
        ("/_sfmock/verify", "POST", 400): lambda c: c.post("/_sfmock/verify", json={"x": 1}, headers=TOKEN),
        ("/_sfmock/verify", "POST", 401): lambda c: c.post("/_sfmock/verify", json=VERIFY),
        ("/_sfmock/verify", "POST", 405): lambda c: c.get("/_sfmock/verify", headers=TOKEN),
        ("/_sfmock/metrics", "GET", 200): lambda c: c.get("/_sfmock/metrics", headers=TOKEN),
        ("/_sfmock/metrics", "GET", 401): lambda c: c.get("/_sfmock/metrics"),
        ("/_sfmock/metrics", "GET", 405): lambda c: c.post("/_sfmock/metrics", headers=TOKEN),
        ("/_sfmock/", "GET", 200): lambda c: c.get("/_sfmock/"),
        ("/_sfmock/", "GET", 405): lambda c: c.post("/_sfmock/"),
        ("/_sfmock/ui", "GET", 200): lambda c: c.get("/_sfmock/ui"),
        ("/_sfmock/ui", "GET", 405): lambda c: c.delete("/_sfmock/ui"),
        ("/_sfmock/", "GET", 400): lambda c: c.get("/_sfmock/", headers=[("host", "127.0.0.1"), ("host", "x.test")]),
        ("/_sfmock/ui", "GET", 400): lambda c: c.get(
            "/_sfmock/ui", headers=[("host", "127.0.0.1"), ("host", "x.test")]
        ),
        ("/_sfmock/ui/feed", "GET", 200): lambda c: c.get("/_sfmock/ui/feed", headers=TOKEN),
        ("/_sfmock/ui/feed", "GET", 400): lambda c: c.get("/_sfmock/ui/feed?after=x", headers=TOKEN),
        ("/_sfmock/ui/feed", "GET", 401): lambda c: c.get("/_sfmock/ui/feed"),
        ("/_sfmock/ui/feed", "GET", 405): lambda c: c.post("/_sfmock/ui/feed", headers=TOKEN),
        ("/_sfmock/ui/accounts", "GET", 200): lambda c: c.get("/_sfmock/ui/accounts", headers=TOKEN),
        ("/_sfmock/ui/accounts", "GET", 401): lambda c: c.get("/_sfmock/ui/accounts"),
        ("/_sfmock/ui/accounts", "GET", 405): lambda c: c.post("/_sfmock/ui/accounts", headers=TOKEN),
        ("/_sfmock/ui/scenarios", "GET", 200): lambda c: c.get("/_sfmock/ui/scenarios", headers=TOKEN),
        ("/_sfmock/ui/scenarios", "GET", 401): lambda c: c.get("/_sfmock/ui/scenarios"),
        ("/_sfmock/ui/scenarios", "GET", 405): lambda c: c.post("/_sfmock/ui/scenarios", headers=TOKEN),
        ("/_sfmock/ui/thumbnail/{object}", "GET", 200): thumbnail,
        ("/_sfmock/ui/thumbnail/{object}", "GET", 401): lambda c: c.get("/_sfmock/ui/thumbnail/x.png"),
        ("/_sfmock/ui/thumbnail/{object}", "GET", 404): lambda c: c.get("/_sfmock/ui/thumbnail/x.png", headers=TOKEN),
        ("/_sfmock/ui/thumbnail/{object}", "GET", 405): lambda c: c.post("/_sfmock/ui/thumbnail/x.png", headers=TOKEN),
    }
)


def bad_session(method: str, path: str) -> Call:
    """Any guarded control call with a malformed X-Sfmock-Session header: 400."""
    concrete = path.replace("{object}", "x.png")
    return lambda c: c.request(method, concrete, headers={**TOKEN, "X-Sfmock-Session": "no good"})


for _path, _method, _status in [case for case in CASES if case[0].startswith("/_sfmock/") and case[2] == 401]:
    CASES.setdefault((_path, _method, 400), bad_session(_method, _path))


def documented() -> set[tuple[str, str, int]]:
    found = set()
    for path, item in load_contract().document["paths"].items():
        for method, operation in item.items():
            for status in operation.get("responses", {}):
                if status.isdigit():
                    found.add((path, method.upper(), int(status)))
    return found


def test_every_documented_status_has_a_case() -> None:
    assert documented() <= set(CASES), sorted(documented() - set(CASES))


@pytest.mark.parametrize("case", sorted(CASES), ids=lambda c: f"{c[1]} {c[0]} {c[2]}")
def test_status(client: TestClient, case: tuple[str, str, int]) -> None:
    response = CASES[case](client)  # the contract hook checks headers and body
    assert response.status_code == case[2], response.text
