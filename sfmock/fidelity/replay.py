"""``sfmock serve --replay DIR``: answer generation requests with recorded real answers.

A request matches a recording by ``POST /v1/images/generations`` and its body:
``prompt`` matching (the default) compares ``model`` and ``prompt``, ``exact``
matching the whole body. The recorded 200 body is served with every image URL
replaced by a URL signed by this server, so the download works offline and expires
as usual; when the recording holds the download too, that is the picture served.

The replayed answer goes through the fake as a generated one does: key, validation,
faults, rate limits, balance and the journal all apply. A request no recording
matches gets the fake's own answer, or (``replay_miss: error``) a 404 naming the
closest recording, before anything is counted or charged. That search compares at most
:data:`COMPARED_CHARS` characters of each request, for at most :data:`SEARCH_SECONDS`,
on a worker thread (:mod:`sfmock.offload`): a huge unmatched prompt costs the server
nothing else.
"""

from __future__ import annotations

import difflib
import hashlib
import io
import json
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from PIL import Image, UnidentifiedImageError

from sfmock.contract.openapi import ModelSpec
from sfmock.errors import ApiError
from sfmock.fidelity.recording import GENERATION_PATH, Exchange
from sfmock.offload import SEARCHING
from sfmock.service.generation import Generator, output_size

__all__ = ["MATCHES", "Recordings", "ReplayGenerator", "replay_miss"]

MATCHES = ("prompt", "exact")
COMPARED_CHARS = 512  # of each request's JSON: the model and the prompt's start decide
SEARCH_SECONDS = 1.0  # then the best found so far is named


def replay_miss(closest: str | None) -> ApiError:
    """The 404 of a request no recording matches (``replay_miss: error``)."""
    message = "sfmock replay: no recording matches this request"
    return ApiError(404, {"message": message, "closest": closest})


class Recordings:
    """The recorded generations (200s) and downloads that replay can serve."""

    def __init__(self, exchanges: Sequence[Exchange], match: str = "prompt") -> None:
        if match not in MATCHES:
            raise ValueError(f"match must be one of {MATCHES}, got {match!r}")
        self.match = match
        self.generations: list[tuple[dict[str, Any], dict[str, Any], str]] = []
        for exchange in exchanges:
            found = _generation(exchange)
            if found is not None:
                self.generations.append((*found, exchange.source))
        self.downloads = {
            e.path: e.response.body
            for e in exchanges
            if e.method == "GET" and e.status == 200 and e.response.headers.get("content-type", "").startswith("image/")
        }

    def find(self, body: dict[str, Any]) -> dict[str, Any] | None:
        """The recorded answer to ``body``, or ``None``."""
        for request, answer, _ in self.generations:
            if self.match == "exact" and request == body:
                return answer
            if self.match == "prompt" and (request.get("model"), request.get("prompt")) == (
                body.get("model"),
                body.get("prompt"),
            ):
                return answer
        return None

    def closest(self, body: dict[str, Any], clock: Callable[[], float] = time.monotonic) -> str | None:
        """The file of the recording whose request looks most like ``body``: the first
        :data:`COMPARED_CHARS` of each, for :data:`SEARCH_SECONDS` at most, the likeliest
        first (difflib's cheap upper bound), so a cut search still names a close one."""
        deadline = clock() + SEARCH_SECONDS
        matcher = difflib.SequenceMatcher(None, autojunk=False)
        matcher.set_seq2(_compared(body))  # seq2 is the one difflib indexes: once, for all
        bounds = []
        for request, _, source in self.generations:
            matcher.set_seq1(_compared(request))
            bounds.append((-matcher.quick_ratio(), source, request))
        best: tuple[float, str] | None = None
        for bound, source, request in sorted(bounds, key=lambda b: (b[0], b[1])):
            if best is not None and (-bound <= best[0] or clock() > deadline):
                break  # sorted by bound: no later one can do better, or time is up
            matcher.set_seq1(_compared(request))
            score = matcher.ratio()
            if best is None or score > best[0]:
                best = (score, source)
        return None if best is None else best[1]

    async def closest_off_loop(self, body: dict[str, Any]) -> str | None:
        """:meth:`closest` on the search pool's thread."""
        return await SEARCHING.run(self.closest, body)


