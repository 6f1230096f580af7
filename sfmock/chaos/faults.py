"""Fault rules: which request misbehaves, and how. Pure: no HTTP, no sleeping.

A :class:`Scenario` is a list of :class:`Rule`; each matches requests (path glob,
method, model, key, account, headers), may be limited to the n-th match, a number of
times or a probability, and gives an :class:`Action` (or a sequence of them). The
:class:`FaultEngine` picks the fault for a request using one seeded generator, so the
same seed and the same requests give the same faults. The per-request ``X-Sfmock-Fault``
header becomes the same :class:`Action` in :mod:`sfmock.chaos.fault_header`.
"""

from __future__ import annotations

import functools
import math
import random
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from sfmock.contract.openapi import load_contract
from sfmock.contract.schemas import check, schema
from sfmock.documents import DocumentError, load_document, read_file
from sfmock.errors import ConfigError
from sfmock.globs import glob_matches
from sfmock.state.memory import MemoryFaults
from sfmock.state.store import Faults
from sfmock.wording import did_you_mean, unknown

__all__ = ["Action", "Fault", "FaultEngine", "RequestInfo", "Rule", "Scenario", "checked_action"]

FAULT_HEADER = "x-sfmock-fault"


@dataclass(frozen=True, kw_only=True)
class Seconds:
    """A duration: fixed, uniform between two bounds, or log-normal around a median."""

    kind: str
    low: float
    high: float = 0.0

    @classmethod
    def from_config(cls, value: Any) -> Seconds:
        if isinstance(value, int | float):
            return cls(kind="fixed", low=float(value))
        if "uniform" in value:
            low, high = sorted(value["uniform"])
            return cls(kind="uniform", low=float(low), high=float(high))
        spec = value["lognormal"]
        return cls(kind="lognormal", low=float(spec["median"]), high=float(spec["sigma"]))

    def draw(self, rng: random.Random) -> float:
        """One duration in seconds (capped at an hour)."""
        if self.kind == "fixed":
            return self.low
        if self.kind == "uniform":
            return rng.uniform(self.low, self.high)
        return min(3600.0, rng.lognormvariate(math.log(self.low), self.high))


@dataclass(frozen=True, kw_only=True)
class Action:
    """What a fault does. Keys combine: ``delay`` then ``error``, for instance."""

    error: Mapping[str, Any] | None = None  # {"status": 503, "code"?, "message"?, "limit"?, "body"?}
    delay: Seconds | None = None
    hang: float | None = None
    drop: bool = False
    truncate: float | None = None
    malformed: bool = False
    slow_body: tuple[int, float] | None = None  # (chunk bytes, interval seconds)
    expired_url: bool = False
    extra_fields: bool = False
    documented_body: bool = False
    dialect: str | None = None  # word this answer's errors as "documented", "observed" or "plain"
    retire: tuple[str, ...] = ()  # retire these models now, then answer

    @classmethod
    def from_config(cls, value: Mapping[str, Any] | str) -> Action:
        """From a (schema-checked) action mapping, or ``"pass"``."""
        if value == "pass" or not isinstance(value, Mapping):
            return cls()
        error = value.get("error")
        slow = value.get("slow_body")
        return cls(
            error={"status": error} if isinstance(error, int) else error,
            delay=Seconds.from_config(value["delay"]) if "delay" in value else None,
            hang=value.get("hang"),
            drop=bool(value.get("drop")),
            truncate=value.get("truncate"),
            malformed=bool(value.get("malformed")),
            slow_body=(int(slow.get("chunk", 64)), float(slow["interval"])) if slow else None,
            expired_url=bool(value.get("expired_url")),
            extra_fields=bool(value.get("extra_fields")),
            documented_body=bool(value.get("documented_body")),
            dialect=value.get("dialect"),
            retire=_models(value.get("retire")),
        )

    @property
    def is_pass(self) -> bool:
        """True when the action changes nothing."""
        return self == Action()

    def describe(self, delay: float | None = None) -> str:
        """A short text for the journal: ``delay=0.73 error=503``."""
        parts = []
        if self.delay is not None:
            parts.append(f"delay={delay if delay is not None else self.delay.low:.3f}")
        if self.error is not None:
            parts.append(f"error={self.error['status']}")
        for name in ("hang", "truncate"):
            if getattr(self, name) is not None:
                parts.append(f"{name}={getattr(self, name)}")
        flags = ("drop", "malformed", "expired_url", "extra_fields", "documented_body")
        parts += [name for name in flags if getattr(self, name)]
        if self.slow_body:
            parts.append(f"slow_body={self.slow_body[1]}")
        if self.dialect:
            parts.append(f"dialect={self.dialect}")
        parts += [f"retire={model}" for model in self.retire]
        return " ".join(parts) or "pass"


