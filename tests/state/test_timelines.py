"""Processes racing on one timeline, against a clock really moved (the Redis store).

Each process of a fleet reads the shared clock ahead and computes a request's time before
its admission reaches Redis, so admissions of two processes arrive a few milliseconds out
of the order of their times. That is not the clock going back: what one process admitted
stays counted when the other's earlier time arrives after it. A clock set back (or reset,
frozen, thawed) is: there, the windows follow it back as in one process
(:mod:`sfmock.state.windows`).
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest
import redis

from sfmock.clock import VirtualClock
from sfmock.state.memory import MemoryStore
from sfmock.state.open import open_store
from sfmock.state.recheck import Stale
from sfmock.state.redis_store import RedisStore
from sfmock.state.store import Verdict, Window

T0 = 1_767_225_600.25
OPENING = (Decimal("2.00"), Decimal("0.50"))
RPM = Window("m|rpm", 60, 3, 1)


@pytest.fixture(params=["redis", "redis cluster"])
def fleet(request: pytest.FixtureRequest) -> Iterator[tuple[RedisStore, RedisStore]]:
    """Two processes' stores on one Redis (or one cluster), emptied first."""
    url = request.getfixturevalue({"redis": "redis_url", "redis cluster": "cluster_url"}[request.param])
    one, two = open_store(url), open_store(url)
    assert isinstance(one, RedisStore) and isinstance(two, RedisStore)
    one.delete("sfmock:*")
    yield one, two
    one.close()
    two.close()


def admit(store: RedisStore, now: float, window: Window = RPM, session: str | None = None) -> Verdict:
    """One request of the process holding ``store``: its read-ahead (the clock), then its
    admission at ``now``, as the request pipeline does (a changed read-ahead: served again)."""
    for _ in range(3):
        try:
            with store.snapshot(session):
                return store.book(session).admit("a", OPENING, [window], Decimal(0), now)
        except Stale:
            continue
    raise AssertionError("the read-ahead kept changing")


def used(store: RedisStore, now: float, session: str | None = None) -> float:
    """What the account's window holds at ``now``, as a request of that process reads it."""
    with store.snapshot(session):
        return store.book(session).usage("a", [RPM], now)[0].used


def test_admissions_arriving_out_of_order_on_one_clock_admit_the_limit_and_keep_every_entry(
    fleet: tuple[RedisStore, RedisStore],
) -> None:
    """Two processes on an unmoved clock, each one's requests arriving just after the
    other's later ones: exactly the limit is admitted, and each one admitted stays counted."""
    one, two = fleet
    times = [0.010, 0.008, 0.012, 0.011, 0.014, 0.013, 0.016, 0.015]
    verdicts = [admit((one, two)[n % 2], T0 + t).outcome for n, t in enumerate(times)]
    assert verdicts == ["admitted"] * 3 + ["limited"] * 5
    assert used(one, T0 + 1) == used(two, T0 + 1) == 3
    assert admit(two, T0 + 60.009).outcome == "limited"  # the race's entries count at the latest time it had seen
    assert admit(one, T0 + 60.011).outcome == "admitted"


def test_a_late_admission_is_counted_at_the_latest_time_its_timeline_reached(
    fleet: tuple[RedisStore, RedisStore],
) -> None:
    """What a process serving both in arrival order would have seen: the window slides from
    the later time, and the rate-limit answer names that newest time."""
    one, two = fleet
    window = Window("m|rpm", 60, 2, 1)
    assert admit(one, T0 + 0.5, window).outcome == "admitted"
    late = admit(two, T0 + 0.2, window)
    assert late.outcome == "admitted" and late.windows[0].newest == T0 + 0.5
    refused = admit(one, T0 + 0.3, window)
    assert (refused.outcome, refused.retry_after) == ("limited", 60)


@pytest.mark.parametrize("session", [None, "s"])
def test_a_clock_set_back_still_drops_its_future_then_races_on_the_new_timeline(
    fleet: tuple[RedisStore, RedisStore], session: str | None
) -> None:
    """The server's clock, or a named session's own, set back between two processes'
    admissions; then the server's clock (which a session's follows) set back again."""
    one, two = fleet
    server = one.clock(lambda: VirtualClock(T0), frozen=False)
    moved = server if session is None else one.session_clock(session, server)
    window = Window("m|rpm", 60, 1, 1)
    assert admit(one, T0 + 100, window, session).outcome == "admitted"
    assert admit(two, T0 + 99, window, session).outcome == "limited"  # a race: the entry at +100 stands
    moved.set(T0)  # a real move back
    assert admit(two, T0 + 0.5, window, session).outcome == "admitted"  # that future is gone, as in one process
    assert admit(one, T0 + 0.4, window, session).outcome == "limited"  # racing on the new timeline
    assert used(one, T0 + 1, session) == used(two, T0 + 1, session) == 1
    server.set(T0 - 50)
    assert admit(one, T0 + 0.3, window, session).outcome == "admitted"


def test_every_move_of_the_shared_clock_is_a_new_timeline(fleet: tuple[RedisStore, RedisStore]) -> None:
    """Freeze, set, reset: each is seen by the admission as the clock moving, so a time
    before the account's entries drops them, as :mod:`sfmock.state.windows` does."""
    one, two = fleet
    clock = one.clock(lambda: VirtualClock(T0), frozen=False)
    window = Window("m|rpm", 60, 1, 1)
    clock.freeze()
    assert admit(one, T0 + 10, window).outcome == "admitted"
    assert admit(two, T0 + 9, window).outcome == "limited"
    clock.set(T0)  # frozen, set back: stopped elsewhere
    assert admit(two, T0 + 5, window).outcome == "admitted"
    clock.freeze(False)
    assert admit(one, T0 + 4, window).outcome == "admitted"
    clock.reset()
    assert admit(two, T0 + 3, window).outcome == "admitted"


def test_without_a_read_ahead_the_store_follows_any_earlier_time_back_as_memory_does(redis_url: str) -> None:
    """A caller that read no clock (no request) gives no timeline: every earlier time is
    the clock going back, in Redis as in memory."""
    shared = open_store(redis_url)
    shared.delete("sfmock:*")
    window = Window("m|rpm", 60, 1, 1)
    for book in (MemoryStore().book(None), shared.book(None)):
        assert book.admit("a", OPENING, [window], Decimal(0), T0 + 100).outcome == "admitted"
        assert book.admit("a", OPENING, [window], Decimal(0), T0).outcome == "admitted"
    client = redis.Redis.from_url(redis_url)
    assert client.zcard("sfmock:|q:log:{a|}") == 1
    client.close()
    shared.close()
