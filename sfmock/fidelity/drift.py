"""Drift: where a real exchange and the contract disagree, each at its JSON pointer.

Structure and documented constraints are compared, never values: ids, seeds, times
and URLs differ on every call. A drift is one of

- a status the contract does not document for the route (``/status``);
- a required header missing, or a content type the contract does not list
  (``/headers/<name>``);
- a body that breaks its schema (a changed type, a missing required field, a value out
  of a documented range or enum), at ``/body/<pointer>``;
- a field the contract does not list at all (the service grew one);
- an image URL whose path or expiry parameters are not the contract's
  (``x-sfmock-url`` on the URL's schema names the download operation);
- a request the service accepted although the contract forbids it (``/request/body/...``).

Reports never quote a query string, so a signature cannot leak into one.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from jsonschema import Draft202012Validator, ValidationError

from sfmock.contract.openapi import REQUEST, Contract, load_contract
from sfmock.errors import ContractViolation
from sfmock.fidelity.conformance import OCTET_STREAM, find_response, match_path
from sfmock.fidelity.recording import Exchange, scrub
from sfmock.service.imagehost import IMAGE_PREFIX
from sfmock.wording import plural

__all__ = ["Drift", "check_exchange", "check_exchanges", "format_report"]

_SHOW = 80


@dataclass(frozen=True, kw_only=True)
class Drift:
    """One disagreement: where (method, path, status, JSON pointer), what the contract
    says and what the service sent."""

    method: str
    path: str
    status: int
    pointer: str
    expected: str
    actual: str
    source: str = ""

    def __str__(self) -> str:
        where = f"{self.source}: " if self.source else ""
        return (
            f"{where}{self.method} {self.path} {self.status} {self.pointer}: "
            f"contract: {self.expected}; service: {self.actual}"
        )

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready form, for the control API."""
        return {
            "method": self.method,
            "path": self.path,
            "status": self.status,
            "pointer": self.pointer,
            "expected": self.expected,
            "actual": self.actual,
            "source": self.source,
        }


def check_exchanges(exchanges: Iterable[Exchange], contract: Contract | None = None) -> list[Drift]:
    """The drift of every exchange, in order."""
    contract = contract or load_contract()
    return [drift for exchange in exchanges for drift in check_exchange(exchange, contract)]


def check_exchange(exchange: Exchange, contract: Contract | None = None) -> list[Drift]:
    """Every way ``exchange`` disagrees with the contract (empty: none)."""
    contract = contract or load_contract()
    found = [*_response_drift(contract, exchange)]
    if 200 <= exchange.status < 300:
        found.extend(_request_drift(contract, exchange))
    return [
        Drift(
            method=exchange.method,
            path=exchange.path,
            status=exchange.status,
            pointer=pointer,
            expected=expected,
            actual=actual,
            source=exchange.source,
        )
        for pointer, expected, actual in found
    ]


def format_report(drifts: list[Drift]) -> str:
    """The drift report as text: one line per drift, or a line saying there is none."""
    if not drifts:
        return "no drift: every exchange matches the contract"
    # one cause seen at several pointers (the same URL in `images` and in `data`) is one
    # disagreement, listed once with every place it shows
    causes: dict[Drift, list[str]] = {}
    for drift in drifts:
        at = causes.setdefault(dataclasses.replace(drift, pointer=""), [])
        at.extend([drift.pointer] if drift.pointer not in at else [])
    places = f" (seen {len(drifts)} times)" if len(drifts) != len(causes) else ""
    lines = [f"drift: {plural(len(causes), 'disagreement')} with the contract{places}"]
    lines.extend(f"  {dataclasses.replace(cause, pointer=', '.join(at))}" for cause, at in causes.items())
    return "\n".join(lines)


_Found = tuple[str, str, str]  # pointer, expected, actual


