"""The answer to one request as it leaves the fake, and the request's journal entry.

:class:`Outcome` watches the answer go out (status, content type, the start of its
body); :class:`JournalWriter` records the request and its outcome in the session's
journal, keeps the answer for the page and counts it in the metrics.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from starlette.types import Message, Receive, Scope

from sfmock.chaos.faults import Fault
from sfmock.chaos.journal import RESPONSE_CAP
from sfmock.chaos.metrics import Metrics
from sfmock.chaos.sessions import SessionState
from sfmock.service.legacy import is_generation
from sfmock.service.tracing import Outbound
from sfmock.state.recheck import Stale, confirm
from sfmock.state.rider import Rider
from sfmock.state.store import StoreUnavailable

__all__ = ["ANSWER_CAP", "GENERATION_PATH", "Exchange", "JournalWriter", "Outcome"]

logger = logging.getLogger("sfmock")

ANSWER_CAP = 16_384  # bytes of each answer kept for the page
GENERATION_PATH = "/v1/images/generations"
ISSUED_STATE = "issued"  # request.state.issued: the image URLs of the API's own 200 answer


class Outcome:
    """What became of one request: ``response`` (with status, content type and the start of
    the body), ``dropped``, ``truncated`` or ``abandoned``."""

    __slots__ = ("answer", "body", "image", "kept", "kind", "recorded", "status", "type")

    def __init__(self, kind: str = "response", status: int | None = None) -> None:
        self.kind = kind
        self.status = status
        self.type = ""
        self.image = False  # an image's bytes are not kept for the page
        self.body = b""  # the start of the body, for the journal
        self.answer: list[bytes] = []  # the start of a non-image body, for the page and the metrics
        self.kept = 0  # bytes in answer
        self.recorded = False

    def see(self, message: Message) -> bool:
        """Note one message on its way out; ``True`` when it ends the answer."""
        kind = message["type"]
        if kind == "http.response.body":
            chunk = message.get("body", b"")
            if not self.body:
                self.body = chunk[:RESPONSE_CAP]
            elif len(self.body) < RESPONSE_CAP:
                self.body += chunk[: RESPONSE_CAP - len(self.body)]
            if chunk and not self.image:
                room = ANSWER_CAP - self.kept
                if room > 0:
                    kept = chunk[:room]
                    self.answer.append(kept)
                    self.kept += len(kept)
            return not message.get("more_body", False)
        if kind == "http.response.start":
            self.status = message["status"]
            self.type = _content_type(message.get("headers", ()))
            self.image = self.type.startswith(("image/", "application/octet-stream"))  # an image, as served live
        return False

    def answered(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        """Note a whole answer sent as one head and one body: what :meth:`see` notes of its
        two messages."""
        self.status = status
        self.type = kind = _content_type(headers)
        self.image = image = kind.startswith(("image/", "application/octet-stream"))
        self.body = body[:RESPONSE_CAP]
        if body and not image:
            kept = body[:ANSWER_CAP]
            self.answer.append(kept)
            self.kept = len(kept)


class JournalWriter:
    """Records each request and its outcome: the journal, the page's answers, the metrics."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    @staticmethod
    def _fields(
        scope: Scope, headers: dict[str, str], body: bytes, started: float, outcome: Outcome, described: str | None
    ) -> dict[str, Any]:
        """The journal entry's makings (:meth:`~sfmock.chaos.journal.Journal.record`)."""
        return {
            "time": started,
            "method": scope["method"],
            "path": scope["path"],
            "query": scope.get("query_string", b"").decode("latin-1"),
            "authorization": headers.get("authorization"),
            "body": body,
            "status": outcome.status if outcome.kind == "response" else None,
            "outcome": outcome.kind,
            "fault": described,
            "trace_id": scope["state"].get("trace_id", ""),
            "headers": headers,
            "response": outcome.body,
        }

    def rider(
        self, session: SessionState, scope: Scope, headers: dict[str, str], body: bytes, started: float, content: bytes
    ) -> Rider | None:
        """The entry of a 200 whose body is ``content``, made before the admission that
        decides it, for the store to write in the same call (:mod:`sfmock.state.rider`)."""
        query = scope.get("query_string", b"").decode("latin-1")
        authorization = headers.get("authorization")
        trace_id = scope["state"].get("trace_id", "")
        return session.journal.rider(
            started,
            scope["method"],
            scope["path"],
            query,
            authorization,
            body,
            200,
            "response",
            None,
            trace_id,
            headers,
            content[:RESPONSE_CAP],
        )

    def _written(
        self,
        session: SessionState,
        scope: Scope,
        headers: dict[str, str],
        body: bytes,
        started: float,
        outcome: Outcome,
        described: str | None,
        rider: Rider,
    ) -> int:
        """The id of the entry ``rider`` wrote with the admission, written again where the
        answer went out otherwise than made."""
        if (
            outcome.kind == "response"
            and outcome.status == 200
            and described is None
            and outcome.body == rider.response
        ):
            return session.journal.written(rider)  # the answer went out as the entry says
        return session.journal.rewrite(rider, **self._fields(scope, headers, body, started, outcome, described))

    def record(
        self,
        session: SessionState,
        scope: Scope,
        headers: dict[str, str],
        body: bytes,
        times: tuple[float, float],
        outcome: Outcome,
        fault: Fault | None,
        rider: Rider | None = None,
    ) -> None:
        """Journal one request (``times``: its arrival on the clock, and on ``perf_counter``;
        ``rider``: its entry made ahead, which its admission may have written)."""
        started, began = times
        state = scope["state"]
        path = scope["path"]
        described = fault.describe() if fault else None
        kind = outcome.kind
        status = outcome.status if kind == "response" else None
        try:
            if rider is None or rider.entry_id is None:
                query = scope.get("query_string", b"")
                entry_id = session.journal.add(
                    started,
                    scope["method"],
                    path,
                    query.decode("latin-1") if query else "",
                    headers.get("authorization"),
                    body,
                    status,
                    kind,
                    described,
                    state.get("trace_id", ""),
                    headers,
                    outcome.body,
                )
            else:
                entry_id = self._written(session, scope, headers, body, started, outcome, described, rider)
        except StoreUnavailable as exc:  # the answer went out (or goes now): only its entry is lost
            logger.warning("sfmock: %s %s not journaled: %s", scope["method"], scope["path"], exc)
            return
        except Exception:  # the answer's headers went out: it goes out whole, the loss is logged
            logger.exception("sfmock: %s %s not journaled", scope["method"], scope["path"])
            return
        pieces = outcome.answer
        answer = pieces[0] if len(pieces) == 1 and type(pieces[0]) is bytes else b"".join(pieces)
        images: tuple[str, ...] = ()
        if status == 200 and (path == GENERATION_PATH or is_generation(path)):
            issued = state.get(ISSUED_STATE)
            if issued is not None and fault is None and len(answer) < ANSWER_CAP:  # as the API issued them
                images = tuple(issued)
            else:
                images = _read_back(answer)
        model = state.get("model")  # as the API read it
        try:
            session.keep(entry_id, status, outcome.type, answer, images)
            self.metrics.observe(
                path,
                scope["method"],
                status,
                model if isinstance(model, str) else _model(scope, body, fault),
                described,
                time.perf_counter() - began,
                len(images),
                answer,
            )
        except Exception:  # as above: never cut the answer for its bookkeeping
            logger.exception("sfmock: %s %s journaled but not counted", scope["method"], scope["path"])


