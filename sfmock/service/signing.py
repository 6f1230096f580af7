"""Pre-signed image URLs: S3 query-string style, stateless, checked on the clock.

A URL carries everything needed to serve and check it: the object name encodes the
render seed and size, and the signature covers the name, the algorithm, the credential
scope, the issue time, the lifetime and the signed headers. No per-URL state is kept,
so any worker with the same key can serve it. Without a configured key each process
signs with a random one, so nobody can forge a URL from reading the source.

Checks run as S3 runs them: the parameters (all six, ``X-Amz-Algorithm`` of
``AWS4-HMAC-SHA256``, a well-formed date, ``X-Amz-Expires`` a number up to 604800 and a
credential ``SFMOCK/<date>/<region>/s3/aws4_request``) answer S3's ``400
AuthorizationQueryParametersError``; then the access key, the signature (``403
SignatureDoesNotMatch``) and the time (``403 AccessDenied``). A client that strips
the query, drops a parameter or double-encodes ``%2F`` is refused.
"""

from __future__ import annotations

import calendar
import functools
import hashlib
import hmac
import re
import secrets
import time
from base64 import b64encode
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Protocol
from urllib.parse import quote

from sfmock.errors import DownloadDenied

__all__ = ["OBJECT_NAMES", "SECURITY_TOKEN", "URL_TOKENS", "ObjectName", "UrlSigner", "expired_denial", "object_name"]

ALGORITHM: Final = "AWS4-HMAC-SHA256"
MAX_TTL: Final = 604_800  # S3's own ceiling for X-Amz-Expires: seven days
CLOCK_SKEW: Final = 900  # S3 accepts a request dated up to 15 minutes ahead
_NAME = re.compile(r"(?P<digest>[0-9a-f]{32})-(?P<w>[0-9]{1,5})x(?P<h>[0-9]{1,5})_(?P<i>[0-9])\.png")
# the live store's shape [seen 2026]: <13-char id>_<32 hex>_<8 hex>_<8 hex>_00001_.png, a
# ComfyUI save counter at the end; here the hex fields are the digest, width and height
_OBSERVED_NAME = re.compile(
    r"(?P<id>[0-9a-z]{13})_(?P<digest>[0-9a-f]{32})_(?P<w>[0-9a-f]{8})_(?P<h>[0-9a-f]{8})_(?P<n>[0-9]{5})_\.png"
)
OBJECT_NAMES: Final = ("sfmock", "observed")  # the object_names setting
URL_TOKENS: Final = ("none", "sts")  # the url_token setting
SECURITY_TOKEN: Final = "X-Amz-Security-Token"
# an STS session token's size as seen in live URLs (~1.3 KB before encoding) [seen 2026]
_TOKEN_BYTES: Final = 1068
_DATE = "%Y%m%dT%H%M%SZ"
ACCESS_KEY: Final = "SFMOCK"
PARAMETERS: Final = (
    "X-Amz-Algorithm",
    "X-Amz-Credential",
    "X-Amz-Date",
    "X-Amz-Expires",
    "X-Amz-SignedHeaders",
    "X-Amz-Signature",
)
_PROCESS_KEY: Final = secrets.token_bytes(32)  # when none is configured: unguessable, never stored


def object_name(digest: str, width: int, height: int, index: int, shape: str = "sfmock") -> str:
    """The text of an :class:`ObjectName` (without making one: once per image issued);
    ``shape`` ``observed`` is the live store's (see :data:`OBJECT_NAMES`)."""
    if shape == "observed":
        return f"{_task_id(digest)}_{digest}_{width:08x}_{height:08x}_{index + 1:05d}_.png"
    return f"{digest}-{width}x{height}_{index}.png"


def _task_id(digest: str) -> str:
    """13 lower-case letters and digits from ``digest``: the live names' leading id."""
    number = int(digest, 16)
    letters = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = []
    for _ in range(13):
        number, rest = divmod(number, 36)
        out.append(letters[rest])
    return "".join(out)


@dataclass(frozen=True, kw_only=True)
class ObjectName:
    """The name of a generated image: its render seed (digest), size and batch index."""

    digest: str
    width: int
    height: int
    index: int
    shape: str = "sfmock"

    def __str__(self) -> str:
        return object_name(self.digest, self.width, self.height, self.index, self.shape)

    @classmethod
    def parse(cls, text: str) -> ObjectName | None:
        """The name ``text`` denotes (in either shape), or ``None`` when no object can have it."""
        match = _NAME.fullmatch(text)
        if match is not None:
            width, height, index, shape = int(match["w"]), int(match["h"]), int(match["i"]), "sfmock"
        else:
            match = _OBSERVED_NAME.fullmatch(text)
            if match is None or match["id"] != _task_id(match["digest"]) or not 1 <= int(match["n"]) <= 10:
                return None
            width, height, index, shape = int(match["w"], 16), int(match["h"], 16), int(match["n"]) - 1, "observed"
        if width == 0 or height == 0:
            return None
        return cls(digest=match["digest"], width=width, height=height, index=index, shape=shape)


