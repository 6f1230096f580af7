"""Reading a request as the chaos layer needs it: headers, session, body; and the
answers given before anything else happens (a bad header, a body declared too large)."""

from __future__ import annotations

from urllib.parse import parse_qsl

from starlette.responses import Response
from starlette.types import Message, Receive, Scope

from sfmock.chaos.sessions import SESSION_PARAM, Sessions, SessionState, session_name
from sfmock.errors import DownloadDenied
from sfmock.service.headers import header_map
from sfmock.service.responses import invalid_request, json_response, xml_error

__all__ = ["bad_header", "header_map", "read_body", "repeated_own_header", "session_of", "too_large"]

_SESSION_PARAM = SESSION_PARAM.encode()


def repeated_own_header(scope: Scope, headers: dict[str, str]) -> str | None:
    """The 400's message when one of sfmock's own headers (``X-Sfmock-*``) came more than
    once: which one was meant (a session, a fault) is not for the fake to guess; nor is
    ``Host`` (RFC 9112 asks a 400 of two, and the control API's guard reads it).
    ``headers``: :func:`header_map` of the request (fewer names than headers: some repeated)."""
    if len(headers) == len(scope["headers"]):
        return None
    counts: dict[str, int] = {}
    for raw, _value in scope["headers"]:
        name = raw.decode("latin-1").lower()
        if name.startswith("x-sfmock-") or name == "host":
            counts[name] = counts.get(name, 0) + 1
    for name, count in counts.items():
        if count > 1:
            shown = "-".join(part.capitalize() for part in name.split("-"))
            return f"{shown}: the header came {count} times; expected it once"
    return None


def session_of(sessions: Sessions, scope: Scope, headers: dict[str, str]) -> SessionState:
    """The session a request names (header, or the query of an image URL issued in one);
    raises :class:`~sfmock.chaos.sessions.SessionError` for a malformed name."""
    query = scope.get("query_string", b"")
    # bytes' "in" tries its operand as an integer first: on every request, an empty query is not searched
    params = dict(parse_qsl(query.decode("latin-1"))) if query and query.find(_SESSION_PARAM) >= 0 else None
    return sessions.get(session_name(headers, params))


async def read_body(receive: Receive, limit: int, first: Message | None = None) -> tuple[bytes, bool]:
    """The body up to ``limit`` bytes, and whether it arrived (``False``: the client left);
    ``first``: its first message, received already."""
    message = await receive() if first is None else first
    if message["type"] == "http.request" and not message.get("more_body", False):
        return message.get("body", b""), True  # the whole body in one message: most requests
    chunks: list[bytes] = []
    size = 0
    while True:
        if message["type"] != "http.request":
            return b"".join(chunks), False
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if size >= limit or not message.get("more_body", False):
            return b"".join(chunks), True
        message = await receive()


def too_large(scope: Scope, limit: int, store_prefix: str) -> Response:
    """The refusal of a body declared too large; the connection closes after it (the body
    is never read, so the connection cannot carry another request)."""
    message = f"Request body too large: the limit is {limit} bytes"
    if scope["path"].startswith(store_prefix):
        denied = DownloadDenied(400, "MaxMessageLengthExceeded", "Your request was too big.")
        response = xml_error(denied, scope["state"].get("trace_id", ""))
    else:
        response = json_response(invalid_request(message, status=413).body, 413)
    response.headers["connection"] = "close"
    return response


def bad_header(scope: Scope, message: str, header: str, store_prefix: str) -> Response:
    """The 400 for a malformed ``X-Sfmock-*`` header: S3's XML on the image host, JSON elsewhere."""
    if scope["path"].startswith(store_prefix):
        denied = DownloadDenied(400, "InvalidArgument", message, ArgumentName=header)
        return xml_error(denied, scope["state"].get("trace_id", ""))
    return json_response(invalid_request(message).body, 400)
