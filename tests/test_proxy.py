"""The recording proxy against a stand-in for the real service (tests/upstream.py)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from sfmock import ConfigError
from sfmock.fidelity.proxy import upstream_origin
from upstream import DRIFTS, KEY, proxy_client

AUTH = {"Authorization": f"Bearer {KEY}"}
KOLORS = {"model": "Kwai-Kolors/Kolors", "prompt": "a lighthouse", "seed": 7}


def every_call(client: TestClient) -> list[httpx.Response]:
    """One call per documented outcome the stand-in gives."""
    return [
        client.post("/v1/images/generations", json=KOLORS, headers=AUTH),
        client.post("/v1/images/generations", json={**KOLORS, "model": "no/such"}, headers=AUTH),
        client.post("/v1/images/generations", json=KOLORS, headers={"Authorization": "Bearer sk-wrong-key-0000"}),
        client.get("/v1/models", headers=AUTH),
        client.get("/v1/user/info", headers=AUTH),
        client.get("/v1/no-such-route", headers=AUTH),
    ]


def test_an_honest_service_gives_an_empty_report(origin: str) -> None:
    with proxy_client(origin) as client:
        answers = every_call(client)
        report = client.get("/_sfmock/drift").json()
    assert [a.status_code for a in answers] == [200, 400, 401, 200, 200, 404]
    assert answers[0].json()["seed"] == 7 and answers[0].headers["x-siliconcloud-trace-id"]
    # the answer is the service's, unchanged: its image URL still points at the service
    assert answers[0].json()["images"][0]["url"].startswith(origin + "/default/outputs/")
    assert report["exchanges"] == 6
    assert report["drift"] == []


EXPECTED = {
    "extra-field": (200, {("/body/nsfw_content_detected", "no such field")}),
    "changed-type": (200, {("/body/seed", 'type: "integer"')}),
    "missing-header": (200, {("/headers/x-siliconcloud-trace-id", "required header")}),
    "renamed-code": (400, {("/body/code", "a required field"), ("/body/error_code", "no such field")}),
    # a gateway's HTML page carries no trace id either
    "html-502": (502, {("/headers/content-type", "application/json"), ("/headers/x-siliconcloud-trace-id", "header")}),
}


@pytest.mark.parametrize("drift", DRIFTS)
def test_each_drift_is_reported_at_its_pointer(upstream: tuple[Starlette, str], origin: str, drift: str) -> None:
    upstream[0].state.drift = {drift}
    status, wanted = EXPECTED[drift]
    body = {**KOLORS, "model": "no/such"} if drift == "renamed-code" else KOLORS
    with proxy_client(origin) as client:
        answer = client.post("/v1/images/generations", json=body, headers=AUTH)
        report = client.get("/_sfmock/drift").json()["drift"]
    assert answer.status_code == status
    found = {(d["pointer"], d["expected"]) for d in report}
    assert len(found) == len(wanted)
    for pointer, phrase in wanted:
        assert any(p == pointer and phrase in e for p, e in found), (pointer, found)
    assert all((d["method"], d["path"], d["status"]) == ("POST", "/v1/images/generations", status) for d in report)


def test_a_drift_report_never_quotes_a_signature(upstream: tuple[Starlette, str], origin: str) -> None:
    upstream[0].state.drift = {"changed-type", "extra-field"}
    with proxy_client(origin) as client:
        client.post("/v1/images/generations", json=KOLORS, headers=AUTH)
        text = client.get("/_sfmock/drift").text
    assert "realsignature" not in text and "AKIDREALCREDENTIAL" not in text and KEY not in text


def test_a_recording_holds_no_key_or_signature(origin: str, tmp_path: Path) -> None:
    with proxy_client(origin, record=tmp_path, downloads=True) as client:
        every_call(client)
        url = client.post("/v1/images/generations", json=KOLORS, headers=AUTH).json()["images"][0]["url"]
        assert client.get(url).status_code == 200
    files = sorted(tmp_path.iterdir())
    assert len(files) == 8
    for file in files:
        text = file.read_text("utf-8")
        for secret in (KEY, "realsignature", "AKIDREALCREDENTIAL", "Bearer sk-"):
            assert secret not in text, (file.name, secret)
    assert "REDACTED" in files[0].read_text("utf-8")


def test_downloads_go_through_the_proxy_only_when_asked(upstream: tuple[Starlette, str], origin: str) -> None:
    with proxy_client(origin, downloads=True) as client:
        url = client.post("/v1/images/generations", json=KOLORS, headers=AUTH).json()["images"][0]["url"]
        assert url.startswith("http://127.0.0.1:9999/default/outputs/")
        picture = client.get(url)
        forged = client.get("/default/outputs/other.png?X-Amz-Signature=x")
        report = client.get("/_sfmock/drift").json()
    assert picture.status_code == 200 and picture.content.startswith(b"\x89PNG")
    assert forged.status_code == 404
    assert report["drift"] == [] and report["exchanges"] == 2
    assert upstream[0].state.seen == [("POST", "/v1/images/generations"), ("GET", url.split("?")[0][21:])]
    with proxy_client(origin) as client:
        assert client.get(url).status_code == 404  # no download route without the opt-in
    assert len(upstream[0].state.seen) == 2


@pytest.mark.parametrize(
    "url", ["ftp://api.example", "https://api.example/v2/x", "https://user:pw@api.example", "api.example"]
)
def test_the_upstream_must_be_an_origin(url: str) -> None:
    with pytest.raises(ConfigError, match="upstream"):
        upstream_origin(url)


def test_an_unreachable_upstream_answers_502() -> None:
    with proxy_client("http://127.0.0.1:9") as client:
        answer = client.get("/v1/models", headers=AUTH)
    assert answer.status_code == 502 and "upstream failed" in answer.json()
