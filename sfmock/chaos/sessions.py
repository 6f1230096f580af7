"""Sessions: the state one test (or CI job) sees when many share one running fake.

A request with the ``X-Sfmock-Session: NAME`` header (or, for image downloads, the
``X-Sfmock-Session`` query parameter the fake adds to the URLs it issues in a session)
is served from that session's own journal, scenario, fault counters, rate-limit
counters, balances, the models its faults retired and clock (the server's clock plus
the session's own moves: :class:`~sfmock.clock.SessionClock`). Without it, requests use
the default session, whose clock is the server's: the fake behaves as if sessions did
not exist. The run's start and the configuration are shared.

All scoped state is reached through :class:`Sessions` (``sessions.get(name)``); each
session's journal, faults and admission keep their state in the store
(:mod:`sfmock.state`) under the session's name, so with a shared store every process
serves the same sessions.
"""

from __future__ import annotations

import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from sfmock.chaos.faults import FaultEngine, Scenario
from sfmock.chaos.journal import Journal
from sfmock.clock import Clock
from sfmock.service.admission import Admission
from sfmock.service.imagehost import SESSION_PARAM
from sfmock.service.lifecycle import Lifecycle
from sfmock.state.store import Store
from sfmock.state.tally import Tally

__all__ = ["SESSION_HEADER", "SESSION_PARAM", "Activity", "SessionError", "SessionState", "Sessions"]

SESSION_HEADER = "x-sfmock-session"
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,127}")
ANSWERS_KEPT = 1000  # answers kept per session for the page: at most this many...
ANSWER_BYTES = 1_048_576  # ...and at most this many bytes of them
ANSWERS_TOTAL = 16 * 1_048_576  # every session's together: past it, the least recently used lose theirs
NOTE_EVERY = 1.0  # seconds between notes of one session's use in a shared store, per process
# scenario documents of all sessions together, in memory (a 256 KiB one holds about 1.6 MB
# once compiled): past it, the least recently used sessions start over
SCENARIO_BYTES = 2 * 1024 * 1024


class SessionError(ValueError):
    """A malformed session name (the message says what is expected)."""


def check_name(value: str, *, encoding: str = "utf-8") -> str:
    """``value`` if it is a valid session name, else :class:`SessionError`.

    ``encoding``: how ``value`` was decoded from the bytes sent (a header's latin-1); a name
    that is not ASCII is shown as those bytes, escaped, so 'é' sent in UTF-8 is not shown as
    the mojibake its latin-1 decoding makes.
    """
    if not NAME.fullmatch(value):
        shown = repr(value[:40]) if value.isascii() else f"{value[:40].encode(encoding, 'replace')!r} (bytes)"
        raise SessionError(
            f"X-Sfmock-Session: {shown} is not a session name; expected 1 to 128 letters, "
            "digits or . _ : / @ + - (ASCII, starting with a letter or digit)"
        )
    return value


