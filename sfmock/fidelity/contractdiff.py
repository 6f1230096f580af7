"""``sfmock contract diff OLD NEW``: what a client built on OLD would break on under NEW.

A client sends requests and reads answers, so the two directions break differently:

- in a **request** schema, a new required field, a narrowed range (a minimum raised,
  a maximum lowered), a removed enum value, a changed type or a removed field make
  requests the client already sends invalid;
- in a **response** schema, a removed field, a field no longer required, a widened
  range, a new enum value or a changed type give the client answers it does not expect;
- a removed operation or a removed required response header breaks either way.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from sfmock.contract.openapi import Contract
from sfmock.contract.schemas import load_yaml
from sfmock.documents import read_file, syntax_error
from sfmock.errors import ConfigError, ContractError
from sfmock.wording import plural

__all__ = ["Break", "Document", "diff_contracts", "format_breaks", "read_contract"]

_LOWER = ("minimum", "exclusiveMinimum", "minLength", "minItems")
_UPPER = ("maximum", "exclusiveMaximum", "maxLength", "maxItems")
_METHODS = ("get", "put", "post", "delete", "patch", "head", "options")


@dataclass(frozen=True, kw_only=True)
class Break:
    """One change that breaks a client of the old contract."""

    where: str
    kind: str
    detail: str

    def __str__(self) -> str:
        return f"{self.where}: {self.kind}: {self.detail}"


class Document:
    """Any OpenAPI document, with the two look-ups a diff needs (older contracts need not
    hold what :class:`Contract` requires)."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document

    def resolve(self, pointer: str) -> Any:
        """The node at a local JSON pointer."""
        node: Any = self.document
        for part in pointer.removeprefix("#/").split("/"):
            try:
                node = node[part.replace("~1", "/").replace("~0", "~")]
            except (KeyError, TypeError, IndexError):
                raise ContractError(f"contract has no {pointer}") from None
        return node

    def flatten(self, schema: Any) -> Any:
        """``schema`` with its ``$ref`` followed, sibling keywords on top."""
        seen = 0
        while isinstance(schema, dict) and "$ref" in schema and seen < 50:
            siblings = {k: v for k, v in schema.items() if k != "$ref"}
            schema = {**self.resolve(schema["$ref"]), **siblings}
            seen += 1
        return schema


