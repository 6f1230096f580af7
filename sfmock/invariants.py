"""The invariants a client check verifies after each run, and the run they read.

Each invariant is a function ``Run -> message | None``: the message says what the client
did wrong. They are checked in the order of :data:`INVARIANTS` (causes before their
consequences); users add their own functions of the same shape.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .contract import load_contract
from .signing import UrlSigner
from .transports import Exchange
from .validation import RequestValidator

__all__ = ["INVARIANTS", "PERMANENT", "SUCCESS", "TRANSIENT", "Invariant", "Run"]

GENERATE = "/v1/images/generations"
STORE = "/temporary/outputs/"
TRANSIENT = frozenset({"429", "500", "503", "504", "timeout", "dropped"})
PERMANENT = frozenset({"400", "401", "403", "404"})
SUCCESS = frozenset({"ok", "slow", "extra-fields"})


@dataclass(frozen=True, kw_only=True)
class Run:
    """One run of the client under one schedule: what it sent, got, returned or raised."""

    schedule: tuple[str, ...]
    exchanges: tuple[Exchange, ...]
    result: Any
    error: BaseException | None
    api_key: str
    max_attempts: int
    min_attempts: int

    @property
    def generations(self) -> list[Exchange]:
        return [e for e in self.exchanges if e.method == "POST" and e.path == GENERATE]

    @property
    def downloads(self) -> list[Exchange]:
        return [e for e in self.exchanges if e.path.startswith(STORE)]

    def outcome(self, attempt: int) -> str:
        """The scheduled outcome of generation attempt ``attempt`` (0-based)."""
        return self.schedule[attempt] if attempt < len(self.schedule) else "ok"


Invariant = Callable[[Run], "str | None"]


def valid_requests(run: Run) -> str | None:
    """Every generation request has a bearer key and a body valid under the contract."""
    validator = _validator()
    for number, exchange in enumerate(run.generations, 1):
        if not exchange.request_headers.get("authorization", "").lower().startswith("bearer "):
            return f"request {number} has no 'Authorization: Bearer' header"
        try:
            body = json.loads(exchange.request_body)
        except ValueError:
            return f"request {number} body is not JSON"
        if not isinstance(body, dict):
            return f"request {number} body is not a JSON object"
        if body.get("model") not in validator.contract.models:
            return f"request {number} names a model the contract does not list: {body.get('model')!r}"
        problem = validator.first_error(body)
        if problem is not None:
            return f"request {number} breaks the contract: {problem}"
    return None


def retries(run: Run) -> str | None:
    """Transient failures are retried, with waits that never shrink; permanent ones are not."""
    attempts = run.generations
    if len(attempts) > run.max_attempts:
        return f"made {len(attempts)} generation attempts; at most {run.max_attempts} are reasonable"
    for index in range(len(attempts) - 1):
        outcome = run.outcome(index)
        if outcome in PERMANENT:
            return f"retried after a permanent {outcome} (attempt {index + 1})"
        if outcome in SUCCESS and attempts[index].status == 200:
            return f"asked again after a successful answer (attempt {index + 1}): that pays twice"
    if attempts:
        last = run.outcome(len(attempts) - 1)
        if last in TRANSIENT and len(attempts) < run.min_attempts:
            return (
                f"gave up after a transient {last} on attempt {len(attempts)} "
                f"(expected at least {run.min_attempts} attempts)"
            )
    waits = [attempts[i + 1].started - attempts[i].ended for i in range(len(attempts) - 1)]
    for index, wait in enumerate(waits):
        if wait <= 0 and run.outcome(index) in ("429", "503"):
            return f"retried a {run.outcome(index)} at once, without backing off (attempt {index + 2})"
        if index and wait < waits[index - 1] - 1e-9:
            return f"back-off shrank: waited {waits[index - 1]:.2f}s, then {wait:.2f}s (attempt {index + 2})"
    return None


def same_body(run: Run) -> str | None:
    """A retry resends exactly the same body, seed included."""
    bodies = [e.request_body for e in run.generations]
    for number, body in enumerate(bodies[1:], 2):
        if _json_or_raw(body) != _json_or_raw(bodies[0]):
            return f"attempt {number} sent a different body than attempt 1"
    return None


def downloads(run: Run) -> str | None:
    """Images are downloaded, without Authorization, before their URL expires."""
    for exchange in run.downloads:
        name = exchange.path.rsplit("/", 1)[-1]
        if "authorization" in exchange.request_headers:
            return f"downloaded {name} with the Authorization header (object storage refuses two auth mechanisms)"
        expiry = _expiry(exchange.url)
        signature = parse_qs(urlsplit(exchange.url).query).get("X-Amz-Signature", [""])[0].encode()
        issued_by = next((g for g in run.generations if signature and signature in g.body), None)
        if expiry is not None and issued_by is not None and expiry > issued_by.ended and exchange.started >= expiry:
            late = exchange.started - expiry
            return f"downloaded {name} {late:.0f}s after its URL expired (URLs live {_ttl(exchange.url)}s)"
    attempts = run.generations
    if run.error is None and attempts and run.outcome(len(attempts) - 1) in SUCCESS:
        if not any(d.status == 200 for d in run.downloads):
            return "returned without downloading the image"
    return None


def errors(run: Run) -> str | None:
    """An error raised to the caller carries the status and trace id, never the API key."""
    error = run.error
    if error is None:
        return None
    public = f"{error}\n{error!r}\n" + "\n".join(repr(arg) for arg in error.args)
    if run.api_key in public:
        return f"the {type(error).__name__} raised to the caller contains the API key"
    answered = [e for e in run.exchanges if e.status is not None]
    last = run.exchanges[-1] if run.exchanges else None
    if last is None or last.status is None or last.status < 400 or last not in answered:
        return None
    text = public + _attribute_text(error)
    missing = [
        what
        for what, value in (("status", str(last.status)), ("trace id", last.trace_id))
        if value and value not in text
    ]
    if missing:
        return (
            f"the {type(error).__name__} raised after a {last.status} lacks its {' and '.join(missing)}: "
            f"{str(error)[:160]!r}"
        )
    return None


def tolerant(run: Run) -> str | None:
    """A successful answer is a success, even with fields the client does not know."""
    attempts = run.generations
    if run.error is None or not attempts:
        return None
    last = run.outcome(len(attempts) - 1)
    if last in SUCCESS and attempts[-1].status == 200 and all(d.status == 200 for d in run.downloads):
        extra = " with unknown fields" if last == "extra-fields" else ""
        return f"raised {type(run.error).__name__} on a successful answer{extra}: {str(run.error)[:160]!r}"
    return None


# checked in this order; the first broken one is reported (causes before consequences)
INVARIANTS: Mapping[str, Invariant] = {
    "valid-requests": valid_requests,
    "same-body": same_body,
    "downloads": downloads,
    "retries": retries,
    "errors": errors,
    "tolerant": tolerant,
}


@functools.cache
def _validator() -> RequestValidator:
    return RequestValidator(load_contract())


def _json_or_raw(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return body


def _expiry(url: str) -> float | None:
    query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    try:
        return UrlSigner.issued_at(query) + int(query["X-Amz-Expires"])
    except (KeyError, ValueError):
        return None


def _ttl(url: str) -> str:
    return parse_qs(urlsplit(url).query).get("X-Amz-Expires", ["?"])[0]


def _attribute_text(error: BaseException) -> str:
    parts = []
    for value in vars(error).values():
        if isinstance(value, str | int):
            parts.append(str(value))
    response = getattr(error, "response", None)
    headers = getattr(response, "headers", None)
    if headers is not None:
        parts.extend(str(v) for v in dict(headers).values())
    status = getattr(response, "status_code", None)
    if status is not None:
        parts.append(str(status))
    return "\n".join(parts)
