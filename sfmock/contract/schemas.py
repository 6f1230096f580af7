"""sfmock's own JSON Schemas (config, scenario), and turning their errors into ConfigErrors."""

from __future__ import annotations

import functools
import reprlib
from collections.abc import Mapping, Sequence
from importlib import resources
from typing import Any

import jsonschema_rs
import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match

from sfmock.errors import ConfigError
from sfmock.untrusted import Untrusted, check_data
from sfmock.wording import did_you_mean

__all__ = ["check", "key_name", "load_yaml", "schema"]

# libyaml's loader when PyYAML was built with it (the wheels are): the contract parses
# in a few milliseconds instead of tens
_Base: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_MERGE = "tag:yaml.org,2002:merge"


class _Loader(_Base):  # type: ignore[misc]
    """The safe loader, refusing a key given twice in one mapping (YAML says "last wins",
    which silently loses a setting)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == _MERGE or not isinstance(key_node, yaml.ScalarNode):
                continue
            key = self.construct_object(key_node)
            if key in seen:
                line = key_node.start_mark.line + 1
                problem = f"duplicate key {key!r} on line {line} (each key once)"
                raise yaml.constructor.ConstructorError(None, None, problem, key_node.start_mark)
            seen.add(key)
        mapping: dict[Any, Any] = super().construct_mapping(node, deep=deep)
        return mapping


# dates stay strings (``at: 2026-09-10`` is checked as text)
_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in _Base.yaml_implicit_resolvers.items()
}


def load_yaml(text: str | bytes) -> Any:
    """Parse YAML (or JSON) safely: no tags, no objects, plain data only; a key given twice
    in one mapping is an error naming the key and its line."""
    return yaml.load(text, Loader=_Loader)


@functools.cache
def schema(name: str) -> dict[str, Any]:
    """A schema document shipped in ``sfmock.contracts`` (``config``, ``scenario``)."""
    text = resources.files("sfmock.contracts").joinpath(f"{name}.schema.yaml").read_text("utf-8")
    document: dict[str, Any] = load_yaml(text)
    return document


def _document(name: str, definition: str | None) -> dict[str, Any]:
    document = schema(name)
    if definition is not None:
        document = {"$defs": document["$defs"], "$ref": f"#/$defs/{definition}"}
    return document


@functools.cache
def _validator(name: str, definition: str | None) -> Draft202012Validator:
    return Draft202012Validator(_document(name, definition))


@functools.cache
def _compiled(name: str, definition: str | None) -> Any:
    return jsonschema_rs.Draft202012Validator(_document(name, definition), validate_formats=False)


def _conforms(name: str, definition: str | None, values: Any) -> bool:
    """The compiled verdict: ``True`` only when ``values`` keep every rule (most settings
    do, and ``jsonschema`` takes ~1.5 ms to say so); ``False`` leaves the verdict and its
    message to ``jsonschema``."""
    try:
        return bool(_compiled(name, definition).is_valid(values))
    except Exception:  # a value with no JSON form: jsonschema decides
        return False


def check(
    name: str,
    values: Any,
    source: str,
    *,
    definition: str | None = None,
    key_names: Mapping[str, str] | None = None,
) -> None:
    """Raise :class:`ConfigError` for the first part of ``values`` the schema rejects.

    The error names ``source``, the key (``accounts[0].keys``, or a flag from
    ``key_names``) and what was expected (the schema's ``description``). Before the
    schema, the data passes :func:`~sfmock.untrusted.check_data` (a schema cannot see a
    lone surrogate, and ``NaN`` passes every ``minimum``).
    """
    try:
        check_data(values)
    except Untrusted as exc:
        raise ConfigError(source, _shown_key(list(exc.path), key_names), exc.problem) from None
    if _conforms(name, definition, values):
        return
    validator = _validator(name, definition)
    error = best_match(validator.iter_errors(values))
    if error is None:
        return
    path = list(error.absolute_path)
    key = _shown_key(path, key_names)
    expected = _description(error, validator.schema, path)
    if error.validator == "additionalProperties" and isinstance(error.schema, dict):
        _unknown_key(error, source, path, key_names)
    message = _shortened(error)
    if error.validator == "enum" and isinstance(error.instance, str) and isinstance(error.validator_value, list):
        hint = did_you_mean(error.instance, [str(choice) for choice in error.validator_value])
        message += f"; {hint}" if hint else ""
    raise ConfigError(source, key, message + (f"; expected: {expected}" if expected else ""))


_SHORT = reprlib.Repr()
_SHORT.maxlist = _SHORT.maxdict = _SHORT.maxtuple = 3
_SHORT.maxstring = _SHORT.maxother = 60
_SHORT.maxlevel = 3


_EXCLUSIVE = {"exclusiveMaximum": "is too large: it must be under", "exclusiveMinimum": "is too small: it must be over"}


def _shortened(error: ValidationError) -> str:
    """jsonschema's message, with the value it quotes shortened (1,001 rules quoted whole are a
    40 KB message) and, for a list too long or too short, its length."""
    if error.validator in _EXCLUSIVE:  # jsonschema's "greater than or equal to the maximum of 1"
        return f"{error.instance!r} {_EXCLUSIVE[str(error.validator)]} {error.validator_value!r}"
    whole = repr(error.instance)
    if len(whole) <= 200:
        return error.message
    short = _SHORT.repr(error.instance)
    if isinstance(error.instance, list) and error.validator in ("maxItems", "minItems"):
        short += f" ({len(error.instance)} items)"
    return error.message.replace(whole, short, 1)


def _unknown_key(
    error: ValidationError, source: str, path: Sequence[str | int], key_names: Mapping[str, str] | None
) -> None:
    """An unknown key, named as a key: ``url_tl: unknown key; did you mean 'url_ttl'?``; the
    list of every allowed key only when none is close (35 names hide the one meant)."""
    schema = error.schema if isinstance(error.schema, Mapping) else {}
    known = sorted(schema.get("properties", {}))
    instance = error.instance if isinstance(error.instance, Mapping) else {}
    unknown = sorted(str(name) for name in instance if name not in known)
    if not unknown:
        return
    name = unknown[0]
    if key_names and not path:
        known = sorted(key_names.get(k, k) for k in known)
        name = key_names.get(name, name)
    hint = did_you_mean(name, known)
    expected = hint or "expected one of the keys " + ", ".join(known)
    raise ConfigError(source, key_name([*path, name]), f"unknown key; {expected}")


def _shown_key(path: list[Any], key_names: Mapping[str, str] | None) -> str:
    """The key at ``path``, or the flag ``key_names`` gives for its first part."""
    if key_names and path and str(path[0]) in key_names:
        return key_names[str(path[0])]
    return key_name(path)


def _description(error: ValidationError, root: Any, path: Sequence[str | int]) -> str | None:
    """What the schema says is expected where ``error`` happened: the failing part's
    ``description``, else its enclosing part's (a ``oneOf`` branch or a property name has
    none of its own), else the top-level key's."""
    part: Any = error  # a ValidationError, then its parents (jsonschema types them loosely)
    while part is not None:
        if isinstance(part.schema, dict) and isinstance(part.schema.get("description"), str):
            return str(part.schema["description"])
        part = part.parent
    deepest = _described_on_the_way(root, list(error.absolute_schema_path))
    if deepest is not None:
        return deepest
    top = root.get("properties", {}).get(str(path[0]), {}) if path and isinstance(root, dict) else {}
    return str(top["description"]) if isinstance(top, dict) and "description" in top else None


def _described_on_the_way(root: Any, schema_path: list[Any]) -> str | None:
    """The last ``description`` met walking ``schema_path`` down ``root`` (through its local
    ``$ref``s): the header map's, not the rule list's, for a header name a rule cannot hold."""
    node, found = root, None
    for part in [*schema_path, None]:
        if isinstance(node, dict) and isinstance(node.get("description"), str):
            found = str(node["description"])
        if part is None:
            break
        for _ in range(8):  # a $ref jsonschema followed without naming it in the path (a few, not a cycle)
            if not (isinstance(node, dict) and part not in node and str(node.get("$ref", "")).startswith("#/")):
                break
            target: Any = root
            for step in str(node["$ref"])[2:].split("/"):
                target = target.get(step) if isinstance(target, dict) else None
            node = target
        if part == "$ref":
            continue
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            break
    return found


def key_name(path: Sequence[str | int]) -> str:
    """``["accounts", 0, "keys"]`` -> ``accounts[0].keys``."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text.lstrip(".") or "(top level)"