def _model(scope: Scope, body: bytes, fault: Fault | None) -> str | None:
    """The model a request named: as the API read it, or (a fault answered instead) from the body."""
    model = scope["state"].get("model")
    if model is None and fault is not None and is_generation(scope["path"]):
        try:
            parsed = json.loads(body)
        except (ValueError, RecursionError):
            return None
        model = parsed.get("model") if isinstance(parsed, dict) else None
    return model if isinstance(model, str) else None


def _content_type(headers: Iterable[tuple[bytes, bytes]]) -> str:
    for name, value in headers:
        if name == b"content-type" or name.lower() == b"content-type":
            return str(value.decode("latin-1"))
    return ""


def _read_back(answer: bytes) -> tuple[str, ...]:
    """The image URLs of a generation's 200 answer read back from it (a fault touched it, or
    it was cut for the page): :meth:`JournalWriter.record` takes them as the API issued them
    when the answer went out whole and untouched."""
    try:
        images = json.loads(answer).get("images") or []
        return tuple(str(image["url"]) for image in images if isinstance(image, dict) and "url" in image)
    except (ValueError, AttributeError, TypeError):
        return ()


class Exchange:
    """One request on its way through: gives the app its buffered body, watches the answer
    go out, and journals the request once, just before the client sees the answer end.

    Its :meth:`send` does the trace id's work (``out``) too: one wrapper around the server's
    ``send``, not two."""

    __slots__ = (
        "_out",
        "_receive",
        "body",
        "body_sent",
        "fault",
        "headers",
        "outcome",
        "rider",
        "scope",
        "session",
        "times",
        "writer",
    )

    def __init__(
        self,
        writer: JournalWriter,
        session: SessionState,
        scope: Scope,
        headers: dict[str, str],
        body: bytes,
        times: tuple[float, float],
        receive: Receive,
        out: Outbound,
    ) -> None:
        self.writer = writer
        self.session = session
        self.scope = scope
        self.headers = headers
        self.body = body
        self.times = times
        self.outcome = Outcome()
        self.fault: Fault | None = None
        self.body_sent = False
        self.rider: Rider | None = None
        self._receive = receive
        self._out = out

    def offer(self) -> Callable[[bytes], Rider | None] | None:
        """What makes this request's 200 entry ahead (:meth:`ahead`), where its journal can
        write one with the admission; ``None`` elsewhere."""
        return self.ahead if self.session.journal.ahead else None

    def ahead(self, content: bytes) -> Rider | None:
        """The entry of a 200 whose body is ``content``, for the admission to write."""
        self.rider = self.writer.rider(self.session, self.scope, self.headers, self.body, self.times[0], content)
        return self.rider

    async def receive(self) -> Message:
        """The buffered body first, then what the server has (a disconnect)."""
        if not self.body_sent:
            self.body_sent = True
            return {"type": "http.request", "body": self.body, "more_body": False}
        return await self._receive()

    async def send(self, message: Message) -> None:
        """Pass a message on; journal the request first when it ends the answer (so a test
        that reads the journal right after its request finds the request there)."""
        out = self._out
        if message["type"] == "http.response.body":  # the trace id has nothing to do with a body
            if self.outcome.see(message):
                self.record()
        else:
            if message["type"] == "http.response.start":
                confirm()  # what the answer was made on still holds (else it is made again)
            self.outcome.see(message)
            out.stamp(message)
        await out.server(message)

    def record(self) -> None:
        """Journal the request with its outcome so far (once)."""
        outcome = self.outcome
        if not outcome.recorded:
            outcome.recorded = True
            try:  # by position, no star-arguments: on every request
                self.writer.record(
                    self.session, self.scope, self.headers, self.body, self.times, outcome, self.fault, self.rider
                )
            except Stale:  # nothing was answered (an answer checks first): journaled on the fresh state
                self.writer.record(
                    self.session, self.scope, self.headers, self.body, self.times, outcome, self.fault, self.rider
                )
