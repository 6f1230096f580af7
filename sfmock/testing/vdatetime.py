"""``datetime.now()`` and its kin on a check's virtual clock, where ``time.time`` is virtual.

A circuit breaker timed with them (pybreaker's ``datetime.now(timezone.utc)``) opened in one
run must close again as the check's time passes; the C classes read the system clock
themselves, so the patched ``time.time`` does not reach ``now()`` or ``utcnow()``. As
freezegun does, :func:`dated` puts subclasses of the real classes (:class:`FakeDatetime`,
:class:`FakeDate`) in their place for a check: in the ``datetime`` module and in every module
global bound to them (``from datetime import datetime``), found in the one scan
:mod:`sfmock.testing.vtime` makes for the time functions. Their ``now``, ``utcnow`` and
``today`` ask the check's wall clock, which is virtual for the client's threads during a
run and real everywhere else (between runs; for sfmock's own code; for pytest's and
Hypothesis's, whose own names for the classes stay the real ones, :data:`TOOLS`).

What they return are instances of the real classes, built by them: ``orjson`` (which refuses
subclasses) and C code see nothing new. The fakes count a real instance as theirs
(``isinstance`` and ``issubclass`` both ways, by their metaclass), are equal to the real
classes (only ``is`` tells them apart) and bear the real names (``datetime.datetime``):
while they stand in the ``datetime`` module, a real instance pickles through them
(:data:`copyreg.dispatch_table`), as ``datetime.datetime``, which loads as the real class
anywhere.
"""

from __future__ import annotations

import copyreg
import datetime as _datetime
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

from sfmock.testing.aliases import bound_names

__all__ = ["REAL_CLASSES", "TOOLS", "FakeDate", "FakeDatetime", "WallClock", "dated"]

_REAL_DATE = _datetime.date
_REAL_DATETIME = _datetime.datetime
REAL_CLASSES: tuple[type, ...] = (_REAL_DATETIME, _REAL_DATE)  # what the fakes stand in for
_REAL_TIME = time.time  # taken before any check patches it
_REAL_NOW = _REAL_DATETIME.__dict__["now"]
_REAL_UTCNOW = _REAL_DATETIME.__dict__["utcnow"]

# the test runner's and the search's own modules: their classes stay real and their calls read
# real time, whatever thread they run on (a report's timestamp, an example database's)
TOOLS = ("_pytest", "pytest", "pluggy", "hypothesis")

# the virtual Unix time a caller in the named module sees on the calling thread now (None: real)
WallClock = Callable[[str], "float | None"]
_clocks: tuple[WallClock, ...] = ()  # the checks' clocks installed now, the latest last
_lock = threading.Lock()


def _virtual(frame: FrameType | None) -> float | None:
    """The virtual time the caller at ``frame`` sees, if any check's clock is virtual to it."""
    caller = frame.f_globals.get("__name__", "") if frame is not None else ""
    if _tool(caller):
        return None
    for clock in reversed(_clocks):
        when = clock(caller)
        if when is not None:
            return when
    return None


def _tool(module: str) -> bool:
    return module.startswith(TOOLS) and module.split(".", 1)[0] in TOOLS


class _StandsFor(type):
    """The fakes' metaclass: a fake counts the real class's instances and subclasses as its
    own (a value made before the check, or by C code, is still a ``datetime.datetime``), and
    is equal to the real class, with its hash: a table keyed by the class (pydantic's
    handlers, built by a module first imported during a check) finds the real values' type
    in it, during the check and after; a class derived from a fake is an ordinary class."""

    def __eq__(cls, other: object) -> bool:
        real = cls.__dict__.get("_real")
        return other is cls or (real is not None and other is real)

    def __hash__(cls) -> int:
        real = cls.__dict__.get("_real")
        return hash(real) if real is not None else type.__hash__(cls)

    def __instancecheck__(cls, instance: Any) -> bool:
        real = cls.__dict__.get("_real")
        return isinstance(instance, real) if real is not None else type.__instancecheck__(cls, instance)

    def __subclasscheck__(cls, subclass: type) -> bool:
        real = cls.__dict__.get("_real")
        return issubclass(subclass, real) if real is not None else type.__subclasscheck__(cls, subclass)


class FakeDate(_REAL_DATE, metaclass=_StandsFor):
    """``datetime.date`` while a check runs: ``today()`` on the check's clock."""

    __slots__ = ()
    _real = _REAL_DATE
    __module__ = "datetime"
    __qualname__ = "date"

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        return _REAL_DATE.__new__(_REAL_DATE if cls is FakeDate else cls, *args, **kwargs)

    @classmethod
    def today(cls) -> Any:
        when = _virtual(sys._getframe(1))
        return (_REAL_DATE if cls is FakeDate else cls).fromtimestamp(_REAL_TIME() if when is None else when)


