"""``sfmock drift``: recordings and the real-service fixtures checked against the contract,
and the paid canary (``--against``), pointed only at a local stand-in."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette

from conftest import FIXTURES
from sfmock.cli import main
from sfmock.fidelity.drift import check_exchange
from sfmock.fidelity.recording import Exchange, Message, load_recordings
from upstream import KEY

OBSERVED_URL_MOVE = {  # the service left this object store in late 2025: real drift
    ("200-observed.json", "/body/images/0/url"),
    ("200-observed.json", "/body/data/0/url"),
}


def test_the_real_service_fixtures_are_checked(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["drift", str(FIXTURES / "responses")]) == 1
    out = capsys.readouterr().out
    assert "checked 17 exchanges" in out
    # one cause (the old object-store URL), as the docs promise, reported at both places it shows
    assert "drift: 1 disagreement with the contract (seen 2 times)" in out
    found = set(re.findall(r"responses/([\w.-]+): POST /v1/images/generations 200 (\S+(?:, \S+)*):", out))
    assert {(name, pointer) for name, pointers in found for pointer in pointers.split(", ")} == OBSERVED_URL_MOVE
    assert "sc-maas.oss-cn-shanghai.aliyuncs.com under /outputs/a_0.png" in out
    assert "Signature=" not in out  # reports name parameters, never their values


def test_values_are_not_drift() -> None:
    def answer(seed: int, trace: str, url: str) -> Exchange:
        body = {"images": [{"url": url}], "timings": {"inference": 0.3}, "seed": seed, "created": seed}
        return Exchange(
            method="POST",
            path="/v1/images/generations",
            status=200,
            response=Message(
                headers={"content-type": "application/json", "x-siliconcloud-trace-id": trace},
                body=json.dumps(body).encode(),
            ),
        )

    one = answer(1, "a", "https://s3.siliconflow.cn/default/outputs/a.png?X-Amz-Expires=3600&X-Amz-Signature=1")
    two = answer(99, "b", "https://s3.example/default/outputs/zz.png?X-Amz-Expires=60&X-Amz-Date=20260101T000000Z")
    assert check_exchange(one) == check_exchange(two) == []


def test_a_recording_through_the_proxy_has_no_drift(origin: str, tmp_path: Path) -> None:
    from starlette.testclient import TestClient

    from sfmock.fidelity.proxy import create_proxy

    with TestClient(create_proxy(origin, record=tmp_path)) as client:
        client.post("/v1/images/generations", json={"model": "Qwen/Qwen-Image", "prompt": "x"}, headers=_auth())
        client.get("/v1/models", headers=_auth())
    assert len(load_recordings(tmp_path)) == 2
    assert main(["drift", str(tmp_path)]) == 0


def test_the_canary_refuses_to_spend_without_the_flag(
    upstream: tuple[Starlette, str], origin: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["drift", "--against", origin]) == 2
    out, err = capsys.readouterr()
    assert f"POST {origin}/v1/images/generations  [generate (Kwai-Kolors)]  ~0.05 CNY" in out
    assert "WARNING: this costs real money: 5 image generations" in out  # one a family: baidu too
    assert "add --confirm-cost" in err
    assert upstream[0].state.seen == []  # nothing was called


def test_the_canary_needs_a_key(
    origin: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SILICONFLOW_API_KEY", raising=False)
    assert main(["drift", "--against", origin, "--confirm-cost"]) == 2
    assert "environment: SILICONFLOW_API_KEY: expected the API key" in capsys.readouterr().err


@pytest.mark.parametrize("drift", [None, "changed-type"])
def test_the_canary_reports_drift_of_the_service(
    upstream: tuple[Starlette, str],
    origin: str,
    drift: str | None,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SILICONFLOW_API_KEY", KEY)
    upstream[0].state.drift = {drift} if drift else set()
    status = main(["drift", "--against", origin, "--confirm-cost", "--record", str(tmp_path)])
    out = capsys.readouterr().out
    seen = upstream[0].state.seen
    assert seen.count(("POST", "/v1/images/generations")) == 7 and len(seen) == 11
    assert seen[-1][0] == "GET" and seen[-1][1].startswith("/default/outputs/")  # the one download
    assert "checked 11 exchanges" in out
    if drift is None:
        assert status == 0 and "no drift" in out
    else:
        # one cause in the five generations: one disagreement, listed once
        assert status == 1 and out.count("/body/seed: contract: type") == 1
        assert "drift: 1 disagreement with the contract (seen 5 times)" in out
    for file in tmp_path.iterdir():
        assert KEY not in file.read_text("utf-8")


@pytest.mark.parametrize(
    ("argv", "phrase"),
    [
        (["drift"], "expected recordings (DIR ...) or --against URL"),
        (["drift", "x", "--against", "http://127.0.0.1:1"], "not both"),
        (["drift", "/nonexistent"], "/nonexistent: (path): no such file or folder"),
        (["drift", "--against", "file:///etc/passwd"], "--against: upstream: expected an http(s) URL"),
    ],
)
def test_bad_drift_arguments_exit_2(argv: list[str], phrase: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    assert phrase in capsys.readouterr().err


@pytest.mark.parametrize("drift", [None, "extra-field"])
def test_the_proxy_command_reports_at_exit(
    upstream: tuple[Starlette, str], origin: str, drift: str | None, tmp_path: Path
) -> None:
    upstream[0].state.drift = {drift} if drift else set()
    process = subprocess.Popen(
        [sys.executable, "-m", "sfmock", "proxy", "--upstream", origin, "--port", "0", "--record", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stderr is not None
        match = re.search(r"proxy at (http://127\.0\.0\.1:\d+)/v1", process.stderr.readline())
        assert match
        body = {"model": "Kwai-Kolors/Kolors", "prompt": "x"}
        answer = httpx.post(match[1] + "/v1/images/generations", json=body, headers=_auth(), timeout=10)
        assert answer.status_code == 200
    finally:
        process.send_signal(signal.SIGINT)
        out, _ = process.communicate(timeout=10)
    assert process.returncode == (1 if drift else 0)
    if drift:
        assert "/body/nsfw_content_detected: contract: no such field" in out
    else:
        assert "no drift" in out
    assert len(list(tmp_path.iterdir())) == 1


def _auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {KEY}"}


def test_the_second_looks_shapes_are_not_drift() -> None:
    """Issue 24's facts as a 2026 service sends them (the 2026 profile, /temporary/None/
    images): the 20015 and 20026 bodies, the third 429 body, the old route with its body
    without a model, an octet-stream download through a URL with an STS token, the chat
    endpoint's refusal of an image model. The contract knows every shape: no drift."""
    from dataclasses import replace as changed

    from starlette.testclient import TestClient

    from sfmock import VirtualClock, create_app, load_settings

    settings = changed(load_settings(FIXTURES / "live-2026.yaml"), image_prefix="/temporary/None/")
    auth = _auth()
    with TestClient(create_app(settings, clock=VirtualClock(1_767_225_600)), base_url=settings.base_url) as client:
        kolors = {"model": "Kwai-Kolors/Kolors", "prompt": "x"}
        answers = [
            client.post("/v1/images/generations", json={**kolors, "seed": -1}, headers=auth),
            client.post("/v1/images/generations", json={**kolors, "image_size": ""}, headers=auth),
            client.post("/v1/images/generations", json=kolors, headers={**auth, "X-Sfmock-Fault": "429;dialect=plain"}),
            client.post("/v1/Kwai-Kolors/Kolors/text-to-image", json={"prompt": "x"}, headers=auth),
            client.post("/v1/chat/completions", json={**kolors, "messages": []}, headers=auth),
        ]
        legacy = answers[3].json()
        answers.append(client.get(legacy["images"][0]["url"]))
    assert [a.status_code for a in answers] == [400, 400, 429, 200, 400, 200]
    assert answers[-1].headers["content-type"] == "application/octet-stream"
    for answer in answers:
        request = answer.request
        exchange = Exchange(
            method=request.method,
            path=request.url.path,
            query=request.url.query.decode(),
            request=Message(headers=dict(request.headers), body=request.content),
            status=answer.status_code,
            response=Message(headers=dict(answer.headers), body=answer.content),
        )
        assert check_exchange(exchange) == [], (request.url.path, answer.text[:200])
