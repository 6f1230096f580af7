"""Credentials out of everything sfmock writes down: recordings, the journal and the page.

One set of rules for all three, so a form of credential scrubbed in one is scrubbed in
every one:

- a header, query parameter or JSON key whose *name* says secret (``authorization`` in
  any scheme, ``api-key``, ``x-api-key``, ``x-goog-api-key``, ``x-auth-token``, ``cookie``,
  ``key``, ``token``, ``sig``, ``Signature``, ``X-Amz-Signature``, ``X-Amz-Security-Token``,
  ``X-Amz-Credential``...) loses its value;
- in any text, ``name=value`` pairs of a query string lose the value when the name says
  secret, whatever the URL around them (absolute in any case, relative, or none) and
  also when percent-encoded (``%3F``, ``%3D``, ``%26``); user info (``//user:pass@``) goes;
- ``sk-...`` keys and the values of ``Bearer`` (or any scheme's) credentials go, and each
  string the caller names as a secret (the key a request sent, in whatever form).
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import logging
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import unquote

__all__ = [
    "REDACTED",
    "ScrubbedLog",
    "is_secret_name",
    "scrub",
    "scrub_body",
    "scrub_headers",
    "scrub_query",
    "scrub_text",
    "secrets_in",
]

REDACTED = "REDACTED"
_MIN_SECRET = 4  # shorter strings would cut ordinary words out of a text
# a name that says its value is a credential
_SECRET_NAME = re.compile(
    r"auth|token|key|secret|signature|credential|cookie|session|password|passwd|(?:^|[-_.])sig(?:$|[-_.])",
    re.IGNORECASE,
)
# names matching _SECRET_NAME that hold no secret: the structure of a signed URL, sfmock's
# session, a retry's idempotency key (a test compares it across attempts)
_KEEP = frozenset({"x-amz-signedheaders", "x-sfmock-session", "idempotency-key", "x-idempotency-key"})
# name=value in a query string, plain or percent-encoded (a URL inside a URL)
_PAIR = re.compile(
    r"(?P<lead>^|[?&;]|%3[Ff]|%26)(?P<name>[A-Za-z0-9_.\-]+)(?P<eq>=|%3[Dd])(?P<value>(?:(?!%26)[^&;\s\"'<>#,])*)"
)
_USERINFO = re.compile(r"(?i)(\b[a-z][a-z0-9+.-]*:(?://|%2F%2F))[^/@\s\"'<>]+@")
# other schemes (``Token X``) are words in prose too: the request's own key is cut as a secret
_SCHEME_CREDENTIAL = re.compile(r"(?i)\b(Bearer|Basic|Digest)(\s+)[^\s\"',;]+")
_API_KEY = re.compile(r"(?<![A-Za-z0-9])sk-[A-Za-z0-9_-]{6,}")
# what every form above needs somewhere in the text: most texts have none, and one search
# costs less than the four substitutions (the journal scrubs every header of every request)
_ANY_FORM = re.compile(r"=|%3[Dd]|sk-|@|bearer|basic|digest", re.IGNORECASE)
# a data URL's payload, left out of the search for forms (see _around_data)
_DATA_PAYLOAD = re.compile(r";base64,([A-Za-z0-9+/=]{256,})")
_DATA_MIN = 4096  # shorter texts are searched whole
# what a body (lower-cased) must hold for any rule to apply: a word of a secret name, a key,
# a scheme, user info; most bodies hold none, and one search costs less than a parse
_BODY_CUE = re.compile(rb"auth|token|key|secret|sig|credential|cookie|session|pass|sk-|bearer|basic|digest|@")
# "name": "value" in JSON text that does not parse (a body cut at a cap)
# (possessive: an unterminated string is one scan, not a backtrack per character)
_JSON_PAIR = re.compile(r'"(?P<name>[^"\\]{1,128})"(?P<colon>\s*:\s*)"(?P<value>(?:[^"\\]++|\\.)*+)"')


def is_secret_name(name: str) -> bool:
    """Whether a header, query parameter or JSON key of this name holds a credential."""
    return bool(_SECRET_NAME.search(name)) and name.lower() not in _KEEP


def scrub_text(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with every credential form it holds replaced by ``REDACTED``."""
    for secret in secrets:
        if len(secret) >= _MIN_SECRET:
            text = text.replace(secret, REDACTED)
    return _around_data(text, _forms)


def _around_data(text: str, scrubbed: Callable[[str], str]) -> str:
    """``scrubbed`` on all but the payloads of data URLs: base64 holds none of the forms'
    marks (``?&;%-@``, quotes, spaces), and the characters around a payload end any form,
    so the result is the same, at a fraction of the cost on an image's megabyte."""
    if len(text) <= _DATA_MIN or ";base64," not in text:
        return scrubbed(text)
    parts: list[str] = []
    last = 0
    for match in _DATA_PAYLOAD.finditer(text):
        parts.append(scrubbed(text[last : match.start(1)]))
        parts.append(match[1])
        last = match.end(1)
    parts.append(scrubbed(text[last:]))
    return "".join(parts)


def _forms(text: str) -> str:
    if _ANY_FORM.search(text) is None:
        return text
    text = _PAIR.sub(_pair, text)
    text = _USERINFO.sub(r"\g<1>", text)
    text = _SCHEME_CREDENTIAL.sub(r"\g<1>\g<2>" + REDACTED, text)
    return _API_KEY.sub(REDACTED, text)


def _pair(match: re.Match[str]) -> str:
    name = match["name"]
    secret = _secret_pair_name(name) if len(name) <= 64 else is_secret_name(unquote(name))
    if not match["value"] or match["value"] == REDACTED or not secret:
        return match[0]
    return f"{match['lead']}{name}{match['eq']}{REDACTED}"


