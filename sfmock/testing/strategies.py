"""Hypothesis strategies derived from the contract: requests, broken requests,
responses, and schedules of server behaviour.

Everything is read from the contract when a strategy is built: adding a field, a range
or a model there changes what is generated, with no Python to touch.

- :func:`generation_requests`: valid requests, for any model or one.
- :func:`invalid_generation_requests`: ``(request, rule)`` pairs that break exactly one
  rule each, each confirmed invalid by the validator.
- :func:`responses`: ``(status, body)`` pairs the contract allows for generation.
- :func:`schedules`: lists of outcomes (:data:`OUTCOMES`) that shrink toward all-success.
- :func:`drawn_outcomes`: the outcomes a check draws by default, those the fake as
  configured can give; :func:`first_schedules`: the schedules a check tries before searching.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

from hypothesis import strategies as st

from sfmock.contract.fromschema import from_schema
from sfmock.contract.openapi import Contract, load_contract
from sfmock.contract.validation import RequestValidator
from sfmock.testing.live_checks import LIVE_CONDITIONAL, LIVE_OUTCOMES, LIVE_PERMANENT, LIVE_TRANSIENT
from sfmock.wording import unknown as unknown_name

if TYPE_CHECKING:
    from sfmock.config import Settings

__all__ = [
    "DOWNLOAD_FAULTS",
    "OUTCOMES",
    "PERMANENT",
    "SUCCESS",
    "TRANSIENT",
    "drawn_outcomes",
    "generation_requests",
    "invalid_generation_requests",
    "responses",
    "schedules",
]

# schedule outcome -> the fault action that produces it; simplest first, for shrinking
OUTCOMES: Final[Mapping[str, Any]] = {
    "ok": "pass",
    "503": {"error": 503},
    "429": {"error": {"status": 429, "limit": "IPM"}},
    "504": {"error": 504},
    "500": {"error": 500},
    "502": {"error": 502},
    "429-retry-after": {"error": {"status": 429, "limit": "IPM", "retry_after": 3}},
    "503-retry-after": {"error": {"status": 503, "retry_after": 5}},
    "timeout": {"hang": 3600},
    "dropped": {"drop": True},
    "truncated": {"truncate": 0.5},
    "malformed": {"malformed": True},
    "slow": {"slow_body": {"chunk": 256, "interval": 0.5}},
    "latency": {"delay": 20},
    "expired-url": {"expired_url": True},
    "extra-fields": {"extra_fields": True},
    "documented-body": {"documented_body": True},
    "400": {"error": 400},
    "401": {"error": 401},
    "402": {"error": 402},
    "403": {"error": 403},
    "404": {"error": 404},
    "413": {"error": 413},
    # the generation succeeds; the download of its image meets the fault
    "download-403": {"error": 403},
    "download-404": {"error": 404},
    "download-503": {"error": 503},
    "download-expired": {"expired_url": True},
    "download-cut": {"truncate": 0.5},
    "download-slow": {"slow_body": {"chunk": 4096, "interval": 1.0}},
    # an object store that stalls: no answer until the client's own timeout ends the download
    "download-timeout": {"hang": 3600},
    # the live service's wording (dialect: observed) and the balance answers seen in 2026
    "429-observed": {"error": {"status": 429, "limit": "IPM"}, "dialect": "observed"},
    "403-balance": {"error": {"status": 403, "code": 30001}},
    "402-balance": {"error": 402},
    # the live service's other 400 and 429 bodies (issue 24), drawn where the fake sends them
    **LIVE_OUTCOMES,
}
TRANSIENT: Final = frozenset(
    {
        "429",
        "429-retry-after",
        "429-observed",
        "500",
        "502",
        "503",
        "503-retry-after",
        "504",
        "timeout",
        "dropped",
        "truncated",
    }
    | LIVE_TRANSIENT
)
PERMANENT: Final = frozenset({"400", "401", "402", "403", "404", "413", "403-balance", "402-balance"}) | LIVE_PERMANENT
SUCCESS: Final = frozenset({"ok", "slow", "latency", "extra-fields", "documented-body"})
DOWNLOAD_FAULTS: Final = frozenset(name for name in OUTCOMES if name.startswith("download-"))
# Outcomes the fake gives only under some settings, with the setting that makes it give them.
# A default check does not draw them: the real service sends no Retry-After, and a client is
# not to be judged on an answer its service never gives. Named in ``outcomes``, they run.
CONDITIONAL: Final[Mapping[str, tuple[str, Callable[[Settings], bool]]]] = {
    "429-retry-after": ("rate_limit_headers: true", lambda s: s.rate_limit_headers),
    "503-retry-after": ("rate_limit_headers: true", lambda s: s.rate_limit_headers),
    "429-observed": ("dialect: observed", lambda s: s.dialect == "observed"),
    **LIVE_CONDITIONAL,
}


def drawn_outcomes(settings: Settings | None = None) -> list[str]:
    """The outcomes a check draws when not told which: every one of :data:`OUTCOMES` the fake,
    as ``settings`` configure it (the defaults if ``None``), can give (:data:`CONDITIONAL`)."""
    if settings is None:
        from sfmock.config import Settings

        settings = Settings()
    return [name for name in OUTCOMES if name not in CONDITIONAL or CONDITIONAL[name][1](settings)]


def first_schedules(outcomes: Sequence[str], max_attempts: int) -> list[list[str]]:
    """What a check tries before its random search, so no verdict depends on luck: every
    answer a success, each outcome alone, and a run of transient failures longer than
    ``max_attempts``."""
    cases: list[list[str]] = [[], *([name] for name in outcomes if name != "ok")]
    transient = [name for name in outcomes if name in TRANSIENT]
    if transient:
        cases.append([transient[0]] * (max_attempts + 1))
    return cases


def schedules(
    outcomes: Sequence[str] | None = None, *, max_size: int = 6, max_attempts: int | None = None
) -> st.SearchStrategy[list[str]]:
    """Sequences of outcomes for successive generation requests; after the list, all succeed.

    With ``max_attempts``, runs of transient failures longer than that are drawn often
    too, so a client that never gives up is found every time, not by chance.
    """
    names = list(outcomes) if outcomes is not None else list(OUTCOMES)
    unknown = [name for name in names if name not in OUTCOMES]
    if unknown:
        raise ValueError(unknown_name("outcome", unknown[0], OUTCOMES))
    mixed = st.lists(st.sampled_from(names), max_size=max_size)
    transient = [name for name in names if name in TRANSIENT]
    if max_attempts is None or not transient:
        return mixed
    long_runs = st.lists(st.sampled_from(transient), min_size=max_attempts, max_size=max_attempts + 2)
    return st.one_of(mixed, long_runs)


def _model_schema(contract: Contract, model: str, strict: bool) -> dict[str, Any]:
    """The request schema of one model, flattened: base fields under the model's rules."""
    base = contract.request_fields
    rules: dict[str, Any] = contract.resolve(contract.model_rules(model))
    properties = copy.deepcopy(base["properties"])
    required = set(base.get("required", ())) | set(rules.get("required", ()))
    layers = [rules] + ([rules.get("x-sfmock-strict", {})] if strict else [])
    for layer in layers:
        for name, extra in layer.get("properties", {}).items():
            properties[name] = {**contract.flatten(properties.get(name, {})), **extra}
        if layer is not rules:
            required |= set(layer.get("required", ()))
    if strict:
        for name in rules.get("x-sfmock-ignored", ()):
            properties.pop(name, None)
    properties["model"] = {"const": model}
    return {
        "type": "object",
        "properties": properties,
        "required": sorted(required),
        "x-sfmock-ignored": list(rules.get("x-sfmock-ignored", ())),
    }


