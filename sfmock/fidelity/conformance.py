"""Checking a response against the contract: status, headers and body.

Used on every response the test suite sees, so the fake and its contract cannot
drift apart, and by users to check what their own fixtures claim the API says.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Mapping
from typing import Any
from xml.etree import ElementTree

from PIL import Image, UnidentifiedImageError

from sfmock.contract.openapi import Contract, load_contract
from sfmock.errors import ContractViolation
from sfmock.service.imagehost import IMAGE_PREFIX
from sfmock.service.responses import DIALECTS

__all__ = ["check_response", "find_response", "match_path"]

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PREFIXED = "x-sfmock-prefix-setting"
OCTET_STREAM = "application/octet-stream"  # how the live store serves a PNG (the contract: contentMediaType)
_DIALECTS = "x-sfmock-dialects"


def check_response(
    method: str,
    path: str,
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    contract: Contract | None = None,
    dialect: str = "documented",
    image_prefix: str = IMAGE_PREFIX,
) -> None:
    """Raise :class:`ContractViolation` unless the contract allows this response.

    ``headers`` may come from any client (httpx, requests, Starlette, or a mapping of
    lists); names are compared case-insensitively. ``dialect`` is the dialect in force
    (``documented``, ``observed`` or ``plain``): where the contract words a body several ways, only that
    dialect's body passes. ``image_prefix`` is where the server serves its images.
    """
    if dialect not in DIALECTS:
        raise ValueError(f"dialect must be one of {DIALECTS}, got {dialect!r}")
    contract = contract or load_contract()
    headers = {str(k).lower(): (v[0] if isinstance(v, list) and v else v) for k, v in headers.items()}
    where = f"{method} {path} -> {status}"
    pointer, response = find_response(contract, method, path, status, image_prefix)
    for name, header in response.get("headers", {}).items():
        if contract.flatten(header).get("required") and not headers.get(name.lower()):
            raise ContractViolation(f"{where}: missing header {name}")
    content = response.get("content")
    if not content or method.upper() == "HEAD":
        return
    media_type = headers.get("content-type", "").split(";")[0].strip()
    if media_type not in content:
        raise ContractViolation(f"{where}: content type {media_type!r} is not one of {sorted(content)}")
    schema_pointer = f"{pointer}/content/{_escape(media_type)}/schema"
    dialects = contract.resolve(schema_pointer).get(_DIALECTS)
    if dialects is not None:
        schema_pointer = dialects[dialect]
        where += f" ({dialect} dialect)"
    _check_body(contract, media_type, schema_pointer, body, where)


def find_response(
    contract: Contract, method: str, path: str, status: int, image_prefix: str = IMAGE_PREFIX
) -> tuple[str, dict[str, Any]]:
    """The pointer and Response Object the contract gives ``status`` on ``method path``
    (following ``$ref``); :class:`ContractViolation` when it documents none."""
    where = f"{method} {path} -> {status}"
    pointer = _response_pointer(contract, method.lower(), path, status, where, image_prefix)
    response = contract.resolve(pointer)
    while "$ref" in response:
        pointer = response["$ref"]
        response = contract.resolve(pointer)
    return pointer, response


def match_path(contract: Contract, path: str, image_prefix: str = IMAGE_PREFIX) -> str | None:
    """The contract's path template that ``path`` matches, if any."""
    return _match_path(contract, path, image_prefix)


def _response_pointer(contract: Contract, method: str, path: str, status: int, where: str, image_prefix: str) -> str:
    template = _match_path(contract, path, image_prefix)
    if template is None and len(path) > 1 and path.endswith("/") and _match_path(contract, path[:-1], image_prefix):
        return _expect(status, 307, "#/components/responses/TrailingSlash", where, "a known path and a slash")
    if template is None:
        return _expect(status, 404, "#/components/responses/NotFound", where, "an unknown path")
    operations = contract.document["paths"][template]
    op_name = "get" if method == "head" and "head" not in operations else method
    if op_name not in operations:
        return _expect(status, 405, "#/components/responses/MethodNotAllowed", where, "a wrong method")
    responses = operations[op_name]["responses"]
    base = f"#/paths/{_escape(template)}/{op_name}/responses"
    for key in (str(status), f"{str(status)[0]}XX", "default"):
        if key in responses:
            return f"{base}/{key}"
    raise ContractViolation(f"{where}: status {status} is not documented for {op_name.upper()} {template}")


def _expect(status: int, wanted: int, pointer: str, where: str, what: str) -> str:
    if status != wanted:
        raise ContractViolation(f"{where}: {what} must answer {wanted}")
    return pointer


def _match_path(contract: Contract, path: str, image_prefix: str) -> str | None:
    under_prefix = path.startswith(image_prefix) and "/" not in path[len(image_prefix) :]
    for template, operations in contract.document["paths"].items():
        if any(isinstance(op, dict) and _PREFIXED in op for op in operations.values()):
            if under_prefix and len(path) > len(image_prefix):
                return str(template)
            continue
        pattern = re.escape(template).replace(r"\{model\}", ".+")  # a model id holds a slash
        pattern = re.sub(r"\\\{[^}/]+\\\}", "[^/]+", pattern)
        if re.fullmatch(pattern, path):
            return str(template)
    return None


def _check_body(contract: Contract, media_type: str, pointer: str, body: bytes, where: str) -> None:
    instance: Any
    if media_type.endswith("json"):
        try:
            instance = json.loads(body)
        except ValueError as exc:
            raise ContractViolation(f"{where}: body is not JSON: {exc}") from None
    elif media_type.endswith("xml"):
        instance = _xml_elements(contract.flatten(contract.resolve(pointer)), body, where)
    elif media_type.startswith("image/") or media_type == OCTET_STREAM:
        if contract.resolve(pointer).get("contentMediaType"):  # a whole image (a 206 is a part of one)
            _check_image(media_type, body, where)
        return
    else:
        instance = body.decode("utf-8", "replace")
    if contract.conforms(pointer, instance):
        return  # the compiled verdict; jsonschema has the last word on anything else
    error = next(iter(contract.validator(pointer).iter_errors(instance)), None)
    if error is not None:
        at = "/".join(str(p) for p in error.absolute_path) or "(body)"
        raise ContractViolation(f"{where}: {at}: {error.message}")


def _xml_elements(schema: dict[str, Any], body: bytes, where: str) -> dict[str, str]:
    try:
        root = ElementTree.fromstring(body)
    except ElementTree.ParseError as exc:
        raise ContractViolation(f"{where}: body is not XML: {exc}") from None
    name = schema.get("xml", {}).get("name")
    if name and root.tag != name:
        raise ContractViolation(f"{where}: XML root is <{root.tag}>, expected <{name}>")
    return {child.tag: child.text or "" for child in root}


def _check_image(media_type: str, body: bytes, where: str) -> None:
    if media_type in ("image/png", OCTET_STREAM) and not body.startswith(_PNG_SIGNATURE):
        raise ContractViolation(f"{where}: body is not a PNG")
    try:
        with Image.open(io.BytesIO(body)) as picture:
            picture.verify()
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise ContractViolation(f"{where}: body is not a valid {media_type}: {exc}") from None


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")
