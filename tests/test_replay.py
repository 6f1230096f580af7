"""Replaying recordings made through the proxy, offline, download included."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from conftest import assert_config_error
from sfmock import Settings, VirtualClock, check_response, create_app, load_settings
from sfmock.fidelity.proxy import create_proxy
from sfmock.fidelity.recording import load_recordings
from sfmock.imaging import render_png
from upstream import KEY, running_upstream

BODY = {"model": "Kwai-Kolors/Kolors", "prompt": "a lighthouse", "seed": 7}
AUTH = {"Authorization": "Bearer sk-offline-0123456789"}
RECORDED_PNG = render_png(b"upstream", 32, 24)  # what the stand-in's object store serves


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder recorded through the proxy: one generation and its download; the
    stand-in is stopped before any test replays it."""
    folder = tmp_path_factory.mktemp("recorded")
    with running_upstream() as (_, origin):
        proxy = create_proxy(origin, record=folder, downloads=True)
        with TestClient(proxy, base_url="http://127.0.0.1:9999") as client:
            answer = client.post("/v1/images/generations", json=BODY, headers={"Authorization": f"Bearer {KEY}"})
            assert client.get(answer.json()["images"][0]["url"]).content == RECORDED_PNG
    return folder


@pytest.fixture
def settings(recorded: Path) -> Settings:
    return Settings(seed=7, replay=tuple(load_recordings(recorded)))


def test_a_recorded_answer_replays_with_its_download(client: TestClient, clock: VirtualClock) -> None:
    answer = client.post("/v1/images/generations", json={**BODY, "seed": 99}, headers=AUTH)
    body = answer.json()
    assert (body["seed"], body["timings"], body["created"]) == (7, {"inference": 0.272}, 1764417600)
    url = body["images"][0]["url"]
    assert url.startswith("http://127.0.0.1:8001/temporary/outputs/") and "X-Amz-Signature=" in url  # the image host
    assert body["data"][0]["url"] == url
    download = client.get(url)
    assert download.status_code == 200 and download.content == RECORDED_PNG
    clock.advance(3600)
    assert client.get(url).status_code == 403  # it expires as usual


def test_faults_and_the_journal_apply_to_replayed_answers(client: TestClient) -> None:
    answer = client.post("/v1/images/generations", json=BODY, headers={**AUTH, "X-Sfmock-Fault": "503"})
    assert answer.status_code == 503
    assert client.post("/v1/images/generations", json=BODY, headers=AUTH).json()["seed"] == 7
    journal = client.app.state.journal.entries(path="/v1/images/generations")  # type: ignore[attr-defined]
    assert [e.status for e in journal] == [503, 200]


@pytest.mark.parametrize("match", ["prompt", "exact"])
def test_an_unmatched_request_gets_the_fake(match: str, recorded: Path, clock: VirtualClock) -> None:
    settings = Settings(seed=1, replay=tuple(load_recordings(recorded)), replay_match=match)
    with TestClient(create_app(settings, clock=clock)) as client:
        other_seed = client.post("/v1/images/generations", json={**BODY, "seed": 5}, headers=AUTH).json()
        other_prompt = client.post("/v1/images/generations", json={**BODY, "prompt": "x"}, headers=AUTH).json()
    assert other_seed["seed"] == (7 if match == "prompt" else 5)
    assert other_prompt["seed"] == 7 and "timings" in other_prompt and other_prompt["timings"] != {"inference": 0.272}


def test_a_miss_can_be_an_error_naming_the_closest_recording(recorded: Path) -> None:
    settings = Settings(
        seed=1, replay=tuple(load_recordings(recorded)), replay_miss="error", default_balance=Decimal("100.00")
    )
    with TestClient(create_app(settings, clock=VirtualClock(0))) as strict:
        answer = strict.post("/v1/images/generations", json={**BODY, "prompt": "a lighthouse!"}, headers=AUTH)
        balance = strict.get("/v1/user/info", headers=AUTH).json()["data"]["balance"]
    assert answer.status_code == 404
    check_response("POST", "/v1/images/generations", 404, answer.headers, answer.content)
    assert answer.json()["closest"].endswith("0001-POST-v1-images-generations-200.json")
    assert balance == "100.00"  # a miss costs nothing


def test_the_replay_setting_names_a_bad_folder(tmp_path: Path) -> None:
    config = tmp_path / "sfmock.yaml"
    assert_config_error(load_settings, config, "replay: nowhere\n", "replay", "no such file or folder")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.json").write_text('{"response": {"status": 200}}', "utf-8")
    assert_config_error(load_settings, config, "replay: bad\n", "replay", "request/response")
    assert_config_error(load_settings, config, "replay_match: fuzzy\n", "replay_match", "prompt")


@pytest.mark.parametrize("miss", ["fake", "error"])
def test_serve_announces_replay_and_what_it_loaded(recorded: Path, tmp_path: Path, miss: str) -> None:
    import os
    import signal
    import subprocess
    import sys

    empty = tmp_path / "empty"
    empty.mkdir()
    for folder, loaded in ((recorded, "2 recordings"), (empty, "0 recordings")):
        command = [sys.executable, "-m", "sfmock", "serve", "--port", "0", "--replay", str(folder)]
        environment = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with subprocess.Popen(
            [*command, "--replay-miss", miss], stderr=subprocess.PIPE, text=True, env=environment
        ) as process:
            assert process.stderr is not None
            lines: list[str] = []
            while not lines or "serving with" not in lines[-1]:  # the start-up lines, up to the last
                lines.append(process.stderr.readline())
                assert lines[-1], lines  # it exited early
            process.send_signal(signal.SIGINT)
        (line,) = [line for line in lines if "replay" in line]
        assert line.startswith(f"sfmock: replay on: {loaded} loaded from {folder} ("), line
        if folder == recorded:
            assert "(1 generation to answer, 1 download), matched by model and prompt" in line
            assert "every request is a miss" not in line
        else:
            assert "(0 generations to answer, 0 downloads)" in line and "every request is a miss" in line
        assert ("gets the fake's answer" if miss == "fake" else "gets a 404 naming the closest recording") in line