def generation_requests(model: str | None = None, *, strict: bool = False) -> st.SearchStrategy[dict[str, Any]]:
    """Valid generation requests (under strict rules if ``strict``), for ``model`` or any."""
    contract = load_contract()
    models = [model] if model is not None else list(contract.models)
    for name in models:
        if name not in contract.models:
            raise ValueError(f"unknown model {name!r}")
    by_model = {name: from_schema(_model_schema(contract, name, strict), contract) for name in models}
    return st.sampled_from(models).flatmap(lambda name: by_model[name])


def _mutations(schema: dict[str, Any], contract: Contract, strict: bool) -> list[tuple[str, str, Any]]:
    """(field, rule, value-or-REMOVE) changes that each break one rule of ``schema``."""
    found: list[tuple[str, str, Any]] = []
    for name in schema["required"]:
        if name != "model":
            found.append((name, "required", _REMOVE))
    for name, prop in schema["properties"].items():
        if name == "model":
            continue
        prop = contract.flatten(prop)
        kind = prop.get("type")
        if kind in ("integer", "number"):
            found.append((name, "type", "12"))
            if "minimum" in prop:
                found.append((name, "minimum", prop["minimum"] - 1))
            if "maximum" in prop:
                found.append((name, "maximum", prop["maximum"] + 1))
        if kind == "string":
            found.append((name, "type", 12))
            if prop.get("minLength", 0) >= 1:
                found.append((name, "minLength", ""))
            if "pattern" in prop:
                found.append((name, "pattern", "ftp://not/matching x"))
            if "x-sfmock-max-pixels" in prop:
                found.append((name, "x-sfmock-max-pixels", "9999x9999"))
            if prop.get("x-sfmock-image-ref"):
                found.append((name, "x-sfmock-image-ref", "data:image/png;base64,@@@@"))
        if "enum" in prop:
            found.append((name, "enum", "17x17" if name == "image_size" else "not-in-enum"))
    if strict:
        for name in schema["x-sfmock-ignored"]:
            found.append((name, "x-sfmock-ignored", _IGNORED_VALUE.get(name, 1)))
    return found


