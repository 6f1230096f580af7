"""The sfmock pytest plugin (registered through the ``pytest11`` entry point).

Fixtures:

- ``sfmock_server``: a live fake on ephemeral ports (the API at ``.url``, its image host on
  an origin of its own at ``.image_base_url``), started once per session and reset before
  each test, on a virtual clock. A test marked
  ``@pytest.mark.sfmock(config=..., **settings)`` gets a server of its own.
- ``sfmock_transport``: an in-process ``httpx`` transport into the same app (no socket):
  ``http://sfmock.test`` answers with image URLs on ``http://images.sfmock.test``.
- ``check_client``: :func:`sfmock.testing.checks.check_client`, with the marker's settings (a
  failing check fails the test with the shrunk schedule, transcript and replay line); the
  marker's ``scenario`` is checked but not applied (a check drives its own schedules).

Marker: ``@pytest.mark.sfmock(scenario="flaky", config="accounts.yaml", strict=True, ...)``;
``scenario`` is a shipped name, a file or a dict; other keywords are ``Settings`` fields.
Requests made either way land in ``sfmock_server.journal``.

A shared fake: with ``SFMOCK_URL`` set (and ``SFMOCK_CONTROL_TOKEN`` off loopback), no
server is started; ``sfmock_server`` is a :class:`~sfmock.remote.RemoteFake` on that
fake, in a session of its own for each test (``X-Sfmock-Session``), so parallel tests
(``pytest -n 8``) and CI jobs sharing the fake do not see each other. Tests send
``sfmock_server.headers`` with their requests (``sfmock_server.client()`` and
``sfmock_transport`` do it for them).
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from sfmock.chaos.faults import Scenario
    from sfmock.config import Settings
    from sfmock.remote import RemoteFake
    from sfmock.server import FakeServer
    from sfmock.testing.checks import CheckReport
    from sfmock.transports import Transport

URL_VARIABLE = "SFMOCK_URL"
TOKEN_VARIABLE = "SFMOCK_CONTROL_TOKEN"
_RUN = uuid.uuid4().hex[:8]  # tells apart CI jobs (and xdist workers) running the same tests

MARKER = (
    "sfmock(scenario=None, config=None, **settings): run against sfmock with this scenario "
    "(shipped name, file or dict), config file, or Settings fields"
)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", MARKER)


@pytest.fixture(scope="session")
def _sfmock_session() -> Iterator[FakeServer | RemoteFake]:
    from sfmock.remote import RemoteFake
    from sfmock.server import FakeServer
    from sfmock.untrusted import Untrusted, read_environment

    try:
        shared = read_environment(URL_VARIABLE, url=True)
        token = read_environment(TOKEN_VARIABLE)
    except Untrusted as exc:
        raise pytest.UsageError(f"sfmock: {exc}") from None
    if shared:
        yield RemoteFake(shared, token=token)
        return
    with FakeServer() as server:
        yield server


@pytest.fixture
def sfmock_server(
    request: pytest.FixtureRequest, _sfmock_session: FakeServer | RemoteFake
) -> Iterator[FakeServer | RemoteFake]:
    """A live fake for this test: reset, with the marker's scenario and settings."""
    from sfmock.remote import RemoteFake
    from sfmock.server import FakeServer

    options = _marker_options(request)
    with _marker_errors():
        scenario = _marker_scenario(options.pop("scenario", None))
        of_its_own = bool(options)  # settings of its own: a server of its own, with the scenario too
        if of_its_own:
            settings = _marker_settings(options)
            own_server = FakeServer(
                settings if scenario is None else dataclasses.replace(settings, scenario=scenario),
                host=options.get("host"),
                port=options.get("port") or 0,
                image_port=options.get("image_port"),
            )
    if of_its_own:
        with own_server as own:
            own.use_scenario(scenario)
            yield own
        return
    if isinstance(_sfmock_session, RemoteFake):  # a shared fake: a session of its own
        mine = _sfmock_session.for_session(session_for(request.node.nodeid))
        mine.reset()
        mine.use_scenario(scenario)
        mine.scenario_at_start = scenario  # a reset in the test keeps the marker's scenario
        yield mine
        mine.scenario_at_start = None
        mine.reset()  # frees the session's journal on the shared fake
        return
    _sfmock_session.scenario_at_start = None
    _sfmock_session.reset()
    _sfmock_session.use_scenario(scenario)
    _sfmock_session.scenario_at_start = scenario
    try:
        yield _sfmock_session
    finally:
        _sfmock_session.scenario_at_start = None