def _response_drift(contract: Contract, exchange: Exchange) -> Iterator[_Found]:
    method, path, status = exchange.method, exchange.path, exchange.status
    try:
        pointer, response = find_response(contract, method, path, status, _prefix_of(path))
    except ContractViolation as exc:
        yield "/status", "a status documented for this route", f"{status} ({exc})"
        return
    headers = exchange.response.headers
    for name, header in response.get("headers", {}).items():
        if contract.flatten(header).get("required") and not headers.get(name.lower()):
            yield f"/headers/{_escape(name.lower())}", "required header", "absent"
    content = response.get("content")
    if not content or method == "HEAD":
        return
    media_type = headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type not in content:
        yield "/headers/content-type", f"one of {sorted(content)}", repr(media_type or "(none)")
        return
    schema_pointer = f"{pointer}/content/{_escape(media_type)}/schema"
    instance, problem = _parse(contract, media_type, schema_pointer, exchange.response.body)
    if problem is not None:
        yield "/body", f"a {media_type} body", problem
        return
    if instance is None:
        return
    for error in contract.validator(schema_pointer).iter_errors(instance):
        yield _from_error(error, "/body")
    yield from _walk(contract, contract.resolve(schema_pointer), instance, "/body")


def _request_drift(contract: Contract, exchange: Exchange) -> Iterator[_Found]:
    template = match_path(contract, exchange.path)
    operation = contract.document["paths"].get(template or "", {}).get(exchange.method.lower(), {})
    if "requestBody" not in operation or not exchange.request.body:
        return
    try:
        body = exchange.request.json()
    except ValueError:
        return
    # the operation's own request schema (the old route's body has no model); a generation's is REQUEST
    schema = operation["requestBody"].get("content", {}).get("application/json", {}).get("schema", {})
    pointer = schema.get("$ref", REQUEST) if isinstance(schema, dict) else REQUEST
    for error in contract.validator(pointer).iter_errors(body):
        pointer, expected, actual = _from_error(error, "/request/body")
        yield pointer, f"the service accepted this request; the contract requires {expected}", actual


def _parse(contract: Contract, media_type: str, pointer: str, body: bytes) -> tuple[Any, str | None]:
    if media_type.endswith("json"):
        try:
            return json.loads(body), None
        except ValueError:
            return None, _show(body.decode("utf-8", "replace"))
    if media_type.endswith("xml"):
        from sfmock.fidelity.conformance import _xml_elements

        try:
            return _xml_elements(contract.flatten(contract.resolve(pointer)), body, ""), None
        except ContractViolation as exc:
            return None, str(exc).lstrip(": ")
    if media_type.startswith("image/") or media_type == OCTET_STREAM:  # the live store's PNG [seen 2026]
        from sfmock.fidelity.conformance import _check_image

        try:
            _check_image(media_type, body, "")
        except ContractViolation as exc:
            return None, str(exc).lstrip(": ")
        return None, None
    return body.decode("utf-8", "replace"), None


def _from_error(error: ValidationError, prefix: str) -> _Found:
    pointer = prefix + "".join(f"/{_escape(str(part))}" for part in error.absolute_path)
    rule: Any = error.validator_value
    instance: Any = error.instance
    if error.validator == "required" and isinstance(instance, dict):
        missing = next((name for name in rule if name not in instance), "")
        return f"{pointer}/{_escape(missing)}", "a required field", "absent"
    expected = f"{error.validator}: {_show(rule)}"
    if error.validator in ("oneOf", "anyOf"):
        expected = f"{error.validator} of {len(rule)} schemas"
    return pointer, expected, _show(instance)


def _walk(contract: Contract, schema: Any, instance: Any, pointer: str) -> Iterator[_Found]:
    """Fields the contract does not list, and image URLs of the wrong shape."""
    schemas = _applicable(contract, schema, instance)
    if isinstance(instance, str):
        for item in schemas:
            if "x-sfmock-url" in item:
                yield from _url_drift(contract, item["x-sfmock-url"], instance, pointer)
    elif isinstance(instance, dict):
        properties: dict[str, list[Any]] = {}
        open_ended = not any("properties" in item for item in schemas)
        for item in schemas:
            open_ended = open_ended or item.get("additionalProperties", False) is not False
            open_ended = open_ended or "patternProperties" in item
            for name, sub in item.get("properties", {}).items():
                properties.setdefault(name, []).append(sub)
        for name, value in instance.items():
            here = f"{pointer}/{_escape(str(name))}"
            if name not in properties:
                if not open_ended:
                    yield here, "no such field", f"an undocumented field ({_kind(value)})"
                continue
            for sub in properties[name]:
                yield from _walk(contract, sub, value, here)
    elif isinstance(instance, list):
        for item in schemas:
            if isinstance(item.get("items"), dict):
                for index, value in enumerate(instance):
                    yield from _walk(contract, item["items"], value, f"{pointer}/{index}")


