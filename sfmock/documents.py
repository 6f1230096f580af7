"""Reading untrusted documents (control bodies, scenario and config files) as plain JSON data.

JSON is parsed as JSON: ``1e3`` is a number, ``NaN``, ``Infinity`` and numbers out of
float range are refused. Anything else is read as YAML with a loader that keeps to
what JSON can hold, in the YAML 1.2 core schema: ``true``/``false`` only, no dates
(``2020-01-01`` stays a string), and it refuses what cannot round-trip through JSON
or could blow up: aliases (``*x``: the "billion laughs"), explicit tags such as
``!!binary``, ``!!timestamp`` or ``!!set``, ``.inf`` and ``.nan``, keys that are not
strings, a key given twice in one mapping, and nesting deeper than :data:`MAX_DEPTH`.
Whatever the syntax, the data then passes :func:`sfmock.untrusted.check_data` (no lone
surrogate, no number that is not finite or beyond what a store holds), and a refusal
names the field: ``rules[0].name: the text holds a lone surrogate``.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.resolver import Resolver

from sfmock.errors import ConfigError
from sfmock.untrusted import MAX_DEPTH, MAX_INTEGER, Refused, Untrusted, check_data, finite_number, whole_number

__all__ = ["MAX_DEPTH", "MAX_FILE_BYTES", "DocumentError", "load_document", "loads_json", "read_file", "syntax_error"]

MAX_FILE_BYTES = 16 * 1024 * 1024  # a config, scenario or contract file: a 1000-rule scenario is about 60 KB


class DocumentError(ValueError):
    """A document that is not plain JSON data; the message says what and where.

    ``where``: ``"line L, column C"`` for a syntax error (the message then starts with it);
    ``key``: the field at fault (``rules[0].name``) when the syntax was fine but the data
    is not; ``problem``: the message without either."""

    def __init__(
        self, message: str, *, where: str | None = None, key: str | None = None, problem: str | None = None
    ) -> None:
        super().__init__(f"{where}: {problem}" if where and problem else message)
        self.where = where
        self.key = key
        self.problem = problem if problem is not None else message

    def as_config_error(self, source: str) -> ConfigError:
        """The error a file's loader raises: naming ``source`` and the key, or the line and
        column of a syntax error."""
        if self.key is not None:
            return ConfigError(source, self.key, self.problem)
        return ConfigError(source, self.where or "(syntax)", f"not valid YAML: {self.problem}")


def read_file(path: str | Path) -> bytes:
    """The bytes of one of our files (config, scenario, contract), at most
    :data:`MAX_FILE_BYTES`: a larger or endless file (``/dev/zero``, a pipe that never
    ends) is refused after reading one byte more, never held whole. A
    :class:`~sfmock.errors.ConfigError` names the file."""
    try:
        with open(path, "rb") as file:
            data = file.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise ConfigError(str(path), "(file)", f"cannot be read: {exc}") from None
    if len(data) > MAX_FILE_BYTES:
        raise ConfigError(str(path), "(file)", f"larger than {MAX_FILE_BYTES} bytes (16 MiB); expected a smaller file")
    return data


def syntax_error(exc: yaml.YAMLError) -> DocumentError:
    """PyYAML's error said once: where it went wrong, what, and what it was reading
    (PyYAML names the text ``<unicode string>`` and repeats the position)."""
    if not isinstance(exc, yaml.MarkedYAMLError) or exc.problem_mark is None:
        return DocumentError(f"not valid YAML or JSON: {exc}")
    mark = exc.problem_mark
    problem = str(exc.problem or "cannot be parsed")
    context, start = exc.context, exc.context_mark
    if context and start is not None and (start.line, start.column) != (mark.line, mark.column):
        problem += f" ({context} at line {start.line + 1}, column {start.column + 1})"
    elif context:
        problem += f" ({context})"
    return DocumentError("", where=f"line {mark.line + 1}, column {mark.column + 1}", problem=problem)


def _no_constant(name: str) -> Refused:
    return Refused(f"{name} is not a number JSON allows")


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            raise DocumentError(f"duplicate key {key!r}")
        found[key] = value
    return found


def _loads_json(text: str) -> Any:
    return json.loads(
        text, parse_float=finite_number, parse_int=whole_number, parse_constant=_no_constant, object_pairs_hook=_unique
    )


def loads_json(raw: str | bytes, *, max_integer: int | None = MAX_INTEGER) -> Any:
    """``raw`` as strict JSON data (no YAML), checked as :func:`load_document` checks it;
    ``max_integer=None`` for data that is compared but never stored (any integer then)."""
    text = _text(raw)
    try:
        value = _loads_json(text)
    except RecursionError:
        raise DocumentError(f"nested more than {MAX_DEPTH} levels deep") from None
    except DocumentError:
        raise
    except ValueError as exc:
        raise DocumentError(f"not valid JSON: {str(exc)[:200]}") from None
    return _checked(value, max_integer)


def _text(raw: str | bytes) -> str:
    if isinstance(raw, str):
        return raw
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DocumentError(f"not UTF-8 ({exc.reason} at byte {exc.start})") from None


def _checked(value: Any, max_integer: int | None = MAX_INTEGER) -> Any:
    try:
        check_data(value, max_integer=max_integer)
    except Untrusted as exc:
        raise DocumentError(str(exc), key=exc.field, problem=exc.problem) from None
    return value


try:  # libyaml, when PyYAML was built with it (the wheels are): several times faster
    from yaml._yaml import CParser

    _LIBYAML = True
except ImportError:  # pragma: no cover - pure Python, same rules, slower
    _LIBYAML = False


if _LIBYAML:

    class _JsonLoader(CParser, SafeConstructor, Resolver):
        """A safe loader restricted to JSON data (YAML 1.2 core schema); libyaml parses and
        composes (its nesting is capped), :func:`_check_tree` refuses what JSON cannot hold."""

        def __init__(self, stream: str) -> None:
            CParser.__init__(self, stream)
            SafeConstructor.__init__(self)
            Resolver.__init__(self)

else:  # pragma: no cover

    class _JsonLoader(yaml.SafeLoader):  # type: ignore[no-redef]
        """The same loader on PyYAML's pure-Python parser."""


