"""The clocks."""

from __future__ import annotations

import time

import pytest
from starlette.testclient import TestClient

from conftest import AUTH
from sfmock import Settings, SystemClock, VirtualClock, create_app
from sfmock.clock import MAX_TIME, ShiftedClock


def test_virtual_clock_moves_only_when_told() -> None:
    clock = VirtualClock(100)
    assert clock.now() == clock.now() == 100
    assert clock.advance(2.5) == 102.5 == clock.now()
    clock.set(50)
    assert clock.now() == 50


def test_virtual_clock_does_not_go_backwards_by_advance() -> None:
    with pytest.raises(ValueError):
        VirtualClock().advance(-1)


def test_system_clock_is_the_wall_clock() -> None:
    before = time.time()
    assert before <= SystemClock().now() <= time.time()


class _Wall:
    """The wall clock as a clock module reads it (``time.time()``), moved by the test."""

    def __init__(self, now: float) -> None:
        self.now = now

    def time(self) -> float:
        return self.now


@pytest.mark.parametrize("where", ["memory", "redis"])
def test_the_running_server_clock_stops_at_the_end_of_9999(
    where: str, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    """Set half a second before the end of year 9999, the server's running clock stops
    there (as a session's does): every URL a 200 carries still downloads, and the
    clock still answers moves."""
    import sfmock.clock
    import sfmock.state.redis_time

    wall = _Wall(1_767_225_600.0)
    monkeypatch.setattr(sfmock.clock, "time", wall)
    monkeypatch.setattr(sfmock.state.redis_time, "time", wall)
    store = "memory" if where == "memory" else request.getfixturevalue("redis_url")
    with TestClient(create_app(Settings(seed=1, store=store))) as client:
        assert client.post("/_sfmock/clock", json={"set": MAX_TIME - 0.5}).status_code == 200
        wall.now += 3  # time runs on past the last second a date can name
        assert client.get("/_sfmock/clock").json()["now"] == MAX_TIME
        answer = client.post(
            "/v1/images/generations", json={"model": "Kwai-Kolors/Kolors", "prompt": "x"}, headers=AUTH
        )
        url = answer.json()["images"][0]["url"]
        assert "X-Amz-Date=99991231T235959Z" in url and client.get(url).status_code == 200
        assert client.post("/_sfmock/clock", json={"advance": 0}).json()["now"] == MAX_TIME
        assert client.post("/_sfmock/clock", json={"freeze": True}).status_code == 200
        wall.now += 10
        assert client.get("/_sfmock/clock").json()["now"] == MAX_TIME  # frozen where it stood
        # a move the contract allows that this clock's time cannot take: a conflict with its
        # state (Schemathesis's positive-data check), not a malformed request
        past = client.post("/_sfmock/clock", json={"advance": 1})
        assert past.status_code == 409
        assert past.json()["error"] == f"clock: advance 1 from {MAX_TIME:.0f} would put the clock past the end of 9999"
    clock = ShiftedClock()  # the same, on its own, frozen past the end while running
    clock.set(MAX_TIME - 0.5)
    wall.now += 1
    clock.freeze()
    assert clock.now() == MAX_TIME
