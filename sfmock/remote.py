"""A running fake shared by many tests or CI jobs, seen through one session.

``RemoteFake("http://127.0.0.1:8000", session="job-42")`` talks to a fake started
elsewhere (``sfmock serve``) through its control API, every call carrying the
``X-Sfmock-Session`` header, so its journal, scenario, faults, rate-limit counters and
clock are its own. The pytest plugin uses it when ``SFMOCK_URL`` is set: each test gets a
session of its own. Standard library only (no client library needed).
"""

from __future__ import annotations

import dataclasses
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sfmock.chaos.faults import Scenario
from sfmock.chaos.sessions import check_name
from sfmock.chaos.verify import Pattern, VerificationFailed, hide_frame
from sfmock.wording import plural

__all__ = ["RemoteFake"]

SESSION = "X-Sfmock-Session"
TOKEN = "X-Sfmock-Token"


class RemoteFake:
    """One session of a fake running at ``url`` (``session=None``: the default session)."""

    def __init__(self, url: str, *, session: str | None = None, token: str | None = None, timeout: float = 30) -> None:
        self.url = url.rstrip("/")
        self.api_url = f"{self.url}/v1"
        self.session = None if session is None else check_name(session)
        self.token = token
        self.timeout = timeout
        self._image_base_url: str | None = None
        # what reset() comes back to besides the fake's own (the pytest plugin's marker scenario)
        self.scenario_at_start: Scenario | str | Path | Mapping[str, Any] | None = None
        # the default session's last entry at this session's reset: what it saw since then
        # tells a test whose client forgot the session header where its requests went
        self._default_mark: int | None = None

    def for_session(self, session: str) -> RemoteFake:
        """The same fake, seen through ``session``."""
        other = RemoteFake(self.url, session=session, token=self.token, timeout=self.timeout)
        other._image_base_url = self._image_base_url
        return other

    @property
    def image_base_url(self) -> str:
        """The origin the fake's image URLs name (its image host: another port by default),
        as its health call reports it (asked once)."""
        if self._image_base_url is None:
            health = self.call("GET", "health")
            self._image_base_url = str(health.get("images", self.url)).rstrip("/")
        return self._image_base_url

    @property
    def headers(self) -> dict[str, str]:
        """Headers that put a request into this session: send them with every API request."""
        return {} if self.session is None else {SESSION: self.session}

    def client(self, **options: Any) -> Any:
        """An ``httpx.Client`` on ``api_url`` that sends :attr:`headers` (needs httpx)."""
        import httpx

        headers = {**self.headers, **options.pop("headers", {})}
        return httpx.Client(base_url=self.api_url, headers=headers, **options)

    def transport(self) -> Any:
        """An ``httpx`` transport over the network that adds :attr:`headers` to each request."""
        import httpx

        session_headers = self.headers

        class SessionTransport(httpx.HTTPTransport):
            def handle_request(self, request: httpx.Request) -> httpx.Response:
                request.headers.update(session_headers)
                return super().handle_request(request)

        return SessionTransport()

    def call(self, method: str, path: str, body: Any = None) -> Any:
        """One control API call; its JSON answer. ``RuntimeError`` names a refusal."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"{self.url}/_sfmock/{path}", data=data, method=method)
        request.add_header("Content-Type", "application/json")
        for name, value in self.headers.items():
            request.add_header(name, value)
        if self.token is not None:
            request.add_header(TOKEN, self.token)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as answer:
                return json.loads(answer.read())
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode("utf-8", "replace")
            raise RuntimeError(f"{method} /_sfmock/{path}: {exc.code} {detail}") from None

    def reset(self) -> None:
        """This session's journal, faults, quotas, balances and clock back to the start (the
        default session: everything, every session's included; under the pytest plugin, the
        start of the test: its marker's scenario stays)."""
        self.call("POST", "reset")
        if self.session is not None:
            last = self._default().journal.entries(limit=1)
            self._default_mark = int(last[-1]["id"]) if last else 0
        if self.scenario_at_start is not None:
            self.use_scenario(self.scenario_at_start)

    def use_scenario(self, scenario: Scenario | str | Path | Mapping[str, Any] | None) -> None:
        """Install a scenario in this session: a shipped name, a file, a document or ``None``."""
        if scenario is None:
            self.call("DELETE", "scenario")
            return
        if isinstance(scenario, Mapping):
            document = dict(scenario)
        else:
            chosen = scenario if isinstance(scenario, Scenario) else Scenario.find(scenario)
            document = dict(chosen.source)
        self.call("PUT", "scenario", document)

    def advance(self, seconds: float) -> float:
        """Move this session's clock forward (other sessions' stay where they are); the
        default session's is the server's clock, which every session's follows."""
        now: float = self.call("POST", "clock", {"advance": seconds})["now"]
        return now

    @property
    def journal(self) -> RemoteJournal:
        """This session's journal: ``fake.journal.entries(status=503)`` (entries as JSON)."""
        return RemoteJournal(self)

    def verify(
        self,
        pattern: Pattern | Mapping[str, Any] | None = None,
        *,
        count: int | None = None,
        at_least: int | None = None,
        at_most: int | None = None,
        within: float | None = None,
        timeout: float | None = None,
        **fields: Any,
    ) -> list[dict[str, Any]]:
        """:meth:`sfmock.chaos.verifyVerifier.verify` over the control API."""
        __tracebackhide__ = hide_frame
        command = {
            "pattern": _document(fields if pattern is None else pattern),
            "count": count,
            "at_least": at_least,
            "at_most": at_most,
            "within": within,
            "timeout": timeout,
        }
        return self._verdict({k: v for k, v in command.items() if v is not None})

    def verify_order(
        self, *patterns: Pattern | Mapping[str, Any], within: float | None = None, timeout: float | None = None
    ) -> list[dict[str, Any]]:
        """:meth:`sfmock.chaos.verifyVerifier.verify_order` over the control API."""
        __tracebackhide__ = hide_frame
        command = {"order": [_document(p) for p in patterns], "within": within, "timeout": timeout}
        return self._verdict({k: v for k, v in command.items() if v is not None})

    def _default(self) -> RemoteFake:
        return RemoteFake(self.url, token=self.token, timeout=self.timeout)

    def _verdict(self, command: dict[str, Any]) -> list[dict[str, Any]]:
        __tracebackhide__ = hide_frame
        try:
            verdict = self.call("POST", "verify", command)
        except RuntimeError as exc:
            if ": 400 " in str(exc):
                raise ValueError(str(exc)) from None
            raise
        if not verdict["ok"]:
            raise VerificationFailed(verdict["message"] + _where_requests_went(self))
        entries: list[dict[str, Any]] = verdict["entries"]
        return entries


