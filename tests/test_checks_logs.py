"""`secrets` sees every log record a client's run emits, however its logging is set up:
a logger that does not propagate, a root whose handlers the client replaced, the key in a
record's ``extra`` fields; and only records that were made, and only while the run lasts."""

from __future__ import annotations

import io
import json
import logging
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from demo_clients import careful_generate

from sfmock.checks import ClientCheckFailed, ClientContext, check_client
from sfmock.testing.logcapture import captured_logs


def _headers(ctx: ClientContext) -> dict[str, str]:
    return {"Authorization": f"Bearer {ctx.api_key}"}


def _masked(key: str) -> str:
    return f"{key[:3]}...{key[-4:]}"


@pytest.fixture
def own_logger() -> Iterator[logging.Logger]:
    """A client's logger as it is often set up: its own handler, no propagation."""
    log = logging.getLogger("sfclient")
    handler = logging.StreamHandler(io.StringIO())
    log.addHandler(handler)
    log.propagate = False
    log.setLevel(logging.INFO)
    try:
        yield log
    finally:
        log.removeHandler(handler)
        log.propagate = True
        log.setLevel(logging.NOTSET)
        log.disabled = False
        log.filters.clear()


@pytest.fixture
def kept_root() -> Iterator[None]:
    """The root logger's handlers and level put back after a client that replaced them."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        yield
    finally:
        for handler in list(root.handlers):
            if handler not in handlers:
                root.removeHandler(handler)
                handler.close()
        for handler in handlers:
            if handler not in root.handlers:
                root.addHandler(handler)
        root.setLevel(level)


def _fails_secrets(client: Callable[[ClientContext], bytes], where: str) -> None:
    """Every invariant (the defaults) on a few schedules: `secrets` is the one that fails."""
    with pytest.raises(ClientCheckFailed) as failed:
        check_client(client, seed=1, max_examples=5)
    assert failed.value.invariant == "secrets", failed.value.problem
    assert "a log record contains the API key" in failed.value.problem and where in failed.value.problem
    assert "sk-sfmock-check" not in failed.value.problem  # shown masked


def test_a_key_logged_on_a_logger_that_does_not_propagate_is_a_leak(tmp_path: Path) -> None:
    log = logging.getLogger("sfclient.file")
    handler = logging.FileHandler(tmp_path / "sfclient.log")
    log.addHandler(handler)
    log.propagate = False
    log.setLevel(logging.INFO)

    def client(ctx: ClientContext) -> bytes:
        log.info("POST /images/generations headers=%s", _headers(ctx))
        return careful_generate(ctx)

    try:
        _fails_secrets(client, "sfclient.file: POST /images/generations headers={'Authorization': 'Bearer <API KEY>'}")
    finally:
        log.removeHandler(handler)
        handler.close()
        log.propagate = True
        log.setLevel(logging.NOTSET)
    assert "Bearer sk-sfmock-check" in (tmp_path / "sfclient.log").read_text()  # where the user would find it


@pytest.mark.usefixtures("kept_root")
def test_a_key_logged_after_basicconfig_force_is_a_leak() -> None:
    """``basicConfig(force=True)`` removes the root's handlers; the records are still logged."""

    def client(ctx: ClientContext) -> bytes:
        logging.basicConfig(level=logging.INFO, force=True, stream=io.StringIO())
        logging.info("POST /images/generations headers=%s", _headers(ctx))
        return careful_generate(ctx)

    _fails_secrets(client, "root: POST /images/generations")


def test_a_key_in_the_extra_fields_of_a_record_is_a_leak(own_logger: logging.Logger) -> None:
    """A JSON formatter prints every ``extra`` field: the message alone does not show the key."""

    class JsonFormatter(logging.Formatter):
        def format(self, record: logging.LogRecord) -> str:
            return json.dumps({"msg": record.getMessage(), "headers": getattr(record, "headers", None)})

    own_logger.handlers[0].setFormatter(JsonFormatter())

    def client(ctx: ClientContext) -> bytes:
        own_logger.info("POST /images/generations", extra={"headers": _headers(ctx)})
        return careful_generate(ctx)

    _fails_secrets(client, "[extra headers={'Authorization': 'Bearer <API KEY>'}]")


