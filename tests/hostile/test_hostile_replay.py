"""``serve --replay`` under hostile input (issue 25): the closest-recording search of
``--replay-miss error`` is bounded and off the event loop, and a bad recording is a clean
exit 2 naming the file and the problem."""

from __future__ import annotations

import base64
import difflib
import json
import struct
import subprocess
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import served_while_held
from sfmock import Settings, VirtualClock
from sfmock.fidelity.recording import Exchange, Message, load_recordings, write_recording
from sfmock.fidelity.replay import Recordings
from sfmock.server import FakeServer

GEN = "/v1/images/generations"
AUTH = {"Authorization": "Bearer sk-replay-0123456789"}
ANSWER = {"images": [{"url": "https://s3.siliconflow.cn/o/a.png"}], "timings": {"inference": 1}, "seed": 1}


def recording(prompt: str) -> Exchange:
    body = json.dumps({"model": "Kwai-Kolors/Kolors", "prompt": prompt}).encode()
    return Exchange(
        method="POST",
        path=GEN,
        request=Message(headers={"content-type": "application/json"}, body=body),
        status=200,
        response=Message(headers={"content-type": "application/json"}, body=json.dumps(ANSWER).encode()),
    )


@pytest.fixture(scope="module")
def twenty(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("twenty")
    for index in range(20):
        write_recording(folder, index + 1, recording(f"subject-{index:02d} " * 100))
    return folder


@pytest.fixture
def fake(twenty: Path) -> Iterator[FakeServer]:
    settings = Settings(seed=1, replay=tuple(load_recordings(twenty)), replay_miss="error")
    with FakeServer(settings, clock=VirtualClock()) as server:
        yield server


def test_other_requests_are_served_while_the_closest_recording_is_looked_for(
    fake: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The search is held mid-way (difflib waits until let go): health answers meanwhile."""
    body = {"model": "Kwai-Kolors/Kolors", "prompt": "x" * 100_000}
    url = fake.api_url + "/images/generations"
    missed = served_while_held(
        monkeypatch,
        difflib.SequenceMatcher,
        "set_seq2",
        fake.url,
        lambda: httpx.post(url, json=body, headers=AUTH, timeout=120),
    )
    assert missed.status_code == 404
    assert missed.json()["closest"].endswith(".json")


def test_the_search_compares_a_bounded_part_of_each_request(fake: FakeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    compared: list[int] = []
    for name in ("set_seq1", "set_seq2"):
        original = getattr(difflib.SequenceMatcher, name)

        def noted(self: difflib.SequenceMatcher[Any], text: Any, original: Any = original) -> None:
            compared.append(len(text))
            original(self, text)

        monkeypatch.setattr(difflib.SequenceMatcher, name, noted)
    body = {"model": "Kwai-Kolors/Kolors", "prompt": "subject-03 " * 100_000}
    answer = httpx.post(fake.api_url + "/images/generations", json=body, headers=AUTH, timeout=120)
    assert answer.status_code == 404
    assert answer.json()["closest"].endswith("0004-POST-v1-images-generations-200.json")
    assert compared and max(compared) <= 4096


def test_the_search_stops_at_its_time_limit_naming_the_likeliest(twenty: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On a clock that jumps 2 s at each reading the search scores one recording: the
    one difflib's cheap bound ranks first."""
    scored: list[object] = []
    ratio = difflib.SequenceMatcher.ratio
    monkeypatch.setattr(difflib.SequenceMatcher, "ratio", lambda self: scored.append(self) or ratio(self))
    readings = iter(range(0, 1000, 2))
    body = {"model": "Kwai-Kolors/Kolors", "prompt": "subject-07 " * 100}
    closest = Recordings(load_recordings(twenty)).closest(body, clock=lambda: next(readings))
    assert closest is not None and closest.endswith("0008-POST-v1-images-generations-200.json")
    assert len(scored) == 1


def png_header(width: int, height: int) -> bytes:
    """A PNG that claims ``width`` x ``height`` and holds no pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def generation(url: str) -> dict[str, Any]:
    return {
        "request": {"method": "POST", "path": GEN, "body": {"model": "Kwai-Kolors/Kolors", "prompt": "p"}},
        "response": {"status": 200, "headers": {}, "body": {**ANSWER, "images": [{"url": url}]}},
    }


def download(body: dict[str, str]) -> dict[str, Any]:
    return {
        "request": {"method": "GET", "path": "/o/a.png"},
        "response": {"status": 200, "headers": {"content-type": "image/png"}, **body},
    }


BAD = {
    "deep-json": ("[" * 200_000 + "]" * 200_000, "nested at most"),
    "bad-base64": ([generation("https://h/o/a.png"), download({"body_base64": "not base64!"})], "base64"),
    "huge-png": (
        [
            generation("https://h/o/a.png"),
            download({"body_base64": base64.b64encode(png_header(30000, 30000)).decode()}),
        ],
        "30000x30000",
    ),
    "unclosed-bracket": ([generation("http://[x")], "expected a URL"),
}


@pytest.mark.parametrize("case", BAD)
def test_a_bad_recording_exits_2_naming_the_file_and_the_problem(tmp_path: Path, case: str) -> None:
    content, problem = BAD[case]
    documents = [content] if isinstance(content, str) else content
    for index, document in enumerate(documents):
        text = document if isinstance(document, str) else json.dumps(document)
        (tmp_path / f"{index:04d}-{case}.json").write_text(text, "utf-8")
    command = [sys.executable, "-m", "sfmock", "serve", "--replay", str(tmp_path), "--port", "0"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert f"-{case}.json" in done.stderr and problem in done.stderr