@pytest.fixture
def sfmock_transport(sfmock_server: FakeServer | RemoteFake) -> Iterator[Transport]:
    """An ``httpx`` transport into ``sfmock_server``: in-process without a socket, or (on a
    shared fake) over the network with the test's session header."""
    transport = sfmock_server.transport()
    yield transport
    transport.close()


def _marker_options(request: pytest.FixtureRequest) -> dict[str, Any]:
    """The test's ``@pytest.mark.sfmock`` keywords, the same for every fixture that reads them
    (a positional argument is refused by each, not ignored by one). Markers on the module,
    the class and the test add up, the closest winning a key they share (the closest alone
    dropped the others' keys: outsider21)."""
    options: dict[str, Any] = {}
    for marker in reversed(list(request.node.iter_markers("sfmock"))):  # farthest first
        if marker.args:
            raise pytest.UsageError("@pytest.mark.sfmock takes keyword arguments only (scenario=..., config=..., ...)")
        options.update(marker.kwargs)
    return options


@contextmanager
def _marker_errors() -> Iterator[None]:
    """A bad marker value fails the test's set-up with the message alone (it names the
    marker, the key and what is expected), not with sfmock's own frames."""
    from sfmock.errors import ConfigError

    try:
        yield
    except ConfigError as exc:
        pytest.fail(f"ConfigError: {exc}", pytrace=False)


def _marker_scenario(scenario: Any) -> Scenario | None:
    """The marker's ``scenario``, loaded as a config file's is: a missing file or an unknown
    name fails the set-up naming the marker and the key."""
    from sfmock.chaos.faults import Scenario
    from sfmock.config import settings_from

    if scenario is None or isinstance(scenario, Scenario):
        return scenario
    return settings_from({"scenario": scenario}, "@pytest.mark.sfmock").scenario


def _marker_settings(options: dict[str, Any]) -> Settings:
    """The marker's keywords, checked and converted exactly as a config file's keys are."""
    from sfmock.config import load_settings, settings_from
    from sfmock.errors import ConfigError

    config = options.pop("config", None)
    try:
        base = load_settings(config) if config is not None else None
    except ConfigError as exc:  # the file's own error, said to come from the marker's config=
        raise ConfigError(f"@pytest.mark.sfmock(config={config!r}): {exc.source}", exc.key, exc.expected) from None
    return settings_from(options, "@pytest.mark.sfmock", base)


@pytest.fixture
def check_client(request: pytest.FixtureRequest) -> Callable[..., CheckReport]:
    """``check_client(generate, **options)``: the client check, under the marker's settings."""
    from sfmock.testing.checks import check_client as run_check

    options = _marker_options(request)
    scenario = options.pop("scenario", None)
    with _marker_errors():
        # checked as for sfmock_server, not applied: each run of a check replaces the fake's
        # scenario with its own schedule (``outcomes=`` picks what the schedules may hold)
        _marker_scenario(scenario)
        settings = _marker_settings(options) if options else None

    def check(client: Callable[..., Any], **kwargs: Any) -> CheckReport:
        __tracebackhide__ = True
        kwargs.setdefault("settings", settings)
        report = run_check(client, **kwargs)
        if report.note:  # a pass with a note (its budget ran out, runs tested nothing): in the run's summary
            request.node.user_properties.append((_CUT_SHORT, report.note))  # carried by xdist's reports
        return report

    return check


_CUT_SHORT = "sfmock: passed with a note"
_cut: list[tuple[str, str]] = []  # (test, note) of this pytest run, gathered where the summary is written


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call":
        _cut.extend((report.nodeid, str(note)) for name, note in report.user_properties if name == _CUT_SHORT)


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    """Checks that passed with a note (their budget of real time spent, runs that tested
    nothing), named at the end of the run (pytest hides a passing test's stderr)."""
    cut, _cut[:] = list(_cut), []
    if cut:
        terminalreporter.section("sfmock: client checks that passed with a note")
        for nodeid, note in cut:
            terminalreporter.write_line(f"{nodeid}: {note}")


def session_for(nodeid: str) -> str:
    """A session name for one test of this run: readable, unique, within the header's rules."""
    digest = hashlib.sha256(nodeid.encode()).hexdigest()[:10]
    tail = re.sub(r"[^A-Za-z0-9._:/@+-]", "-", nodeid)[-80:].lstrip("._:/@+-")
    return f"{_RUN}-{digest}-{tail}"
