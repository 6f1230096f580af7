"""Recording exchanges on the server side, for clients that reach the fake over a socket.

:class:`Recorder` wraps the app: every HTTP request and what the app answered become an
:class:`~sfmock.transportsExchange`, the same record the in-process transports keep, so
the client checks judge a client on any HTTP stack (or in any language) by one transcript.
``image_url`` makes the image URLs of the answers point back at the image host's socket
(``public_url``, the API's, with one origin); both sockets go through the one Recorder.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sfmock.clock import Clock
from sfmock.service.origins import IMAGE_URL_STATE
from sfmock.transports import REAL_MONOTONIC, Exchange, failure_of

__all__ = ["BeforeAnswer", "Recorder"]

BeforeAnswer = Callable[[Scope, int, bytes], Awaitable[None]]


class Recorder:
    """ASGI middleware that appends one :class:`Exchange` per HTTP request to ``exchanges``.

    Replace ``exchanges`` with a new list to start a new transcript: a request that was
    already under way when it was replaced still lands in the old one.
    """

    def __init__(
        self,
        app: ASGIApp,
        clock: Clock,
        *,
        public_url: str | None = None,
        image_url: str | None = None,
        before_answer: BeforeAnswer | None = None,
    ) -> None:
        self.app = app
        # awaited before a whole answer goes out (its latency); may mark state["client_gone"]
        self.before_answer = before_answer
        self.clock = clock
        self.public_url = public_url
        self.image_url = image_url or public_url
        self.exchanges: list[Exchange] = []
        self.in_flight = 0  # requests begun and not yet wholly handed to the socket

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state: dict[str, Any] = scope.setdefault("state", {})
        # the app finds the connection (to drop it) through the server's own ``send``,
        # which the wrapped ``send`` below hides: note it here
        state.setdefault("transport", getattr(getattr(send, "__self__", None), "transport", None))
        if self.image_url is not None:
            state[IMAGE_URL_STATE] = self.image_url
        # when the client learnt the outcome (a status line, a cut): virtual and real time
        answered: list[tuple[float, float]] = []
        state.setdefault("before_drop", []).append(lambda: answered.append((self.clock.now(), REAL_MONOTONIC())))
        request_body: list[bytes] = []
        status: int | None = None
        headers: dict[str, str] = {}
        body: list[bytes] = []

        async def recording_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                request_body.append(message.get("body", b""))
            return message

        started, real_started = self.clock.now(), REAL_MONOTONIC()
        recorded = False
        flying = True  # begun and not yet wholly handed to the socket
        into = self.exchanges  # the list of the run this request belongs to, even if it ends late
        self.in_flight += 1

        def finish() -> None:
            # before the client can see the end of the answer: a client that returns and
            # starts its next run never races its own last exchange into the next transcript
            nonlocal recorded
            if recorded:
                return
            recorded = True
            failure, fault = failure_of(state, status, None)
            if state.get("client_gone"):  # the client gave up while the answer was being made
                failure = "timeout"
            host = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"host"), "")
            query = scope.get("query_string", b"").decode("latin-1")
            raw_path = scope.get("raw_path") or scope["path"].encode()
            url = f"{scope.get('scheme', 'http')}://{host}{raw_path.decode('latin-1')}" + (f"?{query}" if query else "")
            into.append(
                Exchange(
                    method=scope["method"],
                    url=url,
                    path=scope["path"],
                    request_headers={k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]},
                    request_body=b"".join(request_body),
                    status=None if failure in ("dropped", "timeout") else status,
                    headers=headers,
                    body=b"".join(body),
                    failure=failure,
                    fault=fault,
                    started=started,
                    ended=answered[0][0] if answered else self.clock.now(),
                    real_started=real_started,
                    real_ended=answered[0][1] if answered else REAL_MONOTONIC(),
                )
            )

        held: list[Message] = []  # the status line, held until the answer's latency has passed

        async def recording_send(message: Message) -> None:
            if self.before_answer is not None and message["type"] == "http.response.start":
                held.append(message)
                return
            if held and message["type"] == "http.response.body":
                start = held.pop()
                if self.before_answer is not None and not message.get("more_body", False):
                    await self.before_answer(scope, start["status"], message.get("body", b""))
                await passing(start)
            await passing(message)

        async def passing(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                if status >= 400:  # a client may act on an error's status line before its body
                    answered.append((self.clock.now(), REAL_MONOTONIC()))
                headers.update((k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in message["headers"])
            elif message["type"] == "http.response.body":
                body.append(message.get("body", b""))
                if not message.get("more_body", False):
                    finish()
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                delivered()

        def delivered() -> None:
            # in flight until the last byte is handed to the socket: the client's loop must not
            # jump its clock (past its read timeout) while the body is still on its way
            nonlocal flying
            if flying:
                flying = False
                self.in_flight -= 1

        try:
            await self.app(scope, recording_receive, recording_send)
        finally:
            finish()
            delivered()
