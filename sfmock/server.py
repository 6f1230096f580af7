"""Running the app under uvicorn: listening sockets, and a server in a background thread.

Sockets are opened here, not by uvicorn, so that port 0 works (the caller learns the
port before the app is built) and so that TCP_NODELAY is in force: asyncio sets it
only on sockets whose protocol is IPPROTO_TCP, and without it every keep-alive answer
waits 40 ms for a delayed ACK.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import uvicorn
from starlette.types import ASGIApp

from sfmock.chaos.verify import hide_frame
from sfmock.clock import VirtualClock
from sfmock.config import SAME_ORIGIN, Settings
from sfmock.errors import ConfigError
from sfmock.protocol import DEFAULT_READ_TIMEOUT, HttpToolsProtocol, uvicorn_config

if TYPE_CHECKING:
    from sfmock.chaos.faults import Scenario
    from sfmock.chaos.journal import Entry, Journal
    from sfmock.chaos.verify import Pattern
    from sfmock.transports import EitherTransport

__all__ = ["FakeServer", "PromptServer", "ServerThread", "listen", "server_stack"]

# real time even while a client check makes time virtual (sfmock's modules are not patched)
_monotonic, _sleep = time.monotonic, time.sleep


def listen(host: str, port: int, flags: str = "--host/--port") -> socket.socket:
    """A listening TCP socket on ``host:port`` (port 0: any free one).

    Raises :class:`ConfigError` naming ``flags`` and the address when it cannot listen there.
    """
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
        )[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise ConfigError("command line", flags, f"cannot listen on {host}:{port}: {exc}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise ConfigError("command line", flags, f"cannot listen on {host}:{port}: {exc}") from None
    return sock


def server_stack(config: uvicorn.Config) -> tuple[str, str]:
    """The HTTP parser and the event loop a uvicorn config serves with: ``("httptools",
    "uvloop")`` where ``uvicorn[standard]`` is installed, ``("h11", "asyncio")`` without."""
    http = config.http
    if isinstance(http, str):
        fast = http == "httptools" or (http == "auto" and HttpToolsProtocol is not None)
    else:
        fast = HttpToolsProtocol is not None and issubclass(http, HttpToolsProtocol)
    factory = config.get_loop_factory()
    loop = "uvloop" if factory is not None and getattr(factory, "__module__", "").startswith("uvloop") else "asyncio"
    return ("httptools" if fast else "h11"), loop


class PromptServer(uvicorn.Server):
    """uvicorn's server, but it stops as soon as it is asked to and its connections are done.

    uvicorn looks at ``should_exit`` every 0.1 s, then waits a fixed 0.1 s after asking
    the connections to close before it checks whether they have: 0.2 s of every stop spent
    asleep, paid by each fake a test starts and by each run of ``sfmock check`` (a fake of
    its own per run). Here the stop wakes the main loop, and the connections are watched
    every few milliseconds; the shutdown is uvicorn's otherwise (the same order, the same
    graceful timeout, the same cancellation after it).
    """

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None

    def exit(self) -> None:
        """Ask the server to stop (from any thread, or a signal handler)."""
        self.should_exit = True
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None:
            with contextlib.suppress(RuntimeError):  # the loop is closed: it has stopped already
                loop.call_soon_threadsafe(wake.set)

    def handle_exit(self, sig: int, frame: Any) -> None:
        super().handle_exit(sig, frame)
        self.exit()

    async def main_loop(self) -> None:
        self._wake = asyncio.Event()
        self._loop = asyncio.get_running_loop()  # the event first: exit() wakes it once the loop is known
        counter = 0
        should_exit = await self.on_tick(counter)
        while not should_exit:
            counter = (counter + 1) % 864000
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), _TICK)
            should_exit = await self.on_tick(counter)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        _uvicorn_log.info("Shutting down")
        for server in self.servers:
            server.close()
        for sock in sockets or []:
            sock.close()
        for connection in list(self.server_state.connections):
            connection.shutdown()
        state = self.server_state
        try:
            async with asyncio.timeout(self.config.timeout_graceful_shutdown):
                while (state.connections or state.tasks) and not self.force_exit:
                    await asyncio.sleep(_SHUTDOWN_POLL)
                for server in self.servers:
                    await server.wait_closed()
        except TimeoutError:
            for task in state.tasks:
                task.cancel(msg="Task cancelled, timeout graceful shutdown exceeded")
        if not self.force_exit:
            await self.lifespan.shutdown()


_uvicorn_log = logging.getLogger("uvicorn.error")  # where uvicorn's own shutdown says so
_TICK = 0.1  # seconds between uvicorn's ticks (it renews the Date header every tenth)
_SHUTDOWN_POLL = 0.005  # seconds between looks at the connections still open in a shutdown


class ServerThread:
    """uvicorn serving ``app`` on ``sock`` (one socket, or several: the API's and the image
    host's) in a daemon thread, until :meth:`stop`."""

    def __init__(
        self,
        app: ASGIApp,
        sock: socket.socket | Sequence[socket.socket],
        *,
        log_level: str = "warning",
        read_timeout: float | None = None,
        before_run: Callable[[], None] | None = None,
    ) -> None:
        """``read_timeout``: seconds a request may take to arrive (default: the app's
        ``settings.read_timeout``, else 15); ``before_run`` is called first in the server's thread."""
        if read_timeout is None:
            settings = getattr(getattr(app, "state", None), "settings", None)
            read_timeout = getattr(settings, "read_timeout", DEFAULT_READ_TIMEOUT)
        config = uvicorn_config(
            app,
            log_level=log_level,
            read_timeout=read_timeout,
            lifespan="off",
            timeout_graceful_shutdown=1,
        )
        self.sockets = [sock] if isinstance(sock, socket.socket) else list(sock)
        self.sock = self.sockets[0]
        self.server = PromptServer(config)
        self.before_run = before_run
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        if self.before_run is not None:
            self.before_run()  # first, in the server's own thread
        self.server.run(sockets=self.sockets)

    def start(self, timeout: float = 10) -> None:
        """Start and wait until the server accepts connections."""
        self.thread.start()
        deadline = _monotonic() + timeout
        while not self.server.started:
            if _monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            _sleep(0.005)

    def stop(self) -> None:
        """Ask the server to exit and wait for it."""
        self.server.exit()
        self.thread.join(10)
        for sock in self.sockets:
            sock.close()

    @contextlib.contextmanager
    def running(self) -> Iterator[ServerThread]:
        """``with ServerThread(app, sock).running():`` serves for the block."""
        self.start()
        try:
            yield self
        finally:
            self.stop()


class FakeServer:
    """A whole fake on real sockets, for tests: ``with FakeServer() as fake: fake.url``.

    The API listens at :attr:`url` (:attr:`api_url` with ``/v1``), the image host on an
    origin of its own at :attr:`image_base_url` (a free port; ``image_port="same"``, as a
    keyword or in the settings, keeps one origin). Runs on a virtual clock (``fake.clock``,
    or the one given; time moves only when told). Settings come from ``settings``, else
    the ``config`` YAML file; other keywords override :class:`~sfmock.Settings` fields.
    It listens on ``host`` (loopback unless given: the settings' ``host`` is not used, so
    a test never exposes the fake by accident) and ``port`` (0, a free one, unless given).
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        config: str | Path | None = None,
        clock: VirtualClock | None = None,
        host: str | None = None,
        port: int = 0,
        image_port: int | str | None = None,
        **overrides: Any,
    ) -> None:
        from sfmock.app import create_app
        from sfmock.config import load_settings, settings_from

        base = settings or (load_settings(config) if config is not None else Settings())
        if image_port is not None:
            overrides["image_port"] = image_port
        if overrides:  # what a config file takes, checked as a config file is
            base = settings_from(overrides, "FakeServer", base)
        host = host or "127.0.0.1"  # loopback, whatever the settings say, unless asked
        self.sock = listen(host, port)
        # the image host: a port of its own (free unless given here, whatever the settings
        # name, as for the API's), or none with one origin
        own = image_port if isinstance(image_port, int) else 0
        try:
            self.image_sock = None if base.single_origin else listen(host, own, "--image-port")
        except ConfigError:
            self.sock.close()
            raise
        images: int | str = SAME_ORIGIN if self.image_sock is None else self.image_sock.getsockname()[1]
        seed = 0 if base.seed is None else base.seed
        self.settings = dataclasses.replace(
            base, seed=seed, host=host, port=self.sock.getsockname()[1], image_port=images
        )
        self.clock = clock or VirtualClock(time.time())
        self.app = create_app(self.settings, clock=self.clock)
        address = f"[{host}]" if ":" in host else host
        self.url = f"http://{address}:{self.settings.port}"  # where it listens, whatever public_url says
        self.api_url = f"{self.url}/v1"
        # where the image host listens, whatever image_public_url says (the API's with one origin)
        self.image_base_url = self.url if self.image_sock is None else f"http://{address}:{images}"
        sockets = [self.sock] if self.image_sock is None else [self.sock, self.image_sock]
        self._thread = ServerThread(self.app, sockets)
        # what reset() comes back to besides the settings (the pytest plugin's marker scenario)
        self.scenario_at_start: Scenario | str | Path | Mapping[str, Any] | None = None

    def __enter__(self) -> FakeServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._thread.stop()

    @property
    def journal(self) -> Journal:
        """Every request the fake received (but the control API's)."""
        journal: Journal = self.app.state.journal
        return journal

    def reset(self) -> None:
        """Quotas, balances, journal, faults and clock back to the start (under the pytest
        plugin, the start of the test: its marker's scenario stays)."""
        self.app.state.control.reset_all()
        if self.scenario_at_start is not None:
            self.use_scenario(self.scenario_at_start)

    def use_scenario(self, scenario: Scenario | str | Path | Mapping[str, Any] | None) -> None:
        """Install a scenario: a shipped name, a file, a document, or ``None`` for none."""
        from sfmock.chaos.faults import Scenario

        if scenario is None:
            chosen = Scenario()
        elif isinstance(scenario, Scenario):
            chosen = scenario
        elif isinstance(scenario, Mapping):
            chosen = Scenario.from_document(scenario, "scenario")
        else:
            chosen = Scenario.find(scenario)
        self.app.state.faults.replace(chosen)

    def advance(self, seconds: float) -> float:
        """Move the fake's clock forward."""
        return self.clock.advance(seconds)

    @property
    def headers(self) -> dict[str, str]:
        """Headers a test sends with its requests: none here (see :class:`~sfmock.RemoteFake`)."""
        return {}

    def client(self, **options: Any) -> Any:
        """An ``httpx.Client`` on :attr:`api_url` (needs httpx)."""
        import httpx

        return httpx.Client(base_url=self.api_url, **options)

    def verify(
        self, pattern: Pattern | Mapping[str, Any] | None = None, *, session: str | None = None, **options: Any
    ) -> list[Entry]:
        """Count the journal's requests that match a pattern, after in-flight ones are recorded.

        ``fake.verify(path="/v1/images/generations", status=503, count=2)``; see
        :meth:`sfmock.chaos.verifyVerifier.verify`. A failure is an ``AssertionError`` naming the
        closest near misses.
        """
        __tracebackhide__ = hide_frame
        entries: list[Entry] = self.app.verify(pattern, session=session, **options)
        return entries

    def verify_order(
        self, *patterns: Pattern | Mapping[str, Any], session: str | None = None, **options: Any
    ) -> list[Entry]:
        """Requests matching ``patterns`` in this order; see :meth:`sfmock.chaos.verifyVerifier.verify_order`."""
        __tracebackhide__ = hide_frame
        entries: list[Entry] = self.app.verify_order(*patterns, session=session, **options)
        return entries

    def transport(self) -> EitherTransport:
        """An in-process ``httpx`` transport into this fake's app (no socket), for
        ``httpx.Client`` and ``httpx.AsyncClient`` alike: on ``http://sfmock.test`` the
        answers name images on ``http://images.sfmock.test``, and it carries both."""
        from sfmock.transports import EitherTransport

        return EitherTransport(self.app, self.clock)