class RemoteJournal:
    """A session's journal over the control API; read like :class:`~sfmock.Journal`."""

    def __init__(self, fake: RemoteFake) -> None:
        self.fake = fake

    def entries(self, **filters: Any) -> list[dict[str, Any]]:
        """Entries (as JSON) filtered as ``GET /_sfmock/journal`` filters them."""
        query = "&".join(f"{k}={urllib.parse.quote(str(v))}" for k, v in filters.items())
        entries: list[dict[str, Any]] = self.fake.call("GET", f"journal?{query}" if query else "journal")["entries"]
        return entries

    def __len__(self) -> int:
        return len(self.entries())


def _where_requests_went(fake: RemoteFake) -> str:
    """When this session recorded nothing: whether the default session recorded requests
    meanwhile (a client without the session header), and the header to send."""
    if fake.session is None or fake._default_mark is None or fake.journal.entries(limit=1):
        return ""
    page = fake._default().call("GET", f"journal?after={fake._default_mark}")
    strays, more = page["entries"], page.get("next_after") is not None  # one page is enough to tell
    header = f"{SESSION}: {fake.session}"
    if not strays:
        return (
            f"\nno request reached session {fake.session!r}, nor the default session: "
            f"is the client pointed at {fake.api_url}, sending {header}?"
        )
    first = strays[0]
    return (
        f"\nno request reached session {fake.session!r}; meanwhile the default session (requests without "
        f"the session header) recorded {'more than ' if more else ''}{plural(len(strays), 'request')}, "
        f"the first {first['method']} {first['path']}: "
        f"send sfmock_server.headers ({header}) with every request, or use sfmock_server.client() "
        "or sfmock_transport, which send it"
    )


def _document(pattern: Pattern | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(pattern, Pattern):
        fields = dataclasses.asdict(pattern)
        return {k: v for k, v in fields.items() if v is not None and v != {}}
    return dict(pattern)
