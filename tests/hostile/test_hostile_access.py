"""Nobody gets in where they don't belong (issue 12, fourth part): image URLs that
cannot be forged or mangled into working, and a control API that a web page cannot reach."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlencode, urlsplit

import httpx
import pytest
from starlette.testclient import TestClient

from conftest import AUTH, contract_hook, run_server
from sfmock import Settings, VirtualClock, create_app
from sfmock.service.signing import UrlSigner

GEN = "/v1/images/generations"
OK = {"model": "Kwai-Kolors/Kolors", "prompt": "a lighthouse"}
T0 = 1_767_225_600


@pytest.fixture
def client() -> Iterator[TestClient]:
    with TestClient(create_app(Settings(seed=1), clock=VirtualClock(T0)), base_url="http://127.0.0.1:8000") as c:
        c.event_hooks = {"request": [], "response": [contract_hook]}
        yield c


def image_url(client: TestClient) -> tuple[str, str]:
    parts = urlsplit(client.post(GEN, json=OK, headers=AUTH).json()["images"][0]["url"])
    return parts.path, parts.query


def s3_code(response: httpx.Response) -> str:
    return response.text.split("<Code>")[1].split("</Code>")[0]


def test_the_public_default_key_forges_nothing(client: TestClient) -> None:
    path, _ = image_url(client)
    name = path.rsplit("/", 1)[1]
    forged = urlencode(UrlSigner("sfmock-dev-signing-key").sign(name, T0))  # the old built-in key
    response = client.get(f"{path}?{forged}")
    assert response.status_code == 403 and s3_code(response) == "SignatureDoesNotMatch"
    assert Settings().signing_key is None  # unset: a random key per process


def test_a_configured_key_still_lets_processes_share_urls() -> None:
    settings = Settings(seed=1, signing_key="a-shared-secret-of-some-length")
    with TestClient(create_app(settings, clock=VirtualClock(T0))) as one:
        url = one.post(GEN, json=OK, headers=AUTH).json()["images"][0]["url"]
    with TestClient(create_app(settings, clock=VirtualClock(T0))) as other:
        assert other.get(url).status_code == 200


def replace_param(query: str, name: str, value: str | None) -> str:
    pairs = [pair.split("=", 1) for pair in query.split("&")]
    return "&".join(f"{k}={value if k == name else v}" for k, v in pairs if not (k == name and value is None))


MANGLED = {
    "query stripped": (lambda q: "", 403, "AccessDenied"),
    "signature dropped": (
        lambda q: replace_param(q, "X-Amz-Signature", None),
        400,
        "AuthorizationQueryParametersError",
    ),
    "algorithm dropped": (
        lambda q: replace_param(q, "X-Amz-Algorithm", None),
        400,
        "AuthorizationQueryParametersError",
    ),
    "another algorithm": (
        lambda q: replace_param(q, "X-Amz-Algorithm", "AWS4-HMAC-SHA1"),
        400,
        "AuthorizationQueryParametersError",
    ),
    "%2F double-encoded": (lambda q: q.replace("%2F", "%252F"), 400, "AuthorizationQueryParametersError"),
    "another region": (lambda q: q.replace("cn-shanghai-1", "us-east-1"), 400, "AuthorizationQueryParametersError"),
    "another service": (lambda q: q.replace("%2Fs3%2F", "%2Fec2%2F"), 400, "AuthorizationQueryParametersError"),
    "credential date": (
        lambda q: q.replace("%2F20260101%2F", "%2F20251231%2F"),
        400,
        "AuthorizationQueryParametersError",
    ),
    "unknown access key": (lambda q: q.replace("SFMOCK%2F", "AKIAEXAMPLE%2F"), 403, "InvalidAccessKeyId"),
    "expires over a week": (
        lambda q: replace_param(q, "X-Amz-Expires", "604801"),
        400,
        "AuthorizationQueryParametersError",
    ),
    "signed headers changed": (
        lambda q: replace_param(q, "X-Amz-SignedHeaders", "host%3Brange"),
        403,
        "SignatureDoesNotMatch",
    ),
}


@pytest.mark.parametrize("case", MANGLED.values(), ids=list(MANGLED))
def test_mangled_urls_are_refused_as_s3_refuses_them(client: TestClient, case: tuple) -> None:  # type: ignore[type-arg]
    mangle, status, code = case
    path, query = image_url(client)
    assert client.get(f"{path}?{query}").status_code == 200
    response = client.get(f"{path}?{mangle(query)}")
    assert (response.status_code, s3_code(response)) == (status, code)


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "http://evil.example"},
        {"Origin": "null"},
        {"Origin": "http://10.0.0.8:8000"},
        {"Sec-Fetch-Site": "cross-site"},
    ],
)
def test_cross_origin_browser_requests_change_nothing(client: TestClient, headers: dict[str, str]) -> None:
    client.post(GEN, json=OK, headers=AUTH)
    for method, path, body in [
        ("POST", "/_sfmock/reset", None),
        ("DELETE", "/_sfmock/journal", None),
        ("PUT", "/_sfmock/scenario", b"rules: [{action: {error: 503}}]"),
        ("POST", "/_sfmock/clock", b'{"advance": 3600}'),
    ]:
        response = client.request(method, path, content=body, headers=headers)
        assert response.status_code == 403 and "cross-" in response.json()["error"]
    assert client.get("/_sfmock/journal").json()["count"] == 1
    assert client.get("/_sfmock/scenario").json()["rules_count"] == 0
    assert client.get("/_sfmock/clock").json()["now"] == T0


def test_same_origin_requests_pass(client: TestClient) -> None:
    for origin in ("http://127.0.0.1:8000", "http://localhost:3000", "http://[::1]:8000"):
        assert client.post("/_sfmock/reset", headers={"Origin": origin}).status_code == 200


def test_unexpected_host_names_are_refused_over_a_socket() -> None:
    with run_server(Settings(seed=1), VirtualClock(T0)) as server:
        port = server.settings.port
        reset = f"{server.url}/_sfmock/reset"
        assert httpx.post(reset, headers={"Host": f"evil.example:{port}"}).status_code == 403  # DNS rebinding
        for host in (f"127.0.0.1:{port}", f"localhost:{port}", "127.0.0.1"):
            assert httpx.post(reset, headers={"Host": host}).status_code == 200
        # the API is not the control API: any Host will do there, as behind a proxy
        api = httpx.get(f"{server.api_url}/models", headers={**AUTH, "Host": "sfmock.internal"})
        assert api.status_code == 200


def test_a_public_url_host_is_expected() -> None:
    with run_server(Settings(seed=1, public_url="http://fake.test:9999"), VirtualClock(T0)) as server:
        health = f"http://127.0.0.1:{server.settings.port}/_sfmock/health"
        assert httpx.get(health, headers={"Host": "fake.test:9999"}).status_code == 200
        assert httpx.get(health, headers={"Host": "other.test:9999"}).status_code == 403


def _every_route() -> list[tuple[str, str]]:
    from sfmock.contract.openapi import load_contract

    document = load_contract().document
    return [
        (method.upper(), path.replace("{model}", "Kwai-Kolors/Kolors").replace("{object}", "x.png"))
        for path, operations in document["paths"].items()
        for method in operations
        if method in ("get", "post", "put", "delete")
    ]


@pytest.mark.parametrize(("method", "path"), _every_route())
def test_two_host_headers_are_a_400_on_every_route_and_change_nothing(
    client: TestClient, method: str, path: str
) -> None:
    # RFC 9112: a 400 for two Hosts; the control API's rebinding guard read the first (outsider21's F5)
    client.put("/_sfmock/scenario", json={"name": "before", "rules": []})
    twice = [("host", "127.0.0.1:8000"), ("host", "evil.example"), *AUTH.items()]
    answer = client.request(method, path, headers=twice)
    assert answer.status_code == 400 and "Host: the header came 2 times; expected it once" in answer.text
    assert client.get("/_sfmock/scenario").json()["name"] == "before"  # a reset, a DELETE: not done