@dataclass(frozen=True, kw_only=True)
class RequestInfo:
    """What a rule can match on."""

    method: str
    path: str
    headers: Mapping[str, str]  # lower-case names
    key: str | None = None
    account: str | None = None
    model: str | None = None
    elapsed: float = 0.0  # server seconds since the start (or the last reset)
    aliases: tuple[str, ...] = ()  # other paths it answers as (the old route: the generation route)


@dataclass(frozen=True, kw_only=True)
class Rule:
    """One fault rule of a scenario."""

    name: str
    when: Mapping[str, Any] = field(default_factory=dict)
    nth: frozenset[int] | None = None
    probability: float = 1.0
    times: int | None = None
    steps: tuple[Action, ...] = ()
    sequence: bool = False
    repeat: bool = False

    def matches(self, info: RequestInfo) -> bool:
        when = self.when
        if "path" in when and not any(glob_matches(p, when["path"]) for p in (info.path, *info.aliases)):
            return False
        if "method" in when and info.method.upper() != when["method"].upper():
            return False
        for name in ("model", "key", "account"):
            if name in when and getattr(info, name) != when[name]:
                return False
        if "after" in when and info.elapsed < when["after"]:
            return False
        return all(info.headers.get(k.lower()) == v for k, v in when.get("header", {}).items())

    def step(self, n: int) -> Action:
        """The action for the n-th matching request (1-based)."""
        if not self.sequence:
            return self.steps[0]
        if self.repeat:
            return self.steps[(n - 1) % len(self.steps)]
        return self.steps[n - 1] if n <= len(self.steps) else Action()


@dataclass(frozen=True, kw_only=True)
class Scenario:
    """A named list of rules, as loaded from a scenario file or the control API."""

    name: str = "none"
    description: str = ""
    rules: tuple[Rule, ...] = ()
    source: Mapping[str, Any] = field(default_factory=dict)  # the document it came from

    @property
    def needs(self) -> frozenset[str]:
        """Which request facts the rules match on (the caller computes only those)."""
        return frozenset(k for rule in self.rules for k in rule.when)

    @classmethod
    def from_document(cls, document: Any, source: str) -> Scenario:
        """A checked scenario; errors name ``source``, the key and the expectation."""
        if not isinstance(document, Mapping):
            raise ConfigError(source, "(top level)", "expected a mapping with 'rules'")
        settings = set(document) - set(schema("scenario")["properties"])
        if "rules" not in document and settings and settings <= set(schema("config")["properties"]):
            message = "is a config file (it has no 'rules'), not a scenario file; pass it with --config FILE"
            raise ConfigError(source, "(top level)", message)
        check("scenario", document, source)
        rules = []
        for index, entry in enumerate(document.get("rules", [])):
            nth = entry.get("nth")
            steps = entry["sequence"] if "sequence" in entry else [entry["action"]]
            rules.append(
                Rule(
                    name=entry.get("name", f"rule-{index + 1}"),
                    when=entry.get("when", {}),
                    nth=None if nth is None else frozenset([nth] if isinstance(nth, int) else nth),
                    probability=float(entry.get("probability", 1.0)),
                    times=entry.get("times"),
                    steps=tuple(checked_action(Action.from_config(step), source, index) for step in steps),
                    sequence="sequence" in entry,
                    repeat=bool(entry.get("repeat", False)),
                )
            )
        return cls(
            name=document.get("name", Path(source).stem if source.endswith((".yaml", ".yml", ".json")) else "custom"),
            description=document.get("description", ""),
            rules=tuple(rules),
            source=dict(document),
        )

    @staticmethod
    def shipped() -> list[str]:
        """The names of the scenarios shipped with sfmock, sorted."""
        shipped = resources.files("sfmock").joinpath("scenarios")
        return sorted(p.name.removesuffix(".yaml") for p in shipped.iterdir() if p.name.endswith(".yaml"))

    @classmethod
    def named(cls, name: str) -> Scenario:
        """A scenario shipped with sfmock: ``happy``, ``flaky``, ``overloaded``, ``rate-limited``,
        ``slow``, ``expiring-urls``, ``broken-connections``, ``retiring-models``."""
        shipped = resources.files("sfmock").joinpath("scenarios")
        names = Scenario.shipped()
        if name not in names:
            hint = did_you_mean(name, names)
            expected = f"no such shipped scenario; {hint + ' ' if hint else ''}expected one of {', '.join(names)}"
            raise ConfigError("scenario", name, expected)
        document = load_document(shipped.joinpath(f"{name}.yaml").read_text("utf-8"))
        return cls.from_document(document, f"{name}.yaml")

    @classmethod
    def find(cls, name_or_path: str | Path) -> Scenario:
        """A shipped scenario by name (``flaky``), or a scenario file by path."""
        if isinstance(name_or_path, Path) or looks_like_path(name_or_path):
            return cls.load(name_or_path)
        return cls.named(name_or_path)

    @classmethod
    def load(cls, path: str | Path) -> Scenario:
        """A scenario from a YAML (or JSON) file."""
        source = str(path)
        try:
            document = load_document(read_file(path))
        except DocumentError as exc:
            raise exc.as_config_error(source) from None
        return cls.from_document(document if document is not None else {}, source)