@dataclass(frozen=True, kw_only=True)
class ReplayGenerator(Generator):
    """A :class:`Generator` that answers from recordings first."""

    recordings: Recordings
    fallback: bool = True
    pictures: dict[str, bytes] = field(default_factory=dict)  # object digest -> recorded PNG

    def __post_init__(self) -> None:
        # every recorded picture is known up front: a URL signed before a restart still
        # serves it, and answering a request changes no state
        for _, answer, _ in self.recordings.generations:
            for key in ("images", "data"):
                for index, image in enumerate(answer.get(key) or []):
                    url = image.get("url") if isinstance(image, dict) else None
                    path = urlsplit(url).path if isinstance(url, str) else ""
                    picture = self.recordings.downloads.get(path)
                    if picture is not None and _png_size(picture) is not None:
                        self.pictures[_digest(_object_key(path), index)] = picture

    async def screen(self, body: dict[str, Any], model: ModelSpec) -> None:
        """A miss in error mode answers 404 here, before the request is counted or
        charged, the closest recording looked for off the event loop."""
        if not self.fallback and self.recordings.find(body) is None:
            raise replay_miss(await self.recordings.closest_off_loop(body))

    def image_count(self, body: dict[str, Any], model: ModelSpec) -> int:
        """The recorded answer's image count (a miss in error mode: see :meth:`screen`)."""
        answer = self.recordings.find(body)
        if answer is None:
            if not self.fallback:
                raise replay_miss(self.recordings.closest(body))
            return super().image_count(body, model)
        return max(1, len(answer.get("images", [])))

    def respond(
        self,
        body: dict[str, Any],
        model: ModelSpec,
        *,
        rng: random.Random,
        now: float,
        expired: bool = False,
        base_url: str | None = None,
    ) -> dict[str, Any]:
        """The recorded body, image URLs signed by this server."""
        answer = self.recordings.find(body)
        if answer is None:
            return super().respond(body, model, rng=rng, now=now, expired=expired, base_url=base_url)
        issued = now - self.signer.ttl if expired else now
        moved: dict[str, str] = {}
        result = json.loads(json.dumps(answer))
        for key in ("images", "data"):
            for index, image in enumerate(result.get(key) or []):
                if isinstance(image, dict) and isinstance(image.get("url"), str):
                    url = image["url"]
                    if url not in moved:
                        moved[url] = self._replayed_url(url, index, body, model, issued, base_url or self.base_url)
                    image["url"] = moved[url]
        return dict(result)

    def _replayed_url(
        self, url: str, index: int, body: dict[str, Any], model: ModelSpec, issued: float, base: str
    ) -> str:
        path = urlsplit(url).path
        picture = self.recordings.downloads.get(path)
        size = _png_size(picture) if picture is not None else None
        width, height = size or output_size(body, model, self.max_pixels)
        return self._url(base, _object_key(path), index, width, height, issued)


def _object_key(path: str) -> bytes:
    return b"replay\0" + path.encode()


def _digest(key: bytes, index: int) -> str:
    """The object digest :meth:`Generator._url` derives from ``key`` and ``index``."""
    return hashlib.sha256(key + bytes([index])).hexdigest()[:32]


def _generation(exchange: Exchange) -> tuple[dict[str, Any], dict[str, Any]] | None:
    if (exchange.method, exchange.path, exchange.status) != ("POST", GENERATION_PATH, 200):
        return None
    try:
        request, answer = exchange.request.json(), exchange.response.json()
    except ValueError:
        return None
    if not isinstance(request, dict) or not isinstance(answer, dict) or not isinstance(answer.get("images"), list):
        return None
    return request, answer


def _compared(request: dict[str, Any]) -> str:
    return json.dumps(request, sort_keys=True)[:COMPARED_CHARS]


def _png_size(data: bytes) -> tuple[int, int] | None:
    try:
        with Image.open(io.BytesIO(data)) as picture:
            return picture.size
    except (UnidentifiedImageError, OSError):
        return None