# the YAML 1.2 core schema's plain scalars; everything else is a string
_JsonLoader.yaml_implicit_resolvers = {}
_JsonLoader.add_implicit_resolver("tag:yaml.org,2002:null", re.compile(r"^(?:~|null|Null|NULL|)$"), ["~", "n", "N", ""])
_JsonLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
_JsonLoader.add_implicit_resolver(
    "tag:yaml.org,2002:int", re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$"), list("-+0123456789")
)
_JsonLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
    list("-+0123456789."),
)
_PLAIN_TAGS = {f"tag:yaml.org,2002:{name}" for name in ("null", "bool", "int", "float", "str", "seq", "map")}


def _check_tree(node: Node) -> None:
    """Refuse aliases (a node met twice), explicit tags beyond JSON's, non-string keys and
    deep nesting; iteratively, so any document is safe to check."""
    stack: list[tuple[Node, int]] = [(node, 1)]
    seen: set[int] = set()
    while stack:
        current, depth = stack.pop()
        if id(current) in seen:
            raise DocumentError(f"line {current.start_mark.line + 1}: aliases (*name) are not allowed")
        seen.add(id(current))
        if current.tag not in _PLAIN_TAGS:
            line = current.start_mark.line + 1
            raise DocumentError(f"line {line}: tag {current.tag} is not allowed (plain data only)")
        if depth > MAX_DEPTH and not isinstance(current, ScalarNode):
            raise DocumentError(f"line {current.start_mark.line + 1}: nested more than {MAX_DEPTH} levels deep")
        if isinstance(current, SequenceNode):
            stack.extend((child, depth + 1) for child in current.value)
        elif isinstance(current, MappingNode):
            names: set[str] = set()
            for key, value in current.value:
                if not (isinstance(key, ScalarNode) and key.tag == "tag:yaml.org,2002:str"):
                    raise DocumentError(f"line {key.start_mark.line + 1}: keys must be strings")
                if key.value in names:
                    raise DocumentError(f"duplicate key {key.value!r} on line {key.start_mark.line + 1}")
                names.add(key.value)
                stack.append((key, depth + 1))
                stack.append((value, depth + 1))


def _construct_float(loader: _JsonLoader, node: ScalarNode) -> float:
    value: float = loader.construct_yaml_float(node)
    if not math.isfinite(value):
        raise DocumentError(f"line {node.start_mark.line + 1}: {node.value} is not a number JSON allows")
    return value


def _construct_int(loader: _JsonLoader, node: ScalarNode) -> int:
    text = node.value.replace("_", "")
    try:
        return int(text, 0) if text[:2].lower() in ("0o", "0x") else int(text)
    except ValueError:
        raise DocumentError(f"line {node.start_mark.line + 1}: {node.value[:40]} is not a usable integer") from None


_JsonLoader.add_constructor("tag:yaml.org,2002:float", _construct_float)  # type: ignore[type-var]
_JsonLoader.add_constructor("tag:yaml.org,2002:int", _construct_int)  # type: ignore[type-var]


def load_document(raw: str | bytes) -> Any:
    """``raw`` as plain JSON data; :class:`DocumentError` naming the problem otherwise.

    An empty document is ``None``.
    """
    raw = _text(raw)
    try:
        return _checked(_loads_json(raw))
    except RecursionError:
        raise DocumentError(f"nested more than {MAX_DEPTH} levels deep") from None
    except DocumentError:
        raise
    except ValueError:
        pass  # not JSON: read it as YAML
    loader = _JsonLoader(raw)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_tree(node)
        return _checked(loader.construct_document(node))
    except (ConstructorError, yaml.YAMLError) as exc:
        raise syntax_error(exc) from None
    except RecursionError:
        raise DocumentError(f"nested more than {MAX_DEPTH} levels deep") from None
    finally:
        loader.dispose()