@functools.lru_cache(maxsize=1024)
def _secret_pair_name(name: str) -> bool:
    """:func:`is_secret_name` of a ``name=`` form's name (a signed URL's six parameters, on
    every download the journal keeps: the same few names again and again)."""
    return is_secret_name(unquote(name))


def scrub_query(query: str, secrets: Iterable[str] = ()) -> str:
    """A query string (no ``?``) with the values of secret parameters redacted, its form kept."""
    return scrub_text(query, secrets) if query else query


def scrub_headers(headers: Mapping[str, str], secrets: Iterable[str] = ()) -> dict[str, str]:
    """Headers (their order kept) with secret-named values redacted and other values scrubbed."""
    known = list(secrets)
    return {
        name: (REDACTED if value else value) if is_secret_name(name) else scrub_text(value, known)
        for name, value in headers.items()
    }


def scrub(value: Any, secrets: Iterable[str] = ()) -> Any:
    """A JSON value with credentials replaced by ``REDACTED`` wherever they sit: values of
    secret-named keys, and every credential form inside any string."""
    return _scrub(value, [s for s in secrets if len(s) >= _MIN_SECRET], None)


def _scrub(value: Any, secrets: list[str], name: str | None) -> Any:
    if isinstance(value, dict):
        return {k: _scrub(v, secrets, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(v, secrets, name) for v in value]
    if not isinstance(value, str):
        return value
    if name is not None and is_secret_name(name):
        return REDACTED if value else value
    return scrub_text(value, secrets)


def scrub_body(raw: bytes, secrets: Iterable[str] = ()) -> bytes:
    """A body as bytes with every credential form masked by the rules of :func:`scrub`:
    JSON re-encoded with its secrets ``REDACTED``; other text scrubbed as text (and its
    ``"name": "value"`` pairs, for JSON cut short); a body with no cue of any form comes
    back as it is, after one pass over it."""
    known = []
    for secret in secrets:  # a loop: on Python 3.11 a comprehension is a frame more (every journaled request)
        if len(secret) >= _MIN_SECRET:
            known.append(secret)
    # a long body is scrubbed at once: the search for cues costs more on it than the
    # scrubbing does, once data URLs' payloads are passed over
    if len(raw) <= _DATA_MIN and _cueless(raw):
        for secret in known:  # a loop, not any(): this runs for every request the journal keeps
            # find, not in: bytes' "in" tries the operand as an integer first, at 2x the cost
            if raw.find(secret.encode("utf-8", "replace")) >= 0:
                break
        else:
            return raw
    try:
        parsed = json.loads(raw)
    except (ValueError, RecursionError):
        text = _around_data(raw.decode("utf-8", "surrogateescape"), _json_pairs)
        return scrub_text(text, known).encode("utf-8", "surrogateescape")
    try:
        clean = _scrub(parsed, known, None)
        # ASCII: a lone surrogate the body escaped stays an escape
        return raw if clean == parsed else json.dumps(clean, separators=(",", ":")).encode("ascii")
    except (ValueError, RecursionError):  # too deep to walk: scrubbed as text
        return scrub_text(raw.decode("utf-8", "surrogateescape"), known).encode("utf-8", "surrogateescape")


def _cueless(raw: bytes) -> bool:
    """Whether ``raw`` holds none of the cues of :data:`_BODY_CUE`. A body found so is
    kept (short ones, a bounded number): clients send the same body again and again, and
    one look-up costs a tenth of the search; such a body holds no secret a rule names."""
    if raw in _CUELESS:
        return True
    if _BODY_CUE.search(raw.lower()) is not None:
        return False
    if len(raw) <= _CUELESS_BYTES:
        if len(_CUELESS) >= _CUELESS_KEPT:
            _CUELESS.clear()
        _CUELESS[raw] = None
    return True


_CUELESS: dict[bytes, None] = {}
_CUELESS_KEPT, _CUELESS_BYTES = 256, 1024


def _json_pairs(text: str) -> str:
    return _JSON_PAIR.sub(_json_pair, text)


def _json_pair(match: re.Match[str]) -> str:
    if not match["value"] or not is_secret_name(match["name"]):
        return match[0]
    return f'"{match["name"]}"{match["colon"]}"{REDACTED}"'


class ScrubbedLog(logging.Filter):
    """A logging filter that scrubs each record's text by these rules (uvicorn's access log
    quotes every request's path and query: a key in ``?api_key=``, a download's signature)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(scrub_text(a) if isinstance(a, str) else a for a in record.args)
        if isinstance(record.msg, str):
            record.msg = scrub_text(record.msg)
        return True


def secrets_in(headers: Mapping[str, str], query: str = "") -> list[str]:
    """The credentials a request carries, in every form they may come back in (an
    upstream's error body quoting the key): values of secret-named headers, each word
    after an ``Authorization`` scheme, a Basic pair's parts, secret query values."""
    found: list[str] = []
    for name, value in headers.items():
        if not is_secret_name(name) or not value:
            continue
        words = value.split()
        found.append(value.strip())
        found.extend(words[1:] if len(words) > 1 else words)
        if len(words) == 2 and words[0].lower() == "basic":
            try:
                found.extend(base64.b64decode(words[1], validate=True).decode("utf-8").split(":", 1))
            except (binascii.Error, ValueError):
                pass
    for match in _PAIR.finditer(query):
        if is_secret_name(unquote(match["name"])) and match["value"]:
            found.extend({match["value"], unquote(match["value"])})
    # longest first: a key is cut whole before any part of it is
    return sorted({s for s in found if len(s) >= _MIN_SECRET}, key=len, reverse=True)