class Activity:
    """Requests in flight and recorded, with a condition to wait on (see :mod:`sfmock.chaos.verify`).

    The condition is over a plain lock that :attr:`lock` names: every request takes it
    three times (begun, answer kept, ended), and a plain lock costs half a
    ``Condition``'s; waiters are woken only when there are some."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.condition = threading.Condition(self.lock)
        self.in_flight = 0
        self._waiting = 0

    def begin(self) -> None:
        with self.lock:
            self.in_flight += 1

    def end(self) -> None:
        with self.lock:
            self.in_flight -= 1
            if self._waiting:
                self.condition.notify_all()

    def wait(self, seconds: float) -> None:
        """Wait until a request finishes, or ``seconds`` pass."""
        with self.condition:
            self._waiting += 1
            try:
                self.condition.wait(seconds)
            finally:
                self._waiting -= 1


@dataclass(kw_only=True, slots=True)  # not frozen: that sets each field through object.__setattr__
class Answer:
    """What the fake answered a journalled request, for the page (body capped); made for
    every request journaled, and not changed once kept."""

    status: int | None
    content_type: str
    body: bytes
    images: tuple[str, ...] = ()  # image URLs issued (generation 200s)


Kept = tuple[int | None, str, bytes, tuple[str, ...], int]  # an Answer's fields, and its bytes


@dataclass(kw_only=True)
class SessionState:
    """The scoped state of one session."""

    name: str | None  # None: the default session
    journal: Journal
    engine: FaultEngine
    admission: Admission
    lifecycle: Lifecycle  # the models this session sees retired
    clock: Clock  # this session's time (the default session's: the server's clock)
    activity: Activity = field(default_factory=Activity)
    # entry id -> (status, content type, body, images, bytes): the page's Answer is made
    # when read (a tuple made in C per request, not a dataclass through its __init__)
    answers: OrderedDict[int, Kept] = field(default_factory=OrderedDict)
    answer_bytes: int = 0
    scenario_bytes: int = 0  # the size of the scenario document installed here (0: none)
    answer_tally: Tally | None = None  # every session's answers together (set by Sessions)

    def remember(self, entry_id: int, answer: Answer) -> None:
        """Keep the answer to journal entry ``entry_id`` (the last 1000, within 1 MiB)."""
        self.keep(entry_id, answer.status, answer.content_type, answer.body, answer.images)

    def keep(self, entry_id: int, status: int | None, content_type: str, body: bytes, images: tuple[str, ...]) -> None:
        """:meth:`remember` an :class:`Answer` with these fields, without making it (on
        every request journaled)."""
        size = len(body)
        if images:
            size += len(images[0]) if len(images) == 1 else sum(map(len, images))
        added = size
        with self.activity.lock:
            answers = self.answers
            answers[entry_id] = (status, content_type, body, images, size)
            held = self.answer_bytes = self.answer_bytes + size
            if len(answers) > ANSWERS_KEPT or held > ANSWER_BYTES:
                while len(answers) > ANSWERS_KEPT or self.answer_bytes > ANSWER_BYTES:
                    freed = answers.popitem(last=False)[1][4]
                    self.answer_bytes -= freed
                    added -= freed
            tally = self.answer_tally
        if tally is not None and added and tally.add(added, self.name):  # 0: as much freed as kept
            with self.activity.lock:  # no other session's answers left to drop: this one's oldest
                while tally.over() and len(self.answers) > 1:
                    freed = self.answers.popitem(last=False)[1][4]
                    self.answer_bytes -= freed
                    tally.add(-freed, self.name)

    def drop_answers(self) -> None:
        """Forget the answers kept for the page (the journal keeps its entries)."""
        with self.activity.lock:
            if self.answer_tally is not None:
                self.answer_tally.add(-self.answer_bytes, self.name)
            self.answers.clear()
            self.answer_bytes = 0

    def answer(self, entry_id: int) -> Answer | None:
        with self.activity.lock:
            kept = self.answers.get(entry_id)
        if kept is None:
            return None
        return Answer(status=kept[0], content_type=kept[1], body=kept[2], images=kept[3])

    def reset(self, scenario: Scenario) -> None:
        """Journal, answers, quotas, balances, faults, the models its scenario retired and
        (a named session's) clock back to the start."""
        if self.name is not None:  # the default session's retirements and clock are the run's
            self.lifecycle.reset(0.0)
            reset_clock = getattr(self.clock, "reset", None)
            if reset_clock is not None:
                reset_clock()
        self.admission.reset()
        self.journal.clear()
        self.engine.replace(scenario)
        self.drop_answers()
        with self.activity.condition:
            self.activity.condition.notify_all()

    def release(self) -> None:
        """The session is gone: what it held stops counting in the server's totals."""
        self.journal.release()
        self.admission.release()
        self.drop_answers()
        self.answer_tally = None


class Sessions:
    """Every session of one app, created on first use; the oldest unused go beyond ``limit``.

    On a shared store the ``limit`` most recently used are counted across every process:
    each process tells the store when it uses a session (at most once a :data:`NOTE_EVERY`
    seconds per session), and the store drops the state of those pushed out.
    """

    def __init__(
        self,
        make: Callable[[str | None], SessionState],
        *,
        limit: int = 256,
        store: Store | None = None,
        tallies: tuple[Tally, ...] = (),
    ) -> None:
        """``store``: where the sessions' state lives, told when every named session goes.
        ``tallies``: what all sessions hold together; one over its limit pushes out the
        least recently used named sessions (see :mod:`sfmock.state.tally`)."""
        self.scenarios = Tally(SCENARIO_BYTES)
        for tally in (*tallies, self.scenarios):
            tally.shed = self.shed
        self.answers = Tally(ANSWERS_TOTAL)
        self.answers.shed = self._drop_answers
        self._make = make
        self._store = store
        self._limit = limit
        self._lock = threading.Lock()
        self._named: OrderedDict[str, SessionState] = OrderedDict()
        self._noted: dict[str, float] = {}  # name -> when its use was last noted in a shared store
        self.default = make(None)
        self.default.answer_tally = self.answers

    def get(self, name: str | None) -> SessionState:
        """The session called ``name`` (created if new), or the default one for ``None``."""
        if name is None:
            return self.default
        with self._lock:
            state = self._named.get(name)
            if state is None:
                state = self._named[name] = self._make(name)
                state.answer_tally = self.answers
                while len(self._named) > self._limit:
                    self._push_out(next(iter(self._named)))
            else:
                self._named.move_to_end(name)
            due = False
            if self._store is not None and self._store.shared:  # in memory there is nothing to note
                now = time.monotonic()
                due = now - self._noted.get(name, -NOTE_EVERY) >= NOTE_EVERY
                if due:
                    self._noted[name] = now
        if due:
            assert self._store is not None
            for gone in self._store.use_session(name, self._limit):  # pushed out by any process
                with self._lock:
                    if gone in self._named:
                        self._push_out(gone)
        return state

    def _push_out(self, name: str) -> None:
        """Drop session ``name`` (the lock held): it starts over if used again."""
        state = self._named.pop(name)
        state.release()
        self.scenarios.add(-state.scenario_bytes, name)
        self._noted.pop(name, None)

    def _drop_answers(self, tally: Tally, owner: str | None) -> None:
        """Past the answers' total, the least recently used sessions' answers go (only the
        page shows them; the sessions stay)."""
        with self._lock:
            others = [state for name, state in self._named.items() if name != owner]
        if owner is not None:
            others.append(self.default)
        for state in others:
            if not tally.over():
                return
            state.drop_answers()

    def installed(self, state: SessionState, size: int) -> None:
        """Count the scenario document of ``size`` bytes ``state`` now runs (0: none);
        past :data:`SCENARIO_BYTES` for all sessions, the least recently used go."""
        if self._store is not None and self._store.shared:
            return  # the documents are the store's; each process compiles those it serves
        with self._lock:
            delta, state.scenario_bytes = size - state.scenario_bytes, size
            if state.name is not None and self._named.get(state.name) is not state:
                return  # pushed out meanwhile: nothing of it is counted
        self.scenarios.add(delta, state.name)

    def shed(self, tally: Tally, owner: str | None) -> None:
        """Push out the least recently used named sessions but ``owner`` while ``tally``
        is over its limit."""
        with self._lock:
            for name in list(self._named):
                if not tally.over():
                    return
                if name != owner:
                    self._push_out(name)

    def find(self, name: str | None) -> SessionState | None:
        """The session if it exists (never creates one)."""
        if name is None:
            return self.default
        with self._lock:
            return self._named.get(name)

    def names(self) -> list[str]:
        with self._lock:
            return list(self._named)

    def __iter__(self) -> Iterator[SessionState]:
        with self._lock:
            named = list(self._named.values())
        return iter([self.default, *named])

    def forget_named(self) -> None:
        """Drop every named session (a full reset), in the store too."""
        with self._lock:
            for name in list(self._named):
                self._push_out(name)
        if self._store is not None:
            self._store.forget_sessions()


def session_name(headers: Mapping[str, str], query: Mapping[str, Any] | None = None) -> str | None:
    """The session a request names (header first, then the query parameter), checked."""
    value = headers.get(SESSION_HEADER)
    if value is not None:
        return check_name(str(value), encoding="latin-1")  # how the server decoded the header's bytes
    value = query.get(SESSION_PARAM) if query is not None else None
    return None if value is None else check_name(str(value))
