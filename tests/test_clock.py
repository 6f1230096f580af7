"""The clocks."""

from __future__ import annotations

import time

import pytest

from sfmock import SystemClock, VirtualClock


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