def test_a_key_logged_by_a_thread_of_the_client_is_a_leak(own_logger: logging.Logger) -> None:
    def client(ctx: ClientContext) -> bytes:
        worker = threading.Thread(target=own_logger.warning, args=("retrying with %s", ctx.api_key))
        worker.start()
        worker.join()
        return careful_generate(ctx)

    _fails_secrets(client, "sfclient: retrying with <API KEY>")


def test_a_client_that_logs_the_masked_key_or_no_key_passes(own_logger: logging.Logger) -> None:
    def client(ctx: ClientContext) -> bytes:
        own_logger.info("POST /images/generations key=%s", _masked(ctx.api_key), extra={"model": "Kolors"})
        logging.getLogger("sfclient.quiet").info("POST /images/generations")  # propagates to the root
        return careful_generate(ctx)

    report = check_client(client, seed=1, max_examples=5)
    assert report.examples >= 5


def test_a_key_masked_by_a_filter_before_it_is_written_passes(own_logger: logging.Logger) -> None:
    """A filter that masks the key in the record (on the logger or its handler) is a way to
    log headers safely: the record is judged as it left the handlers."""

    class Masking(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            record.msg, record.args = record.getMessage().replace("sk-sfmock-check", "sk-***"), None
            return True

    own_logger.handlers[0].addFilter(Masking())

    def client(ctx: ClientContext) -> bytes:
        own_logger.info("POST /images/generations headers=%s", _headers(ctx))
        return careful_generate(ctx)

    check_client(client, seed=1, max_examples=5)


def test_records_never_made_are_not_leaks(own_logger: logging.Logger) -> None:
    """A logger set above INFO, a disabled logger and a DEBUG record create nothing a user
    sees: the key in them is not logged."""
    strict = logging.getLogger("sfclient.strict")
    strict.setLevel(logging.WARNING)
    off = logging.getLogger("sfclient.off")
    off.disabled = True

    def client(ctx: ClientContext) -> bytes:
        strict.info("key %s", ctx.api_key)
        off.error("key %s", ctx.api_key)
        own_logger.debug("key %s", ctx.api_key)
        return careful_generate(ctx)

    try:
        check_client(client, seed=1, max_examples=5)
    finally:
        strict.setLevel(logging.NOTSET)
        off.disabled = False


def test_the_capture_is_gone_after_the_check(own_logger: logging.Logger) -> None:
    """The Logger class is as it was after a check, whether the client passed or failed, and
    a record logged afterwards reaches no run."""
    before = logging.Logger.__dict__["callHandlers"]

    def leaky(ctx: ClientContext) -> bytes:
        own_logger.info("key %s", ctx.api_key)
        return careful_generate(ctx)

    with pytest.raises(ClientCheckFailed):
        check_client(leaky, seed=1, max_examples=5)
    assert logging.Logger.__dict__["callHandlers"] is before
    check_client(careful_generate, seed=1, max_examples=5)
    assert logging.Logger.__dict__["callHandlers"] is before

    with captured_logs() as outer:
        own_logger.info("one")
        with captured_logs() as inner:
            own_logger.info("two")
        own_logger.info("three")
        with pytest.raises(ValueError), captured_logs():
            raise ValueError("a client that raises")
        own_logger.info("four")
    own_logger.info("five")
    assert outer == ["sfclient: one", "sfclient: two", "sfclient: three", "sfclient: four"]
    assert inner == ["sfclient: two"]
    assert logging.Logger.__dict__["callHandlers"] is before


def test_the_fakes_own_records_are_not_the_clients() -> None:
    with captured_logs() as logs:
        for name in ("sfmock", "sfmock.protocol", "uvicorn.access", "sfmock_client"):
            logging.getLogger(name).warning("a record of %s", name)
    assert logs == ["sfmock_client: a record of sfmock_client"]


def test_a_retry_library_logging_the_context_it_was_called_with_leaks_no_key() -> None:
    # outsider15 c04: stamina logs the arguments of the call it retries (`retry_scheduled`), the
    # context among them, and the context's repr held the key: "[secrets] a log record contains
    # the API key" for a client that never logged it
    log = logging.getLogger("retrylib")

    def generate(ctx: ClientContext) -> bytes:
        log.warning("retry scheduled", extra={"call_args": (ctx,)})
        log.info("calling with %r", ctx)
        return careful_generate(ctx)  # type: ignore[no-any-return]

    check_client(generate, max_examples=10, seed=1)
