"""Authentication, the model list and the account endpoint."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from conftest import AUTH, contract_hook_for, load_fixture
from sfmock import Settings, VirtualClock, create_app, load_contract

ROUTES = [("POST", "/v1/images/generations"), ("GET", "/v1/models"), ("GET", "/v1/user/info")]
BAD_AUTH = [None, "", "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "sk-no-scheme", "Bearer two tokens"]


@pytest.mark.parametrize(("method", "path"), ROUTES)
@pytest.mark.parametrize("authorization", BAD_AUTH)
def test_missing_or_malformed_key_is_401(client: TestClient, method: str, path: str, authorization: str | None) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    body = {"model": "Kwai-Kolors/Kolors", "prompt": "x"} if method == "POST" else None
    response = client.request(method, path, headers=headers, json=body)
    assert response.status_code == 401
    assert response.json() == load_fixture("responses/401.json")["body"] == "Invalid token"


def test_auth_is_checked_before_the_body(client: TestClient) -> None:
    response = client.post("/v1/images/generations", content=b"{not json")
    assert response.status_code == 401


def test_bearer_scheme_is_case_insensitive(client: TestClient) -> None:
    response = client.get("/v1/models", headers={"Authorization": "bearer sk-lower"})
    assert response.status_code == 200


def test_models_lists_every_contract_model(client: TestClient) -> None:
    body = client.get("/v1/models", headers=AUTH).json()
    assert body["object"] == "list"
    assert [m["id"] for m in body["data"]] == list(load_contract().models)
    assert all(m["object"] == "model" and m["owned_by"] == "" and m["created"] == 0 for m in body["data"])


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("type=image", None),
        ("type=image&sub_type=text-to-image", "text-to-image"),
        ("sub_type=image-to-image", "image-to-image"),
        ("type=text-to-image", "text-to-image"),  # seen in a real client
        ("type=image&page=1&page_size=20", None),  # also seen: paging is ignored
    ],
)
def test_models_filters(client: TestClient, query: str, expected: str | None) -> None:
    models = load_contract().models
    ids = [m["id"] for m in client.get(f"/v1/models?{query}", headers=AUTH).json()["data"]]
    wanted = [m.id for m in models.values() if expected in (None, m.sub_type)]
    assert ids == wanted and ids


@pytest.mark.parametrize("query", ["type=text", "type=audio", "sub_type=chat", "sub_type=embedding"])
def test_models_of_other_kinds_are_an_empty_list(client: TestClient, query: str) -> None:
    assert client.get(f"/v1/models?{query}", headers=AUTH).json() == {"object": "list", "data": []}


def test_user_info_shape_and_string_balances(client: TestClient) -> None:
    body = client.get("/v1/user/info", headers=AUTH).json()
    assert (body["code"], body["message"], body["status"]) == (20000, "OK", True)
    data = body["data"]
    assert (
        data["balance"] == "1000000000.00"
        and data["chargeBalance"] == "0.00"
        and data["totalBalance"] == "1000000000.00"
    )
    assert data["status"] == "normal" and data["isAdmin"] is False
    assert "@" in data["email"] and data["name"]


def test_each_token_is_its_own_stable_account(client: TestClient) -> None:
    def info(token: str) -> dict[str, str]:
        data: dict[str, str] = client.get("/v1/user/info", headers={"Authorization": f"Bearer {token}"}).json()["data"]
        return data

    assert info("sk-a") == info("sk-a")
    assert info("sk-a")["id"] != info("sk-b")["id"]


@pytest.mark.parametrize(
    ("method", "path"), [("GET", "/v1/images/generations"), ("DELETE", "/v1/models"), ("POST", "/v1/user/info")]
)
def test_wrong_method_is_405(client: TestClient, method: str, path: str) -> None:
    response = client.request(method, path, headers=AUTH)
    assert response.status_code == 405
    assert response.json() == "405 method not allowed"
    assert "allow" in response.headers


@pytest.mark.parametrize("path", ["/", "/v1", "/v1/images", "/v1/images/generations/extra", "/v2/images/generations"])
def test_unknown_path_is_404(client: TestClient, path: str) -> None:
    response = client.post(path, headers=AUTH, json={})
    assert response.status_code == 404
    assert response.json() == load_fixture("responses/404.json")["body"]


def test_a_failure_outside_the_handlers_answers_the_documented_500(
    settings: Settings, clock: VirtualClock, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A bug in the layers around the handlers (faults, journal, sessions) answers the
    documented 500 with its trace id, never the server's bare "Internal Server Error"."""
    from sfmock.chaos.pipeline import Pipeline

    async def broken(self: object, exchange: object, receive: object, out: object) -> None:
        raise RuntimeError("a bug in the chaos layer")

    monkeypatch.setattr(Pipeline, "_serve", broken)
    app = create_app(settings, clock=clock)
    with TestClient(app, base_url=settings.base_url, raise_server_exceptions=False) as client:
        client.event_hooks = {"request": [], "response": [contract_hook_for(settings)]}
        answer = client.post(
            "/v1/images/generations", json={"model": "Kwai-Kolors/Kolors", "prompt": "x"}, headers=AUTH
        )
    assert answer.status_code == 500 and answer.headers["x-siliconcloud-trace-id"]
    assert answer.json()["code"] == 50500 or "message" in answer.json()
    assert "a bug in the chaos layer" in caplog.text