def read_contract(path: str | Path) -> Document:
    """An OpenAPI document from a YAML or JSON file; errors name the file."""
    try:
        document = load_yaml(read_file(path).decode("utf-8"))
    except yaml.YAMLError as exc:
        problem = syntax_error(exc)
        raise ConfigError(str(path), problem.where or "(syntax)", f"not valid YAML: {problem.problem}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(str(path), "(file)", f"expected a readable OpenAPI document: {exc}") from None
    if not isinstance(document, dict) or not isinstance(document.get("paths"), dict):
        raise ConfigError(str(path), "paths", "expected an OpenAPI document with paths")
    return Document(document)


def diff_contracts(old: Contract | Document, new: Contract | Document) -> list[Break]:
    """Every change from ``old`` to ``new`` that breaks a client of ``old``.

    A ``$ref`` that leads nowhere is reported as a :class:`ContractError`."""
    differ = _Differ(Document(old.document), Document(new.document))
    for template, operations in old.document["paths"].items():
        for method, operation in operations.items():
            if method in _METHODS and isinstance(operation, dict):
                differ.operation(str(template), method, operation)
    return differ.found


def format_breaks(breaks: list[Break]) -> str:
    """The report as text."""
    if not breaks:
        return "compatible: a client of the old contract breaks on nothing in the new one"
    return "\n".join([f"breaking: {plural(len(breaks), 'change')}", *(f"  {b}" for b in breaks)])


class _Differ:
    def __init__(self, old: Document, new: Document) -> None:
        self.old, self.new = old, new
        self.found: list[Break] = []

    def add(self, where: str, kind: str, detail: str) -> None:
        self.found.append(Break(where=where, kind=kind, detail=detail))

    def operation(self, template: str, method: str, old_op: dict[str, Any]) -> None:
        where = f"{method.upper()} {template}"
        new_op = self.new.document["paths"].get(template, {}).get(method)
        if not isinstance(new_op, dict):
            self.add(where, "removed operation", "the new contract has no such operation")
            return
        old_body = _json_schema(self.old, old_op.get("requestBody"))
        new_body = _json_schema(self.new, new_op.get("requestBody"))
        if old_body is not None and new_body is not None:
            self.schema(old_body, new_body, f"{where} request", "request", 0)
        old_params = {(p.get("in"), p.get("name")): p for p in map(self.old.flatten, old_op.get("parameters", []))}
        for param in map(self.new.flatten, new_op.get("parameters", [])):
            key = (param.get("in"), param.get("name"))
            if param.get("required") and not old_params.get(key, {}).get("required"):
                self.add(f"{where} {key[0]} {key[1]}", "new required parameter", "the client does not send it")
            elif key in old_params:
                self.schema(
                    old_params[key].get("schema", {}),
                    param.get("schema", {}),
                    f"{where} {key[0]} {key[1]}",
                    "request",
                    0,
                )
        new_responses = new_op.get("responses", {})
        for status, old_response in old_op.get("responses", {}).items():
            if status in new_responses:
                self.response(f"{where} {status}", old_response, new_responses[status])

    def response(self, where: str, old: Any, new: Any) -> None:
        old, new = _deref(self.old, old), _deref(self.new, new)
        new_headers = {k.lower(): self.new.flatten(v) for k, v in new.get("headers", {}).items()}
        for name, header in old.get("headers", {}).items():
            if self.old.flatten(header).get("required") and not new_headers.get(name.lower(), {}).get("required"):
                self.add(f"{where} header {name}", "removed header", "no longer always sent")
        new_content = new.get("content", {})
        for media_type, old_media in old.get("content", {}).items():
            if media_type not in new_content:
                self.add(f"{where} {media_type}", "removed content type", f"answers are no longer {media_type}")
            elif "schema" in old_media and "schema" in new_content[media_type]:
                self.schema(old_media["schema"], new_content[media_type]["schema"], where, "response", 0)

    def schema(self, old: Any, new: Any, where: str, direction: str, depth: int) -> None:
        old, new = _merged(self.old, old, 0), _merged(self.new, new, 0)
        if not isinstance(old, dict) or not isinstance(new, dict) or depth > 40:
            return
        for key in ("oneOf", "anyOf"):
            if new.get(key) and not old.get(key):
                self._choice(old, new, key, where, direction, depth)
                return
        request = direction == "request"
        if self._types(old, new, where, request):
            return  # its other keywords no longer compare
        self._values(old, new, where, request)
        self._ranges(old, new, where, request)
        old_props, new_props = old.get("properties", {}), new.get("properties", {})
        for name, sub in old_props.items():
            if name not in new_props:
                self.add(f"{where} /{name}", "removed field", f"{name!r} is gone from the {direction}")
            else:
                self.schema(sub, new_props[name], f"{where} /{name}", direction, depth + 1)
        old_required, new_required = set(old.get("required", [])), set(new.get("required", []))
        if request:
            for name in sorted(new_required - old_required):
                self.add(f"{where} /{name}", "new required field", "requests without it become invalid")
        else:
            for name in sorted((old_required - new_required) & set(new_props)):
                self.add(f"{where} /{name}", "field no longer required", "answers may lack it")
        if "items" in old and "items" in new:
            self.schema(old["items"], new["items"], f"{where} /[]", direction, depth + 1)
        if "then" in old and "then" in new:
            self.schema(old["then"], new["then"], where, direction, depth + 1)
        for key in ("oneOf", "anyOf"):
            for old_branch, new_branch in zip(old.get(key, []), new.get(key, []), strict=False):
                self.schema(old_branch, new_branch, where, direction, depth + 1)
        new_branches = {_branch_key(b, i): b for i, b in enumerate(new.get("allOf", []))}
        for index, branch in enumerate(old.get("allOf", [])):
            key = _branch_key(branch, index)
            if key in new_branches:
                label = _branch_label(branch)
                self.schema(branch, new_branches[key], f"{where}{label}", direction, depth + 1)

    def _choice(
        self, old: dict[str, Any], new: dict[str, Any], key: str, where: str, direction: str, depth: int
    ) -> None:
        """``new`` became a choice of schemas (``oneOf``/``anyOf``). An answer may take any
        branch, so each is held to what ``old`` promised (a field every branch requires is
        still required); a request needs only one branch that takes it, so the branch
        closest to ``old`` is the one reported."""
        rest = {k: v for k, v in new.items() if k != key}
        outcomes: list[list[Break]] = []
        for index, branch in enumerate(new[key]):
            combined = _merged(self.new, {"allOf": [rest, branch]}, 0)  # the branch and its siblings
            ref = branch.get("$ref") if isinstance(branch, dict) else None
            label = f" [{str(ref).rsplit('/', 1)[-1] if ref else f'{key} {index + 1}'}]"
            kept, self.found = self.found, []
            self.schema(old, combined, f"{where}{label}", direction, depth + 1)
            outcomes.append(self.found)
            self.found = kept
        if direction == "request":
            closest: list[Break] = min(outcomes, key=len)
            self.found.extend(closest)
        else:
            self.found.extend(found for breaks in outcomes for found in breaks)

    def _types(self, old: dict[str, Any], new: dict[str, Any], where: str, request: bool) -> bool:
        old_types, new_types = _types(old), _types(new)
        if old_types is None or new_types is None:
            return False
        narrower, wider = (old_types, new_types) if request else (new_types, old_types)
        if narrower <= wider:
            return False
        self.add(where, "changed type", f"{_names(old_types)} became {_names(new_types)}")
        return True

    def _values(self, old: dict[str, Any], new: dict[str, Any], where: str, request: bool) -> None:
        if "const" in old and "const" in new and old["const"] != new["const"]:
            self.add(where, "changed constant", f"{json.dumps(old['const'])} became {json.dumps(new['const'])}")
        if "enum" not in new:
            return
        if request and "enum" in old:
            for value in old["enum"]:
                if value not in new["enum"]:
                    self.add(where, "removed enum value", f"{json.dumps(value)} is no longer accepted")
        elif not request:
            known = old.get("enum")
            for value in new["enum"]:
                if known is not None and value not in known:
                    self.add(where, "new enum value", f"answers may carry {json.dumps(value)}")

    def _ranges(self, old: dict[str, Any], new: dict[str, Any], where: str, request: bool) -> None:
        for keyword in (*_LOWER, *_UPPER):
            before, after = old.get(keyword), new.get(keyword)
            if before == after or isinstance(before, bool) or isinstance(after, bool):
                continue
            lower = keyword in _LOWER
            # tighter: a bound appears, or moves inwards
            tighter = before is None or (after is not None and (after > before if lower else after < before))
            if request and tighter:
                self.add(where, "narrowed range", f"{keyword} {_show(before)} became {_show(after)}")
            elif not request and not tighter:
                self.add(where, "widened range", f"{keyword} {_show(before)} became {_show(after)}")


def _merged(doc: Document, schema: Any, depth: int) -> Any:
    """``schema`` flattened, with the properties and required fields of its plain
    ``allOf`` branches folded in (moving fields into ``allOf`` changes nothing for a
    client); conditional branches (``if``/``then``) stay in ``allOf``."""
    schema = doc.flatten(schema)
    if not isinstance(schema, dict) or "allOf" not in schema or depth > 20:
        return schema
    merged = {k: v for k, v in schema.items() if k != "allOf"}
    properties, required = dict(schema.get("properties", {})), list(schema.get("required", []))
    conditional = []
    for branch in schema["allOf"]:
        if isinstance(branch, dict) and "if" in branch:
            conditional.append(branch)
            continue
        part = _merged(doc, branch, depth + 1)
        if not isinstance(part, dict):
            continue
        for name, sub in part.get("properties", {}).items():
            properties.setdefault(name, sub)
        required += [name for name in part.get("required", []) if name not in required]
        for key, value in part.items():
            if key not in ("properties", "required", "allOf", "description"):
                merged.setdefault(key, value)
        conditional += [b for b in part.get("allOf", []) if isinstance(b, dict) and "if" in b]
    if properties:
        merged["properties"] = properties
    if required:
        merged["required"] = required
    if conditional:
        merged["allOf"] = conditional
    return merged


def _json_schema(contract: Document, body: Any) -> Any:
    body = _deref(contract, body) if body is not None else None
    if not isinstance(body, dict):
        return None
    for media_type, media in body.get("content", {}).items():
        if media_type.endswith("json"):
            return media.get("schema")
    return None


def _deref(contract: Document, node: Any) -> Any:
    while isinstance(node, dict) and "$ref" in node:
        node = contract.resolve(node["$ref"])
    return node


def _types(schema: dict[str, Any]) -> set[str] | None:
    if "type" not in schema:
        return None
    found = set(schema["type"]) if isinstance(schema["type"], list) else {schema["type"]}
    if "number" in found:
        found.add("integer")
    return found


def _names(types: set[str]) -> str:
    shown = types - {"integer"} if "number" in types else types
    return "/".join(sorted(shown))


def _branch_key(branch: Any, index: int) -> str:
    if isinstance(branch, dict) and "if" in branch:
        return json.dumps(branch["if"], sort_keys=True)
    return f"#{index}"


def _branch_label(branch: Any) -> str:
    if isinstance(branch, dict) and "if" in branch:
        model = branch["if"].get("properties", {}).get("model", {}).get("const")
        return f" [model={model}]" if model else " [if]"
    return ""


def _show(value: Any) -> str:
    return "none" if value is None else json.dumps(value)