class _Mac(Protocol):
    """A keyed HMAC: :mod:`hmac`'s, or the OpenSSL one it wraps."""

    def copy(self) -> _Mac: ...
    def update(self, data: bytes, /) -> None: ...
    def hexdigest(self) -> str: ...
    def digest(self) -> bytes: ...


class UrlSigner:
    """Signs object names into query strings and checks them on download."""

    def __init__(
        self, key: str | None = None, *, ttl: int = 3600, region: str = "cn-shanghai-1", token: str = "none"
    ) -> None:
        """``key=None`` signs with this process's random key (URLs die with the process);
        ``token="sts"`` adds an STS session token to every URL, signed like the rest."""
        if not 1 <= ttl <= MAX_TTL:
            raise ValueError(f"ttl must be within 1..{MAX_TTL} seconds, got {ttl}")
        if token not in URL_TOKENS:
            raise ValueError(f"token must be one of {URL_TOKENS}, got {token!r}")
        self.token = token
        # keyed once; each signature copies it (hmac.digest looks the algorithm up in
        # OpenSSL on every call, which under load cost more than the signing itself)
        keyed = hmac.new(_PROCESS_KEY if key is None else key.encode("utf-8"), digestmod=hashlib.sha256)
        # OpenSSL's own HMAC where hmac wraps one: its copy, update and digest are single C
        # calls, where the wrapper makes four Python calls of each signature
        self._mac: _Mac = getattr(keyed, "_hmac", None) or keyed
        self.ttl = ttl
        self.region = region
        self._last: tuple[int | None, str, str] = (None, "", "")  # (second, signed suffix, query prefix)

    def _signature(self, name: str, query: Mapping[str, str]) -> str:
        signed = [query.get(p, "") for p in PARAMETERS[:-1]]
        if SECURITY_TOKEN in query or self.token != "none":  # stripped or changed, it fails
            signed.append(query.get(SECURITY_TOKEN, ""))
        message = "\n".join((name, *signed)).encode("utf-8", "surrogateescape")
        return self._hex_mac(message)

    def _hex_mac(self, message: bytes) -> str:
        mac = self._mac.copy()
        mac.update(message)
        return mac.hexdigest()

    def _mac_bytes(self, message: bytes) -> bytes:
        mac = self._mac.copy()
        mac.update(message)
        return mac.digest()

    def sign(self, name: str, issued: float) -> dict[str, str]:
        """The query parameters that make ``name`` downloadable for ``ttl`` seconds."""
        query = self._unsigned(int(issued))
        return {**query, "X-Amz-Signature": self._signature(name, query)}

    def _unsigned(self, second: int) -> dict[str, str]:
        """The parameters of a URL issued at ``second``, but its signature."""
        amz_date = time.strftime(_DATE, time.gmtime(second))
        query = {
            "X-Amz-Algorithm": ALGORITHM,
            "X-Amz-Credential": f"{ACCESS_KEY}/{amz_date[:8]}/{self.region}/s3/aws4_request",
            "X-Amz-Date": amz_date,
            "X-Amz-Expires": str(self.ttl),
            "X-Amz-SignedHeaders": "host",
        }
        if self.token == "sts":  # between SignedHeaders and Signature, as in live URLs
            query[SECURITY_TOKEN] = self._session_token(amz_date[:8])
        return query

    def _session_token(self, day: str) -> str:
        """A session token of the live size, the same all day for one signing key (as an STS
        session's is for its hours): base64, so ``+``, ``/`` and ``=`` travel percent-encoded."""
        blocks = b"".join(self._mac_bytes(f"sts\n{day}\n{i}".encode()) for i in range(_TOKEN_BYTES // 32 + 1))
        return "IQoJb3JpZ2luX2Vj" + b64encode(blocks[: _TOKEN_BYTES - 1]).decode("ascii")  # ends in "="

    def query(self, name: str, issued: float) -> str:
        """:meth:`sign` as a query string (values percent-encoded: the credential's slashes, a token's ``+/=``).

        What does not depend on ``name`` is built once per second of ``issued`` (the last
        second is kept: a busy second signs many URLs)."""
        second = int(issued)
        cached = self._last
        if cached[0] != second:
            unsigned = self._unsigned(second)
            signed = "".join("\n" + value for value in unsigned.values())  # the order _signature reads
            text = "".join(f"{k}={quote(v, safe='')}&" for k, v in unsigned.items()) + "X-Amz-Signature="
            cached = self._last = (second, signed, text)
        message = (name + cached[1]).encode("utf-8", "surrogateescape")
        return cached[2] + self._hex_mac(message)

    def verify(self, name: str, query: Mapping[str, str], now: float) -> None:
        """Raise :class:`DownloadDenied` unless ``query`` is a live signature for ``name``."""
        issued, lifetime = self._check_parameters(query)
        given = query["X-Amz-Signature"].encode("utf-8", "surrogateescape")
        if not hmac.compare_digest(given, self._signature(name, query).encode()):
            raise DownloadDenied(
                403,
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you provided. "
                "Check your key and signing method.",
            )
        expires = query["X-Amz-Expires"]
        if issued - now > CLOCK_SKEW:
            raise DownloadDenied(403, "AccessDenied", "Request is not valid yet")
        if now >= issued + lifetime:
            raise expired_denial(issued + lifetime, now, expires)

    def _check_parameters(self, query: Mapping[str, str]) -> tuple[float, int]:
        """(issue time, lifetime) of a query whose parameters are well formed, or S3's refusal."""
        if not any(p in query for p in PARAMETERS):
            raise DownloadDenied(403, "AccessDenied", "Access Denied")  # anonymous, on a private bucket
        if not all(p in query for p in PARAMETERS):
            raise _parameter_error(
                "Query-string authentication version 4 requires the X-Amz-Algorithm, X-Amz-Credential, "
                "X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and X-Amz-Expires parameters."
            )
        if query["X-Amz-Algorithm"] != ALGORITHM:
            raise _parameter_error(f'X-Amz-Algorithm only supports "{ALGORITHM}"')
        amz_date, expires = query["X-Amz-Date"], query["X-Amz-Expires"]
        try:
            issued = _parse_date(amz_date)
        except ValueError:
            raise _parameter_error("X-Amz-Date must be in the ISO8601 Long Format \"yyyyMMdd'T'HHmmss'Z'\"") from None
        if expires.startswith("-") and expires[1:].isascii() and expires[1:].isdigit():
            raise _parameter_error("X-Amz-Expires must be non-negative")  # S3's words for a negative lifetime
        if not (expires.isascii() and expires.isdigit()):
            raise _parameter_error("X-Amz-Expires should be a number")
        if len(expires) > 12:  # a number, too long to be a week: said as S3 says any lifetime past a week
            raise _parameter_error(f"X-Amz-Expires must be less than a week (in seconds) that is {MAX_TTL}")
        lifetime = int(expires)
        if lifetime > MAX_TTL:
            raise _parameter_error(f"X-Amz-Expires must be less than a week (in seconds) that is {MAX_TTL}")
        self._check_credential(query["X-Amz-Credential"], amz_date)
        return issued, lifetime

    def _check_credential(self, credential: str, amz_date: str) -> None:
        parts = credential.split("/")
        if len(parts) != 5:
            raise _parameter_error(
                "Error parsing the X-Amz-Credential parameter; the Credential is mal-formed; "
                'expecting "<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request".'
            )
        access_key, day, region, service, terminal = parts
        if day != amz_date[:8]:
            raise _parameter_error("Invalid credential date. Date is not the same as X-Amz-Date.")
        if region != self.region:
            raise _parameter_error(
                f"Error parsing the X-Amz-Credential parameter; the region '{region[:64]}' is wrong; "
                f"expecting '{self.region}'"
            )
        if service != "s3":
            raise _parameter_error(
                f'Error parsing the X-Amz-Credential parameter; incorrect service "{service[:64]}". '
                'This endpoint belongs to "s3".'
            )
        if terminal != "aws4_request":
            raise _parameter_error(
                f'Error parsing the X-Amz-Credential parameter; incorrect terminal "{terminal[:64]}". '
                'This endpoint uses "aws4_request".'
            )
        if access_key != ACCESS_KEY:
            raise DownloadDenied(
                403, "InvalidAccessKeyId", "The AWS Access Key Id you provided does not exist in our records."
            )

    @staticmethod
    def issued_at(query: Mapping[str, str]) -> float:
        """The Unix time a verified query was signed at."""
        return _parse_date(query["X-Amz-Date"])


def _parameter_error(message: str) -> DownloadDenied:
    return DownloadDenied(400, "AuthorizationQueryParametersError", message)


def expired_denial(expired_at: float | None = None, now: float | None = None, expires: str = "") -> DownloadDenied:
    """Object storage's answer to an expired pre-signed URL."""
    extra = {}
    if expired_at is not None and now is not None:
        extra = {"Expires": _iso(expired_at), "ServerTime": _iso(now), "X-Amz-Expires": expires}
    return DownloadDenied(403, "AccessDenied", "Request has expired", **extra)


@functools.lru_cache(maxsize=256)  # twice a download, and a busy second's URLs share one date
def _parse_date(amz_date: str) -> float:
    """``20260101T000000Z`` -> Unix time (``ValueError`` if malformed); strptime is ~10x slower."""
    if (
        len(amz_date) != 16
        or amz_date[8] != "T"
        or amz_date[15] != "Z"
        or not amz_date[:8].isdigit()
        or not amz_date[9:15].isdigit()
    ):
        raise ValueError(f"not an X-Amz-Date: {amz_date!r}")
    fields = (amz_date[0:4], amz_date[4:6], amz_date[6:8], amz_date[9:11], amz_date[11:13], amz_date[13:15])
    year, month, day, hour, minute, second = map(int, fields)
    if not (1 <= month <= 12 and 1 <= day <= 31 and hour < 24 and minute < 60 and second < 61):
        raise ValueError(f"not an X-Amz-Date: {amz_date!r}")
    return float(calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0)))


def _iso(when: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(when)))