def checked_action(action: Action, source: str, index: int | None) -> Action:
    """``action``, once the models it retires are known to the contract."""
    if not action.retire:
        return action
    known = load_contract().models
    for model in action.retire:
        if model not in known:
            expected = unknown("model", model, sorted(known))
            raise ConfigError(source, "retire" if index is None else f"rules[{index}].retire", expected)
    return action


def _models(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    return (value,) if isinstance(value, str) else tuple(value)


def looks_like_path(text: str) -> bool:
    """Whether a scenario reference is a file path rather than a shipped name."""
    return "/" in text or text.endswith((".yaml", ".yml", ".json"))


@dataclass(frozen=True, kw_only=True)
class Fault:
    """The fault chosen for one request, with its random draws made."""

    rule: str
    action: Action
    delay: float | None = None

    def describe(self) -> str:
        return f"{self.rule}: {self.action.describe(self.delay)}"


class FaultEngine:
    """Chooses faults for requests; thread-safe; all randomness from one seeded generator.

    The scenario and its counters (``nth``, ``times``, sequences) live in a
    :class:`~sfmock.state.store.Faults` slot: this process's memory by default, or a
    shared store, where every process counts the same matches.
    """

    def __init__(
        self, scenario: Scenario | None = None, *, seed: int | None = None, faults: Faults[Scenario] | None = None
    ) -> None:
        self._seed = seed
        self._lock = threading.Lock()
        self._rng = random.Random(None if seed is None else f"{seed}:faults")
        if faults is None:
            self._faults: Faults[Scenario] = MemoryFaults(scenario or Scenario())
        else:
            self._faults = faults

    @property
    def scenario(self) -> Scenario:
        return self._faults.current()[1]

    def replace(self, scenario: Scenario) -> None:
        """Install ``scenario``; counters and the generator start over."""
        with self._lock:
            self._faults.replace(scenario)
            self._rng = random.Random(None if self._seed is None else f"{self._seed}:faults")

    def select(
        self, info: RequestInfo | Callable[[Scenario], RequestInfo], forced: Action | None = None
    ) -> Fault | None:
        """The fault for this request: ``forced`` (from the header) first, then the rules.

        ``info`` may be a function of the scenario (it names the facts its rules need),
        so the scenario is read once per request.
        """
        with self._lock:
            if forced is not None:
                return self._concrete("header", forced)
            version, scenario = self._faults.current()
            if not scenario.rules:
                return None
            if callable(info):
                info = info(scenario)
            for index, rule in enumerate(scenario.rules):
                if not rule.matches(info):
                    continue
                chance = _always if rule.probability >= 1 else functools.partial(self._draw, rule.probability)
                n, fires = self._faults.hit(version, index, rule.nth, rule.times, chance)
                if fires:
                    return self._concrete(rule.name, rule.step(n))
            return None

    def _draw(self, probability: float) -> bool:
        return self._rng.random() < probability

    def _concrete(self, name: str, action: Action) -> Fault:
        delay = action.delay.draw(self._rng) if action.delay is not None else None
        return Fault(rule=name, action=action, delay=delay)


def _always() -> bool:
    return True
