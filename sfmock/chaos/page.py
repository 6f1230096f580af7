"""The page at ``/_sfmock/``: a live view of the fake, and the calls only it needs.

The page is one self-contained HTML file shipped with the package (no build step,
nothing fetched from elsewhere). It holds no data: everything it shows comes from the
control API, with the ``X-Sfmock-Token`` header off loopback (the page asks for the
token, or reads it from the URL fragment ``#token=...``, which browsers never send).
"""

from __future__ import annotations

import json
import math
from importlib import resources

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sfmock.chaos.control import CONTROL_PREFIX, Control
from sfmock.chaos.faults import Scenario
from sfmock.chaos.journal import Entry
from sfmock.chaos.outcome import GENERATION_PATH
from sfmock.chaos.pipeline import STORE_PREFIX
from sfmock.chaos.sessions import Answer, SessionState
from sfmock.imaging import render_png, rendered_png
from sfmock.offload import RENDERING
from sfmock.service.accounts import Account, Authenticator
from sfmock.service.quota import METRICS
from sfmock.service.responses import json_response
from sfmock.service.signing import ObjectName

__all__ = ["Page"]

THUMBNAIL = 160  # pixels on the longer side
FEED_LIMIT = 200
SESSIONS_LISTED = 200  # offered in the page's session field; any other name can be typed
SHIPPED = ("happy", "flaky", "overloaded", "rate-limited", "slow", "expiring-urls", "broken-connections")


