"""The sfmock pytest plugin (registered through the ``pytest11`` entry point).

Fixtures:

- ``sfmock_server``: a live fake on an ephemeral port, started once per session and
  reset before each test, on a virtual clock. A test marked
  ``@pytest.mark.sfmock(config=..., **settings)`` gets a server of its own.
- ``sfmock_transport``: an in-process ``httpx`` transport into the same app (no socket).
- ``check_client``: :func:`sfmock.checks.check_client`, with the marker's settings (a
  failing check fails the test with the shrunk schedule, transcript and replay line).

Marker: ``@pytest.mark.sfmock(scenario="flaky", config="accounts.yaml", strict=True, ...)``;
``scenario`` is a shipped name, a file or a dict; other keywords are ``Settings`` fields.
Requests made either way land in ``sfmock_server.journal``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from .checks import CheckReport
    from .config import Settings
    from .server import FakeServer
    from .transports import Transport

MARKER = (
    "sfmock(scenario=None, config=None, **settings): run against sfmock with this scenario "
    "(shipped name, file or dict), config file, or Settings fields"
)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", MARKER)


@pytest.fixture(scope="session")
def _sfmock_session() -> Iterator[FakeServer]:
    from .server import FakeServer

    with FakeServer() as server:
        yield server


@pytest.fixture
def sfmock_server(request: pytest.FixtureRequest, _sfmock_session: FakeServer) -> Iterator[FakeServer]:
    """A live fake for this test: reset, with the marker's scenario and settings."""
    from .server import FakeServer

    marker = request.node.get_closest_marker("sfmock")
    options: dict[str, Any] = dict(marker.kwargs) if marker else {}
    if marker and marker.args:
        raise pytest.UsageError("@pytest.mark.sfmock takes keyword arguments only (scenario=..., config=..., ...)")
    scenario = options.pop("scenario", None)
    if options:  # settings of its own: a server of its own
        with FakeServer(_marker_settings(options), host=options.get("host"), port=options.get("port") or 0) as own:
            own.use_scenario(scenario)
            yield own
        return
    _sfmock_session.reset()
    _sfmock_session.use_scenario(scenario)
    yield _sfmock_session


@pytest.fixture
def sfmock_transport(sfmock_server: FakeServer) -> Iterator[Transport]:
    """An ``httpx`` transport straight into ``sfmock_server``'s app, without a socket;
    it serves ``httpx.Client`` and ``httpx.AsyncClient`` alike."""
    from .transports import AsyncTransport, Transport

    class EitherTransport(Transport, AsyncTransport):
        """:class:`Transport` and :class:`AsyncTransport` in one object."""

    transport = EitherTransport(sfmock_server.app, sfmock_server.clock)
    yield transport
    transport.close()


def _marker_settings(options: dict[str, Any]) -> Settings:
    """The marker's keywords, checked and converted exactly as a config file's keys are."""
    from .config import load_settings, settings_from

    config = options.pop("config", None)
    base = load_settings(config) if config is not None else None
    return settings_from(options, "@pytest.mark.sfmock", base)


@pytest.fixture
def check_client(request: pytest.FixtureRequest) -> Callable[..., CheckReport]:
    """``check_client(generate, **options)``: the client check, under the marker's settings."""
    from .checks import check_client as run_check

    marker = request.node.get_closest_marker("sfmock")
    options: dict[str, Any] = dict(marker.kwargs) if marker else {}
    options.pop("scenario", None)  # a check drives its own schedules
    settings = _marker_settings(options) if options else None

    def check(client: Callable[..., Any], **kwargs: Any) -> CheckReport:
        __tracebackhide__ = True
        kwargs.setdefault("settings", settings)
        return run_check(client, **kwargs)

    return check
