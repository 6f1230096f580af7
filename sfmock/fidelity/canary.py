"""``sfmock drift --against URL``: a small fixed set of real calls, checked for drift.

The plan: one generation per model family the contract lists (its first text-to-image
model, a small size, a fixed seed), one bad request per documented 4xx that can be
provoked without harm (400 unknown model, 401 bad key, 404 unknown path), the two free
reads (``/v1/models``, ``/v1/user/info``), and one download of an image URL the
service itself returned. Nothing else is called. The generations cost real money, so
the command prints the plan and its price first and goes ahead only when told to.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import httpx

from sfmock.contract.openapi import Contract
from sfmock.fidelity.recording import GENERATION_PATH, Exchange, Message
from sfmock.wording import plural

__all__ = ["Call", "describe", "plan", "run_plan"]

BAD_KEY = "sk-sfmock-canary-invalid-key"
NOT_PROVOKED = {
    402: "needs an account without balance",
    403: "needs a disabled key or a model the account may not use",
    405: "sfmock-only answer",
    413: "sfmock-only limit",
    429: "would mean exhausting a real rate limit",
}


@dataclass(frozen=True, kw_only=True)
class Call:
    """One planned call: what it is for, and what it costs (CNY, the contract's guess)."""

    method: str
    path: str
    purpose: str
    body: dict[str, Any] | None = None
    key: str = "real"  # "real": the caller's key; "bad": an invalid one
    cost: Decimal = Decimal(0)


def plan(contract: Contract) -> list[Call]:
    """The fixed set of calls, derived from the contract's models."""
    calls: list[Call] = []
    families: set[str] = set()
    for spec in contract.models.values():
        family = spec.id.split("/")[0]
        if spec.sub_type != "text-to-image" or family in families:
            continue
        families.add(family)
        body: dict[str, Any] = {"model": spec.id, "prompt": "a red circle on a white background", "seed": 1}
        if spec.sizes:
            body["image_size"] = min(spec.sizes, key=_pixels)
        calls.append(
            Call(method="POST", path=GENERATION_PATH, purpose=f"generate ({family})", body=body, cost=spec.price)
        )
    unknown = {"model": "sfmock/no-such-model", "prompt": "x"}
    calls += [
        Call(method="POST", path=GENERATION_PATH, purpose="400 unknown model", body=unknown),
        Call(method="POST", path=GENERATION_PATH, purpose="401 invalid key", body=unknown, key="bad"),
        Call(method="GET", path="/v1/sfmock-no-such-path", purpose="404 unknown path"),
        Call(method="GET", path="/v1/models", purpose="model list (free)"),
        Call(method="GET", path="/v1/user/info", purpose="account (free)"),
    ]
    return calls


def describe(calls: list[Call], origin: str) -> str:
    """What the canary will call, what it skips, and the cost warning."""
    total = sum((c.cost for c in calls), Decimal(0))
    lines = [f"sfmock drift --against {origin} will make these calls:"]
    for call in calls:
        price = f"  ~{call.cost} CNY" if call.cost else ""
        lines.append(f"  {call.method} {origin}{call.path}  [{call.purpose}]{price}")
    lines.append("  GET <the first image URL the service returns>, without the key  [one download]")
    skipped = ", ".join(f"{status} ({why})" for status, why in NOT_PROVOKED.items())
    lines.append(f"not provoked: {skipped}")
    paid = plural(sum(1 for c in calls if c.cost), "image generation")
    lines.append(
        f"WARNING: this costs real money: {paid} on your account, "
        f"about {total} CNY at the contract's guessed prices (your real prices may differ)."
    )
    return "\n".join(lines)


def run_plan(
    calls: list[Call], origin: str, key: str, *, transport: httpx.BaseTransport | None = None, timeout: float = 180
) -> list[Exchange]:
    """Make the calls against ``origin`` (and the one download), return the exchanges."""
    exchanges: list[Exchange] = []
    download: str | None = None
    with httpx.Client(transport=transport, timeout=timeout, follow_redirects=False) as client:
        for call in calls:
            token = key if call.key == "real" else BAD_KEY
            headers = {"Authorization": f"Bearer {token}"}
            answer = client.request(call.method, origin + call.path, json=call.body, headers=headers)
            exchanges.append(_exchange(answer, call.body is not None))
            if download is None and call.cost and answer.status_code == 200:
                download = _first_url(answer)
        if download is not None:
            exchanges.append(_exchange(client.get(download), False))
    return exchanges


def _exchange(answer: httpx.Response, has_body: bool) -> Exchange:
    request = answer.request
    url = str(request.url)
    return Exchange(
        method=request.method,
        path=urlsplit(url).path,
        query=urlsplit(url).query,
        request=Message(headers=dict(request.headers), body=request.content if has_body else b""),
        status=answer.status_code,
        response=Message(headers={k.lower(): v for k, v in answer.headers.items()}, body=answer.content),
        url=url,
    )


def _first_url(answer: httpx.Response) -> str | None:
    try:
        url = answer.json()["images"][0]["url"]
    except (ValueError, KeyError, IndexError, TypeError):
        return None
    return url if isinstance(url, str) and url.startswith(("https://", "http://")) else None


def _pixels(size: str) -> int:
    width, _, height = size.partition("x")
    return int(width) * int(height)
