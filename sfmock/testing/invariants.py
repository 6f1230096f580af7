"""The invariants a client check verifies after each run, and the run they read.

Each invariant is a function ``Run -> message | None``: the message says what the client
did wrong. They are checked in the order of :data:`INVARIANTS` (causes before their
consequences); users add their own functions of the same shape. Invariants judge what
the fake saw (the exchanges), not what it was told to do, so they hold for any client,
over any transport, in any language.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from urllib.parse import parse_qs, urlsplit

from sfmock.testing import facts
from sfmock.testing.evidence import (
    IMMEDIATE,
    Run,
    changed_url,
    digest,
    expiry,
    own_deadline,
    served_urls,
    ttl,
)
from sfmock.testing.facts import TRANSIENT_STATUSES
from sfmock.testing.images import as_images, describe, downloads_fine, whole_images
from sfmock.testing.live_checks import image_type, whole_url
from sfmock.testing.strategies import PERMANENT, SUCCESS, TRANSIENT
from sfmock.transports import Exchange
from sfmock.wording import plural

__all__ = ["INVARIANTS", "PERMANENT", "SUCCESS", "TRANSIENT", "Invariant", "Run"]

PERMANENT_STATUSES = frozenset({400, 401, 402, 403, 404, 413})
BACKOFF_STATUSES = facts.BACKOFF_STATUSES
IMAGE_MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"RIFF")  # PNG, JPEG, WebP: what a store may serve


Invariant = Callable[[Run], "str | None"]


def valid_requests(run: Run) -> str | None:
    """Every generation request has a bearer key and a body valid under the contract
    (under strict rules when the fake runs strict)."""
    validator = facts.validator()
    for number, exchange in enumerate(run.generations, 1):
        if not exchange.request_headers.get("authorization", "").lower().startswith("bearer "):
            return f"request {number} has no 'Authorization: Bearer' header"
        body = facts.generation_body(exchange)
        if isinstance(body, bytes):
            return f"request {number} body is not JSON"
        if not isinstance(body, dict):
            return f"request {number} body is not a JSON object"
        if body.get("model") not in validator.contract.models:
            return f"request {number} names a model the contract does not list: {body.get('model')!r}"
        problem = validator.first_error(body, strict=run.strict)
        if problem is not None:
            mode = "strict " if run.strict else ""
            return f"request {number} breaks the {mode}contract: {problem}"
    return None


def faithful_request(run: Run) -> str | None:
    """The first generation request carries each field the caller asked for, with its value
    (a retry that sends another body is ``same-body``'s: a seed re-rolled on retry)."""
    for exchange in run.generations[:1]:
        body = facts.generation_body(exchange)
        if not isinstance(body, dict):
            return None  # valid-requests says why
        for name, asked in run.request.items():
            if name not in body:
                return f"request 1 dropped the field {name!r} the caller asked for ({asked!r})"
            if body[name] != asked:
                return f"request 1 sent {name}={facts.short(body[name])} but the caller asked for {facts.short(asked)}"
    return None


def same_body(run: Run) -> str | None:
    """A retry resends exactly the same body, seed included."""
    bodies = [facts.generation_body(e) for e in run.generations]
    for number, body in enumerate(bodies[1:], 2):
        if body != bodies[0]:
            return f"attempt {number} sent a different body than attempt 1: {facts.difference(bodies[0], body)}"
    return None


def timeouts(run: Run) -> str | None:
    """A request the server never answers ends by the client's own timeout, and that
    timeout is longer than a normal answer takes."""
    if run.hung is not None:
        stalled = facts.stalled_download(run)
        if stalled is None:
            return run.hung
        return (
            f"{run.hung}; the request was the download of {stalled.path.rsplit('/', 1)[-1]}: an object store can "
            "stall too, so the download needs a timeout of its own (httpx timeout=None, requests without "
            "timeout=, curl without --max-time have none)"
        )
    if run.alarm_left is not None and run.error is None:
        return (
            f"returned with its SIGALRM timer still set ({run.alarm_left:.0f}s to go): signal.alarm(0) or "
            "setitimer(ITIMER_REAL, 0) was never called, and it goes off later in code that does not expect it"
        )
    for number, exchange in enumerate(run.exchanges, 1):
        if exchange.endless:  # on a thread whose end did not end the run (a caller's deadline left it)
            what = "download" if exchange in run.downloads else "request"
            return (
                f"would hang forever: {what} {number} ({exchange.method} {exchange.path.rsplit('/', 1)[-1]}) got no "
                "answer and had no read timeout, so the thread that sent it waits forever with its connection; "
                "a deadline in the caller (Future.result, func_timeout, Thread.join) gives up on it but does not "
                "end it: set a read timeout"
            )
    for number, exchange in enumerate(run.generations, 1):
        waited = exchange.ended - exchange.started
        if exchange.failure == "timeout" and exchange.fault is None:
            return (
                f"request {number} timed out after {waited:.1f}s on a normal answer: "
                "the read timeout is shorter than a generation takes (seconds, see timings.inference)"
            )
        if exchange.failure == "cancelled" and exchange.fault is None:
            return (
                f"request {number} was cancelled by the client after {waited:.1f}s, before a normal answer came: "
                "its deadline (asyncio.timeout, wait_for, trio.fail_after, a task cancelled) is shorter than a "
                "generation takes (seconds, see timings.inference)"
            )
        # a request on a thread cannot be cancelled: it is answered; the client went on without it
        # (another thread's wait that timed out meanwhile, a heartbeat, did not keep it from its image)
        gave_up = number < len(run.generations) or run.error is not None
        if exchange.deadline is not None and exchange.fault is None and gave_up and not facts.downloaded(run, exchange):
            return (
                f"request {number}'s answer was still being made when a thread of the client's stopped waiting "
                f"for it after {exchange.deadline - exchange.started:.1f}s, and the client did not use it: its "
                "deadline (Future.result, queue.get, wait_for around to_thread) is shorter than a generation "
                "takes (seconds, see timings.inference)"
            )
    return None


def downloads(run: Run) -> str | None:
    """Images are downloaded without Authorization, before their URL expires, by the URL
    exactly as served; a successful answer is followed by a download."""
    for exchange in run.downloads:
        name = exchange.path.rsplit("/", 1)[-1]
        if "authorization" in exchange.request_headers:
            return f"downloaded {name} with the Authorization header (object storage refuses two auth mechanisms)"
        changed = changed_url(exchange.url, served_urls(run, exchange.started), run.earlier_urls)
        if changed:
            return changed
        expires = expiry(exchange.url)
        signature = parse_qs(urlsplit(exchange.url).query).get("X-Amz-Signature", [""])[0].encode()
        issued_by = next((g for g in run.generations if signature and signature in g.body), None)
        if expires is not None and issued_by is not None and expires > issued_by.ended and exchange.started >= expires:
            late = exchange.started - expires
            return f"downloaded {name} {late:.0f}s after its URL expired (URLs live {ttl(exchange.url)}s)"
    attempts = run.generations
    if run.error is None and run.hung is None and attempts and facts.succeeded(attempts[-1], run, len(attempts) - 1):
        if not any(d.status is not None for d in run.downloads):
            return "returned without downloading the image"
    return None


def retries(run: Run) -> str | None:
    """Transient failures are retried (``min_attempts`` in all), permanent ones never;
    never more than ``max_attempts``; nothing is asked again after a success."""
    if run.hung is not None:
        return None
    attempts = run.generations
    if len(attempts) > run.max_attempts:
        return f"made {len(attempts)} generation attempts; at most {run.max_attempts} are reasonable"
    for index in range(len(attempts) - 1):
        exchange = attempts[index]
        if exchange.status in PERMANENT_STATUSES and exchange.failure is None:
            return f"retried after a permanent {exchange.status} (attempt {index + 1})"
        if facts.succeeded(exchange, run, index):
            # sent while this one was unanswered: not a retry but another generation, paid for too
            together = 1 + sum(
                a is not exchange and a.sent_at < exchange.ended and exchange.sent_at < a.ended for a in attempts
            )
            if together > 1:
                asked = run.request.get("batch_size", 1)
                times = {2: "twice", 3: "three times"}.get(together, f"{together} times")
                return (
                    f"sent {together} generations at once for one request of "
                    f"{plural(asked if isinstance(asked, int) else 1, 'image')}: that pays {times} "
                    "(several images come from one request with batch_size)"
                )
            failed = facts.download_failure(run, exchange, attempts[index + 1])
            if failed is None:
                gave_up = (
                    ""
                    if exchange.deadline is None
                    else f"; a thread of the client's stopped waiting for it after "
                    f"{exchange.deadline - exchange.started:.1f}s (Future.result, queue.get, wait_for around "
                    "to_thread): that deadline is shorter than a generation takes (seconds, see timings.inference)"
                )
                return f"asked again after a successful answer (attempt {index + 1}): that pays twice{gave_up}"
            # a download the client's own deadline ended (a stalled image host): starting the
            # attempt over, generation and all, is a way out, not a flaw
            own_deadline = failed.failure in ("cancelled", "timeout")
            if not own_deadline and (failed.failure is not None or failed.status in TRANSIENT_STATUSES):
                return (
                    f"generated again after the download of attempt {index + 1}'s image met a transient "
                    f"{facts.answer(failed)}: retry the download (its URL is still good), not the generation "
                    "(that pays twice)"
                )
    # a download after the last attempt: the client used the URL it got (a body cut after the
    # URL still holds it), it did not give up; how that download went is for `downloads`
    used = attempts and any(d.started >= attempts[-1].started for d in run.downloads)
    if attempts and facts.transient(attempts[-1]) and len(attempts) < run.min_attempts and not used:
        return (
            f"gave up {facts.gave_up(run)} on attempt {len(attempts)} "
            f"(expected at least {plural(run.min_attempts, 'attempt')})"
        )
    return None


AT_ONCE = "retried a "  # how the verdict on a 429 or 503 retried without a back-off begins


def backoff(run: Run) -> str | None:
    """A wait before retrying a 429 or 503, ``Retry-After`` honoured, a deterministic
    back-off that does not shrink below its first wait and stay there (jitter may; a reset
    that grows again may), and a bounded total wait."""
    attempts = run.generations
    waits = run.waits()
    other = facts.Rerun(run)
    for index, wait in enumerate(waits):
        answer = attempts[index]
        retry_after = facts.retry_after(answer)
        if retry_after is not None and wait < retry_after - 1e-6:
            return (
                f"ignored Retry-After: {retry_after:g} on the {answer.status} of attempt {index + 1}: "
                f"retried after {wait:.2f}s"
            )
        if wait < IMMEDIATE - 1e-6 and answer.status in BACKOFF_STATUSES and facts.same_wait(run, index, other):
            if wait <= 0:
                return f"{AT_ONCE}{answer.status} at once, without backing off (attempt {index + 2})"
            why = (
                "and another as soon in this run"
                if run.rerun is facts.unrepeatable
                else f"as soon under {facts.DRAWS} other random states"
            )
            return (
                f"{AT_ONCE}{answer.status} after {wait * 1000:.0f} ms (attempt {index + 2}), {why}: that is at "
                f"once, not a back-off (a wait under {IMMEDIATE * 1000:.0f} ms counts as none)"
            )
    if sum(waits) > run.max_total_wait:
        return f"waited {sum(waits):.0f}s in all between attempts; at most {run.max_total_wait:g}s is reasonable"

    def pure(gap: int) -> bool:  # a gap between two generation attempts with no download in it
        return not any(attempts[gap].ended <= d.started <= attempts[gap + 1].started for d in run.downloads)

    # a back-off that drops below its first wait and does not grow again (the next wait no
    # longer): one that drops and grows again reset to its start (urllib3's Retry inside a loop
    # of the client's own, whose wait may be the longer); a drop in a run's last wait cannot
    # be told from such a reset (outsider19's c03d: 1.0 s, then its inner layer's 0.5 s)
    pure_waits = [
        (index, wait)
        for index, wait in enumerate(waits)
        if facts.retry_after(attempts[index]) is None and pure(index)  # not dictated, no download in it
    ]
    if pure_waits:
        first = pure_waits[0]
        for (index, wait), (later, then) in itertools.pairwise(pure_waits[1:]):
            if wait < first[1] - 1e-9 and then <= wait + 1e-9 and facts.deterministic(run, other):
                return (
                    f"back-off shrank: waited {first[1]:.2f}s (attempt {first[0] + 2}), then {wait:.2f}s "
                    f"(attempt {index + 2}) and {then:.2f}s (attempt {later + 2}), the same under any random state"
                )
    return None


def returns_image(run: Run) -> str | None:
    """A run that returns normally returns exactly the image bytes the fake served."""
    if not run.returns_image or run.error is not None or run.hung is not None:
        return None
    served = whole_images(run.downloads)
    images = as_images(run.result, served)
    if images is not None and images and all(image in served for image in images):
        return None
    if images and not run.exchanges:
        if all(digest(image) in run.earlier_images for image in images):
            return None  # an image an earlier run downloaded, kept by the client (a cache): no request made
        if all(image.startswith(IMAGE_MAGIC) for image in images):
            return (
                f"returned {plural(len(images), 'image')} without a request in this run, "
                "and not one this check served: kept from an earlier check or process (a cache?); "
                "give the client an empty cache in the check"
            )
    what = describe(run.result, served)
    if not served:
        return f"returned {what} though it never got an image (an error swallowed?)"
    return f"returned {what} instead of the image it downloaded ({len(served[-1])} bytes of PNG)"


def whole_batch(run: Run) -> str | None:
    """A client that asked for ``batch_size`` N (in the generation it sent and got a 200 for,
    else in ``ctx.request``) and returns a list of images returns all N (or raises): a partial
    batch returned as if whole is a flaw. A client that returns one image (bytes, a path) has
    chosen to return one."""
    asked = facts.batch_size(run)
    if not run.returns_image or run.error is not None or run.hung is not None:
        return None
    if not isinstance(asked, int) or asked <= 1 or not isinstance(run.result, list | tuple):
        return None
    images = as_images(run.result, whole_images(run.downloads)) if run.result else []
    if images is None or len(images) >= asked:
        return None  # not a list of images: returns-image says why
    return (
        f"returned {len(images)} of the {asked} images asked for (batch_size={asked}) as if the batch were whole: "
        "raise, or say which images are missing"
    )


def secrets(run: Run) -> str | None:
    """The API key is in no error raised to the caller (message, args, notes, repr,
    traceback, causes) and in no log record any logger handled during the run (its message,
    traceback or ``extra`` fields)."""
    where = run.error_text.find(run.api_key) if run.error_text is not None else None
    if where is not None:
        return f"the {type(run.error).__name__} raised to the caller contains the API key (in its {where})"
    for record in run.logs:
        if run.api_key in record:
            return f"a log record contains the API key: {_around(record, run.api_key)!r}"
    return None


def _around(text: str, secret: str, width: int = 160) -> str:
    """An excerpt of ``text`` that shows where ``secret`` is (masked), however deep in it."""
    at = text.index(secret)
    start = max(0, at - width // 2)
    masked = text[start:].replace(secret, "<API KEY>")[:width]
    return ("..." if start else "") + masked


def errors(run: Run) -> str | None:
    """An error raised after an HTTP error carries its status and trace id: in its message,
    its attributes (``status_code``, ``response``, ...) or its cause chain."""
    error, read = run.error, run.error_text
    last = run.exchanges[-1] if run.exchanges else None
    if error is None or read is None or last is None or last.status is None or last.status < 400 or last.failure:
        return None  # no HTTP error answer came whole to the client
    if own_deadline(error):
        return None  # it gave up on its own timeout (retries judges whether too soon), not on that answer

    def lacks(exchange: Exchange) -> list[str]:
        facts = (("status", str(exchange.status)), ("trace id", exchange.trace_id))
        return [what for what, value in facts if value and not read.holds(value)]

    # the last error answer, or (requests in parallel: a batch of downloads) any other one
    # that came after the last success: the error may be about that one, unless the client
    # asked the same again once it had that answer (a retry: its answer is the last word)
    exchanges = run.exchanges
    recent = [
        e
        for n, e in enumerate(exchanges)
        if e.started >= facts.last_success(run)
        and e.failure is None
        and not any(o.method == e.method and o.url == e.url and o.sent_at >= e.ended for o in exchanges[n + 1 :])
    ]
    if any(not lacks(e) for e in recent if e.status is not None and e.status >= 400):
        return None
    missing = lacks(last)
    if missing:
        return (
            f"the {type(error).__name__} raised after a {last.status} lacks its {' and '.join(missing)}: "
            f"{str(error)[:160]!r}"
        )
    return None


def tolerant(run: Run) -> str | None:
    """A successful answer is a success, even with unknown fields or only the documented ones."""
    attempts = run.generations
    if run.error is None or not attempts:
        return None
    last = run.outcome(len(attempts) - 1)
    whole = downloads_fine(run.downloads)
    if last in SUCCESS and attempts[-1].status == 200 and attempts[-1].failure is None and whole:
        extra = {"extra-fields": " with unknown fields", "documented-body": " holding only the documented fields"}
        return (
            f"raised {type(run.error).__name__} on a successful answer{extra.get(last, '')}: {str(run.error)[:160]!r}"
        )
    return None


# checked in this order; the first broken one is reported (causes before consequences)
INVARIANTS: Mapping[str, Invariant] = {
    "valid-requests": valid_requests,
    "faithful-request": faithful_request,
    "same-body": same_body,
    "timeouts": timeouts,
    "whole-url": whole_url,  # before downloads: a cut URL is the cause
    "downloads": downloads,
    "retries": retries,
    "backoff": backoff,
    "image-type": image_type,  # before returns-image and tolerant: the type is the cause
    "returns-image": returns_image,
    "whole-batch": whole_batch,
    "secrets": secrets,
    "errors": errors,
    "tolerant": tolerant,
}