_REMOVE = object()
_IGNORED_VALUE = {
    "image_size": "1024x1024",
    "image": "https://a.example/x.png",
    "image2": "https://a.example/x.png",
    "image3": "https://a.example/x.png",
    "cfg": 4.0,
    "guidance_scale": 7.5,
    "batch_size": 2,
}


def invalid_generation_requests(
    model: str | None = None, *, strict: bool = False
) -> st.SearchStrategy[tuple[dict[str, Any], str]]:
    """``(request, "field: rule")`` pairs; each request breaks exactly that one rule."""
    contract = load_contract()
    validator = RequestValidator(contract)
    models = [model] if model is not None else list(contract.models)
    plans = {}
    for name in models:
        schema = _model_schema(contract, name, strict)
        plans[name] = (from_schema(schema, contract), _mutations(schema, contract, strict))

    @st.composite
    def broken(draw: st.DrawFn) -> tuple[dict[str, Any], str]:
        name = draw(st.sampled_from(models))
        valid, mutations = plans[name]
        request = dict(draw(valid))
        field, rule, value = draw(st.sampled_from(mutations))
        if value is _REMOVE:
            request.pop(field, None)
        else:
            request[field] = value
        return request, f"{field}: {rule}"

    def breaks_exactly(pair: tuple[dict[str, Any], str]) -> bool:
        request, label = pair
        field, rule = label.split(": ")
        errors = validator.errors(request, strict=strict)
        where = {(".".join(map(str, e.absolute_path)) or field, str(e.validator)) for e in errors}
        return bool(errors) and where == {(field, rule)}

    return broken().filter(breaks_exactly)


def responses(status: int | None = None) -> st.SearchStrategy[tuple[int, Any]]:
    """``(status, body)`` the contract allows for ``POST /v1/images/generations``."""
    contract = load_contract()
    documented = contract.document["paths"]["/v1/images/generations"]["post"]["responses"]
    chosen = [code for code in documented if status is None or code == str(status)]
    if not chosen:
        raise ValueError(f"status {status} is not documented for generation")
    options = []
    for code in chosen:
        response = contract.flatten(documented[code])
        schema = response["content"]["application/json"]["schema"]
        options.append(st.tuples(st.just(int(code)), from_schema(schema, contract)))
    return st.one_of(options)