class FakeDatetime(_REAL_DATETIME, metaclass=_StandsFor):
    """``datetime.datetime`` while a check runs: ``now()``, ``utcnow()`` and ``today()`` on the
    check's clock."""

    __slots__ = ()
    _real = _REAL_DATETIME
    __module__ = "datetime"
    __qualname__ = "datetime"

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        return _REAL_DATETIME.__new__(_REAL_DATETIME if cls is FakeDatetime else cls, *args, **kwargs)

    @classmethod
    def now(cls, tz: _datetime.tzinfo | None = None) -> Any:
        when = _virtual(sys._getframe(1))
        base = _REAL_DATETIME if cls is FakeDatetime else cls
        return _REAL_NOW.__get__(None, base)(tz) if when is None else base.fromtimestamp(when, tz)

    @classmethod
    def utcnow(cls) -> Any:
        when = _virtual(sys._getframe(1))
        base = _REAL_DATETIME if cls is FakeDatetime else cls
        if when is None:
            return _REAL_UTCNOW.__get__(None, base)()
        return base.fromtimestamp(when, _datetime.UTC).replace(tzinfo=None)

    @classmethod
    def today(cls) -> Any:
        when = _virtual(sys._getframe(1))
        base = _REAL_DATETIME if cls is FakeDatetime else cls
        return base.fromtimestamp(_REAL_TIME() if when is None else when)


FakeDate.__name__ = "date"
FakeDatetime.__name__ = "datetime"
_FAKES: dict[type, type] = {_REAL_DATETIME: FakeDatetime, _REAL_DATE: FakeDate}
_REALS = {fake: real for real, fake in _FAKES.items()}


def _reduce_date(value: _datetime.date) -> tuple[Any, ...]:
    # pickle names a class by where it is found: the real one is not in the datetime module now
    return FakeDate, value.__reduce__()[1]


def _reduce_datetime(value: _datetime.datetime) -> tuple[Any, ...]:
    return FakeDatetime, value.__reduce_ex__(4)[1]  # the state that keeps `fold`


_REDUCERS: dict[type, Callable[[Any], tuple[Any, ...]]] = {_REAL_DATETIME: _reduce_datetime, _REAL_DATE: _reduce_date}

Binding = tuple[dict[str, Any], str, Any]


@contextmanager
def dated(bindings: Iterable[Binding], clock: WallClock) -> Iterator[None]:
    """The fakes in place of the real classes for the block, ``now()`` and its kin asking
    ``clock``: in the ``datetime`` module and at ``bindings`` (``(namespace, name, real
    class)``, from :func:`~sfmock.testing.aliases.bound_names`), and in the globals of modules
    first imported during the block, which are given the real classes back at its end."""
    global _clocks
    own = vars(_datetime)
    native = vars(sys.modules["_datetime"]) if "_datetime" in sys.modules else None
    places = {
        (id(own), name): (own, name, value) for name, value in (("datetime", _REAL_DATETIME), ("date", _REAL_DATE))
    }
    for namespace, name, value in bindings:
        # the C module's own names stay real (the classes' home), and so do the tools'
        if namespace is not native and not _tool(str(namespace.get("__name__", ""))):
            places.setdefault((id(namespace), name), (namespace, name, value))
    before = set(sys.modules)
    swapped: list[Binding] = []
    with _lock:
        _clocks = (*_clocks, clock)
        reducers = {real: copyreg.dispatch_table.get(real) for real in REAL_CLASSES}
        copyreg.dispatch_table.update(_REDUCERS)
        for namespace, name, value in places.values():
            if namespace.get(name) is value:  # not rebound since the scan
                namespace[name] = _FAKES[value]
                swapped.append((namespace, name, value))
    try:
        yield
    finally:
        with _lock:
            for namespace, name, value in reversed(swapped):
                if namespace.get(name) is _FAKES[value]:
                    namespace[name] = value
            late = bound_names(_FAKES.values(), lambda module: module in before)
            for namespace, name, fake in late:
                namespace[name] = _REALS[fake]
            for real, reducer in reducers.items():
                if reducer is None:
                    copyreg.dispatch_table.pop(real, None)
                else:
                    copyreg.dispatch_table[real] = reducer
            _clocks = tuple(c for c in _clocks if c is not clock)