class Page:
    """The page and its feeds."""

    def __init__(self, *, control: Control, authenticator: Authenticator, max_pixels: int) -> None:
        self.control = control
        self.authenticator = authenticator
        self.max_pixels = max_pixels
        self._html = resources.files("sfmock.chaos").joinpath("page.html").read_bytes()

    def routes(self) -> list[Route]:
        p, guard = CONTROL_PREFIX, self.control.guard
        return [
            Route(f"{p}/", self.page, methods=["GET"]),
            Route(f"{p}/ui", self.page, methods=["GET"]),
            Route(f"{p}/ui/feed", guard(self.feed), methods=["GET"]),
            Route(f"{p}/ui/accounts", guard(self.accounts), methods=["GET"]),
            Route(f"{p}/ui/scenarios", guard(self.scenarios), methods=["GET"]),
            Route(f"{p}/ui/thumbnail/{{object}}", guard(self.thumbnail), methods=["GET"]),
        ]

    async def page(self, request: Request) -> Response:
        """``GET /_sfmock/``: the page itself (no data in it)."""
        headers = {
            "Cache-Control": "no-store",
            # frame-ancestors and X-Frame-Options (older browsers): no other site can show the
            # page in a frame and lure clicks onto its buttons (clickjacking)
            "Content-Security-Policy": "default-src 'self'; img-src 'self' blob: data:; "
            "style-src 'unsafe-inline'; script-src 'unsafe-inline'; connect-src 'self'; "
            "frame-ancestors 'none'; form-action 'none'; base-uri 'none'",
            "X-Frame-Options": "DENY",
        }
        return Response(self._html, media_type="text/html", headers=headers)

    async def feed(self, request: Request) -> Response:
        """``GET /_sfmock/ui/feed?after=ID``: entries newer than ``after``, with their answers."""
        session = _session(request)
        try:
            after = int(request.query_params.get("after", "0"))
        except ValueError:
            return json_response({"error": "feed: after must be an integer entry id"}, 400)
        entries = [e for e in session.journal.entries() if e.id > after][-FEED_LIMIT:]
        items = []
        for entry in entries:
            item = entry.to_json()
            answer = session.answer(entry.id) or _kept_in_journal(entry)
            if answer is not None:
                urls = list(answer.images)
                if entry.path.startswith(STORE_PREFIX) and entry.status == 200:
                    urls.append(f"{entry.path}?{entry.query}")  # a download: show what it got
                item["answer"] = {
                    "content_type": answer.content_type,
                    "body": answer.body.decode("utf-8", "replace"),
                    "images": [{"url": url, "thumbnail": _thumbnail_path(url)} for url in urls],
                }
            items.append(item)
        return json_response(
            {
                "entries": items,
                "evicted": session.journal.dropped,
                "session": session.name,
                "sessions": self.control.sessions.names()[:SESSIONS_LISTED],
                "scenario": session.engine.scenario.name,
            }
        )

    async def accounts(self, request: Request) -> Response:
        """``GET /_sfmock/ui/accounts``: balance and usage against each limit, per account."""
        session = _session(request)
        admission = session.admission
        listed: dict[str, Account] = {}
        configured = getattr(self.authenticator, "accounts", None)
        for account in [*(configured() if configured else []), *admission.seen()]:
            listed.setdefault(account.id, account)
        now = session.clock.now()
        result = []
        for account in listed.values():
            balance, charged = admission.balances(account)
            usage = []
            for model in admission.models(account):
                limits = admission.limits_for(account, model)
                for metric, state in admission.state(account, model, limits, now).items():
                    usage.append(
                        {
                            "model": model,
                            "metric": metric,
                            "unit": METRICS[metric][0],
                            "limit": state.limit,
                            "used": state.limit - state.remaining,
                            "reset": math.ceil(max(0.0, state.reset)),
                        }
                    )
            name, _email = account.identity()
            result.append(
                {
                    "id": account.id,
                    "name": name,
                    "status": account.status,
                    "balance": f"{balance:.2f}",
                    "charge_balance": f"{charged:.2f}",
                    "spent": f"{account.balance + account.charge_balance - balance - charged:.2f}",
                    "usage": usage,
                }
            )
        return json_response({"accounts": result})

    async def scenarios(self, request: Request) -> Response:
        """``GET /_sfmock/ui/scenarios``: the shipped scenarios, as documents to load."""
        return json_response({"scenarios": {name: dict(Scenario.named(name).source) for name in SHIPPED}})

    async def thumbnail(self, request: Request) -> Response:
        """``GET /_sfmock/ui/thumbnail/{object}``: a small copy of a generated image."""
        name = ObjectName.parse(request.path_params["object"])
        if name is None or name.width * name.height > self.max_pixels:
            return json_response({"error": "thumbnail: not the name of an image this fake issues"}, 404)
        scale = THUMBNAIL / max(name.width, name.height)
        width, height = max(1, round(name.width * scale)), max(1, round(name.height * scale))
        seed = bytes.fromhex(name.digest)
        png = rendered_png(seed, width, height) or await RENDERING.run(render_png, seed, width, height)
        return Response(png, media_type="image/png", headers={"Cache-Control": "private, max-age=3600"})


def _kept_in_journal(entry: Entry) -> Answer | None:
    """What the journal kept of an answer this process does not hold: one another process
    of a shared store gave (its first 4 KiB), or one pushed out of this process's 1000."""
    if entry.status is None:
        return None
    if entry.path.startswith(STORE_PREFIX) and entry.status == 200:
        return Answer(status=200, content_type="image/png", body=b"")
    images: tuple[str, ...] = ()
    if entry.path == GENERATION_PATH and entry.status == 200:
        try:  # the whole URLs (the entry's summary shortens long strings); a cut body has none
            kept = json.loads(entry.raw_response)
        except ValueError:
            kept = None
        listed = kept.get("images") if isinstance(kept, dict) else None
        if isinstance(listed, list):
            images = tuple(str(i["url"]) for i in listed if isinstance(i, dict) and isinstance(i.get("url"), str))
    return Answer(status=entry.status, content_type="", body=entry.raw_response, images=images)


def _thumbnail_path(url: str) -> str:
    name = url.split("?", 1)[0].rsplit("/", 1)[-1]
    return f"{CONTROL_PREFIX}/ui/thumbnail/{name}"


def _session(request: Request) -> SessionState:
    session: SessionState = request.state.session
    return session
