"""The per-request ``X-Sfmock-Fault`` header: ``ITEM(;ITEM)*``, read into the same
:class:`~sfmock.chaos.faults.Action` a scenario's rule gives, and checked by the same schema."""

from __future__ import annotations

import math
from typing import Any

from sfmock.chaos.faults import Action, checked_action
from sfmock.contract.schemas import check
from sfmock.errors import ConfigError
from sfmock.wording import did_you_mean

__all__ = ["FAULT_ITEMS", "parse_fault_header"]


def parse_fault_header(value: str) -> Action:
    """The ``X-Sfmock-Fault`` header: ``ITEM(;ITEM)*`` with ``ITEM = NAME[=VALUE]``.

    Names: a bare status (``503``), ``error=S``, ``code=N``, ``message=TEXT``, ``limit=IPM``,
    ``delay=S`` or ``delay=LOW..HIGH``, ``hang[=S]``, ``drop``, ``truncate[=F]``,
    ``malformed``, ``slow-body[=INTERVAL]``, ``chunk=N``, ``expired-url``, ``extra-fields``,
    ``documented-body``, ``retry-after=S`` (with an error), ``dialect=documented|observed|plain``,
    ``retire=MODEL``, ``pass``.
    Raises ``ValueError`` naming the problem. A value whose bytes are UTF-8 (as curl, fetch
    and requests send a non-ASCII header) is read as UTF-8, though ASGI hands headers over
    as Latin-1: ``message=héllo`` answers "héllo".
    """
    try:
        value = value.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        pass  # Latin-1 it is (or text never sent as bytes)
    action: dict[str, Any] = {}
    error: dict[str, Any] = {}
    seen: dict[str, str] = {}
    for raw in value.split(";"):
        item = raw.strip()
        if not item:
            continue
        name, has_value, text = (part.strip() for part in item.partition("="))
        kind = "error" if name.isdigit() and not has_value else name.lower().replace("_", "-")
        if kind in seen:  # "error=503;error=504" is a mistake, not "the last one wins"
            raise ValueError(f"{item!r} repeats {seen[kind]!r}: give each item once")
        seen[kind] = item
        try:
            known = _fault_item(name.lower().replace("_", "-"), bool(has_value), text, action, error)
        except ValueError:
            raise ValueError(f"bad value in {item!r}") from None
        if not known:
            raise ValueError(_unknown_item(item, name))
        delay = action.get("delay") if kind == "delay" else None
        if isinstance(delay, dict) and delay["uniform"][0] > delay["uniform"][1]:
            raise ValueError(f"{item!r} runs backwards; expected delay=LOW..HIGH, LOW at most HIGH: 'delay=1..5'")
    faults = [item for kind, item in seen.items() if kind not in ("pass", "retire")]  # retire= is not a fault
    if "pass" in seen and faults:
        other = faults[0]
        raise ValueError(f"'pass' (no fault: the request goes through) cannot go with {other!r}; give one or the other")
    if not seen:  # empty items between semicolons are let pass, but some item must be there
        raise ValueError(f"no item in {value!r}; expected ITEM(;ITEM)*, e.g. '503', 'drop' or 'pass'")
    if error:
        if "status" not in error:
            raise ValueError("code, message, limit and retry-after need a status (e.g. 'error=429;limit=IPM')")
        action["error"] = error
    try:
        check("scenario", action, "X-Sfmock-Fault", definition="action")
        return checked_action(Action.from_config(action), "X-Sfmock-Fault", None)
    except ConfigError as exc:
        raise ValueError(f"{exc.key}: {exc.expected}") from None


# the header's item names, as the messages show them (a bare status is "503")
FAULT_ITEMS = (
    "error", "code", "message", "limit", "retry-after", "delay", "hang", "drop", "truncate", "malformed",
    "slow-body", "chunk", "expired-url", "extra-fields", "documented-body", "dialect", "retire", "pass",
)  # fmt: skip


def _unknown_item(item: str, name: str) -> str:
    """An unknown item named, with the close item names (or all of them)."""
    hint = did_you_mean(name.lower().replace("_", "-"), FAULT_ITEMS)
    listed = "a status (503) or one of " + ", ".join(FAULT_ITEMS)
    return f"unknown item {item!r}; " + (f"{hint} (items: {listed})" if hint else f"expected {listed}")


def _number(text: str) -> float:
    """A finite number (``nan``, ``inf`` and ``1e400`` are ``ValueError``)."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is not a finite number")
    return value


def _fault_item(name: str, has_value: bool, text: str, action: dict[str, Any], error: dict[str, Any]) -> bool:
    """Apply one header item to ``action``/``error``; ``False`` if the name is unknown."""
    if name.isdigit() and not has_value:
        error["status"] = int(name)
    elif name == "error":
        error["status"] = int(text)
    elif name == "code":
        error["code"] = int(text)
    elif name in ("message", "limit"):
        error[name] = text
    elif name == "retry-after":
        error["retry_after"] = int(text)
    elif name == "delay":
        low, dots, high = text.partition("..")
        action["delay"] = {"uniform": [_number(low), _number(high)]} if dots else _number(low)
    elif name == "hang":
        action["hang"] = _number(text) if has_value else 300.0
    elif name == "truncate":
        action["truncate"] = _number(text) if has_value else 0.5
    elif name == "slow-body":
        action.setdefault("slow_body", {})["interval"] = _number(text) if has_value else 0.2
    elif name == "chunk":
        action.setdefault("slow_body", {"interval": 0.2})["chunk"] = int(text)
    elif name == "dialect" and has_value:
        action["dialect"] = text
    elif name == "retire" and has_value:
        action.setdefault("retire", []).append(text)
    elif name in ("drop", "malformed", "expired-url", "extra-fields", "documented-body") and not has_value:
        action[name.replace("-", "_")] = True
    else:
        return name == "pass" and not has_value
    return True
