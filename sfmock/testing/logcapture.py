"""The log records a client emits during a run, however its logging is set up.

A handler on the root logger misses what a client logs on a logger with ``propagate = False``
and a handler of its own, and everything after the client calls ``logging.basicConfig(force=True)``
(which removes the root's handlers). So :func:`captured_logs` watches the one place every
record a logger handles passes through, ``logging.Logger.callHandlers``, patched on the
class for the run and put back after: it is reached only for a record that was created
(its logger enabled for its level, not disabled) and passed the logger's filters, whatever
the propagation and the handlers. A record is kept as its message, its traceback and its
``extra`` fields (what a JSON formatter prints), each as text.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

__all__ = ["captured_logs", "opened_logs"]

LOWEST = logging.INFO  # a record below it (DEBUG) is not judged

# the attributes every record has; any other one came in through ``extra`` (or a filter)
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}
_OURS = ("sfmock", "uvicorn")  # the fake's loggers (and its server's): not the client's
_FORMATTER = logging.Formatter()

_lock = threading.Lock()
_sinks: tuple[list[str], ...] = ()  # one per run under way (runs nest, or run in threads)
_restore: Callable[[], None] | None = None


@contextmanager
def captured_logs() -> Iterator[list[str]]:
    """Every record of INFO and above that a logger other than sfmock's handles while
    the context is open, from any thread, as text."""
    global _sinks
    records: list[str] = []
    with opened_logs():
        with _lock:
            if not _sinks:
                _install()
            _sinks = (*_sinks, records)
        try:
            yield records
        finally:
            with _lock:
                _sinks = tuple(sink for sink in _sinks if sink is not records)
                if not _sinks:
                    _uninstall()


def _install() -> None:
    global _restore
    handed = logging.Logger.callHandlers

    def call_handlers(self: logging.Logger, record: logging.LogRecord) -> None:
        try:
            handed(self, record)
        finally:  # after the handlers: a filter of theirs that masks the key in place counts
            sinks = _sinks
            if sinks and record.levelno >= LOWEST and not _ours(record.name):
                text = _text(record)
                for sink in sinks:
                    sink.append(text)

    def restore() -> None:
        # only if ours is still the one in place: another patch made on top of it is kept
        if logging.Logger.__dict__.get("callHandlers") is call_handlers:
            logging.Logger.callHandlers = handed  # type: ignore[method-assign]

    logging.Logger.callHandlers = call_handlers  # type: ignore[method-assign]
    _restore = restore


def _uninstall() -> None:
    global _restore
    if _restore is not None:
        _restore()
        _restore = None


def _ours(name: str) -> bool:
    return any(name == ours or name.startswith(ours + ".") for ours in _OURS)


def _text(record: logging.LogRecord) -> str:
    try:
        text = record.getMessage()
    except Exception:  # arguments that do not fit the message: both are what a handler shows
        text = f"{_str(record.msg)} {_str(record.args)}"
    if record.exc_info and record.exc_info[1] is not None:
        try:
            text += "\n" + _FORMATTER.formatException(record.exc_info)
        except Exception:
            text += "\n" + _str(record.exc_info[1])
    if record.stack_info:
        text += "\n" + record.stack_info
    extra = [f"{name}={_str(value)}" for name, value in record.__dict__.items() if name not in _STANDARD]
    if extra:
        text += " [extra " + ", ".join(extra) + "]"
    return f"{record.name}: {text}"


def _str(value: object) -> str:
    try:
        return str(value)
    except Exception:  # a value whose __str__ raises still shows what it is
        return object.__repr__(value)


@contextmanager
def opened_logs() -> Iterator[None]:
    """The root logger opened to INFO; its handlers keep seeing only what they saw before,
    so nothing the user sees changes. A check opens it once around all its runs: setting a
    logger's level empties the cache of every logger, a cost on each run otherwise."""
    root = logging.getLogger()
    level = root.level
    quiet = _AtLeast(root.getEffectiveLevel())
    others = list(root.handlers)
    for handler in others:
        handler.addFilter(quiet)
    opened = min(root.getEffectiveLevel(), LOWEST)
    if opened != level:
        root.setLevel(opened)
    try:
        yield
    finally:
        if root.level != level:
            root.setLevel(level)
        for handler in others:
            handler.removeFilter(quiet)


class _AtLeast(logging.Filter):
    def __init__(self, level: int) -> None:
        super().__init__()
        self.level = level

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= self.level