def _applicable(contract: Contract, schema: Any, instance: Any) -> list[dict[str, Any]]:
    """``schema`` and every subschema that applies to ``instance`` (allOf, the oneOf or
    anyOf branch it matches, ``then`` when ``if`` holds), ``$ref`` followed."""
    schema = contract.flatten(schema)
    if not isinstance(schema, dict):
        return []
    found = [schema]
    for branch in schema.get("allOf", []):
        found.extend(_applicable(contract, branch, instance))
    for key in ("oneOf", "anyOf"):
        chosen = next((b for b in schema.get(key, []) if _valid(contract, b, instance)), None)
        if chosen is not None:
            found.extend(_applicable(contract, chosen, instance))
    if "if" in schema and "then" in schema and _valid(contract, schema["if"], instance):
        found.extend(_applicable(contract, schema["then"], instance))
    return found


def _valid(contract: Contract, schema: Any, instance: Any) -> bool:
    return bool(Draft202012Validator(contract.inline(schema)).is_valid(instance))


# any {folder}/outputs/ is the store's, and /temporary/{anything}/ ("/temporary/None/", 2026-05)
_OUTPUTS = re.compile(r"/(?:[A-Za-z0-9._~-]+/outputs|temporary/[A-Za-z0-9._~-]+)/")


def _prefix_of(path: str) -> str:
    """The image prefix ``path`` is under: the prefix is a setting (x-sfmock-prefix-setting),
    /temporary/outputs/ in 2026 (/temporary/None/ seen too) and /default/outputs/ before."""
    prefix = path.rsplit("/", 1)[0] + "/"
    return prefix if _OUTPUTS.fullmatch(prefix) else IMAGE_PREFIX


def _url_drift(contract: Contract, rule: dict[str, Any], url: str, pointer: str) -> Iterator[_Found]:
    operation_id = rule["operation"]
    template, operation = _operation(contract, operation_id)
    parts = urlsplit(url)
    # the image path's prefix is a setting (x-sfmock-prefix-setting): /temporary/outputs/ in
    # 2026, /default/outputs/ before; any {folder}/outputs/ is the object store's
    if match_path(contract, parts.path, _prefix_of(parts.path)) != template:
        yield pointer, f"an image URL under {template}", f"a URL on {parts.netloc} under {parts.path}"
        return
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    for name in rule.get("query", []):
        if name not in query:
            yield pointer, f"query parameter {name}", f"absent (the URL has: {', '.join(query) or 'none'})"
    for parameter in operation.get("parameters", []):
        parameter = contract.flatten(parameter)
        name = parameter.get("name")
        if parameter.get("in") != "query" or name not in query:
            continue
        if not Draft202012Validator(contract.inline(parameter.get("schema", {}))).is_valid(query[name]):
            yield pointer, f"query parameter {name} as {_show(parameter.get('schema'))}", "another form"


def _operation(contract: Contract, operation_id: str) -> tuple[str, dict[str, Any]]:
    for template, operations in contract.document["paths"].items():
        for operation in operations.values():
            if isinstance(operation, dict) and operation.get("operationId") == operation_id:
                return str(template), operation
    raise ContractViolation(f"x-sfmock-url names operation {operation_id!r}, which the contract lacks")


def _kind(value: Any) -> str:
    names = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null", int: "integer"}
    return names.get(type(value), "number")


def _show(value: Any) -> str:
    shown = json.dumps(scrub(value), ensure_ascii=False, default=str)
    return shown if len(shown) <= _SHOW else shown[: _SHOW - 3] + "..."


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")
