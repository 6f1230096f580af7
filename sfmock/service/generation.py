"""Turning a valid generation request into the 200 body, without any HTTP.

Pure apart from the injected random generator and clock reading: the same request,
seed and time give the same body. Images are not stored: each URL names the render
seed and size of its picture and is signed (see :mod:`sfmock.service.signing`).
"""

from __future__ import annotations

import functools
import hashlib
import math
import random
from dataclasses import dataclass
from typing import Any

from sfmock.contract.openapi import Contract, ModelSpec, parse_size
from sfmock.imaging import probe_data_url
from sfmock.service.imagehost import IMAGE_PREFIX
from sfmock.service.signing import UrlSigner, object_name

__all__ = ["Generator", "output_size", "prompt_tokens"]

MAX_SEED = 9_999_999_999
MAX_SIDE = 4096  # an edit's output is at most this wide and high, whatever the input's aspect


@dataclass(frozen=True, kw_only=True)
class Generator:
    """Builds generation responses; one per app."""

    contract: Contract
    signer: UrlSigner
    base_url: str
    image_prefix: str = IMAGE_PREFIX
    object_names: str = "sfmock"  # or "observed": the live store's shape (the object_names setting)

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
        """The 200 body for a request already checked against the contract.

        ``expired`` signs the image URLs as if issued ``url_ttl`` seconds ago (a fault);
        ``base_url`` replaces the configured one (the request's own origin, or a socket's).
        """
        defaults = self.contract.request_defaults()
        seed = body.get("seed")
        if seed is None:
            seed = rng.randrange(MAX_SEED + 1)  # randint(0, MAX_SEED)'s draw, one call less
        seed = int(seed)
        steps = int(body.get("num_inference_steps", defaults["num_inference_steps"]))
        width, height = output_size(body, model, self.max_pixels)
        count = self.image_count(body, model)
        key = f"{model.id}\0{body['prompt']}\0{seed}\0{width}x{height}".encode()
        issued = now - self.signer.ttl if expired else now
        base = base_url or self.base_url
        images = []
        for index in range(count):  # a loop: on Python 3.11 a comprehension is a frame more
            images.append({"url": self._url(base, key, index, width, height, issued)})
        jitter = 0.85 + 0.3 * _sha256(key).digest()[0] / 255
        megapixels = width * height / 1_048_576
        inference = max(0.001, round(model.seconds_per_step * steps * megapixels * count * jitter, 3))
        return {
            "images": images,
            "data": list(map(dict, images)),  # copies, as [dict(image) for image in images]
            "timings": {"inference": inference},
            "seed": seed,
            "shared_id": "0",
            "created": int(now),
        }

    async def screen(self, body: dict[str, Any], model: ModelSpec) -> None:
        """Refuse a checked request before it is counted or charged (replay's miss); the
        fake refuses none."""

    def image_count(self, body: dict[str, Any], model: ModelSpec) -> int:
        """How many images the request makes: ``batch_size`` where the model batches."""
        if not model.batch:
            return 1
        return int(body.get("batch_size", self.contract.request_defaults()["batch_size"]))

    @functools.cached_property  # read on every request
    def max_pixels(self) -> int:
        limit: int = self.contract.request_fields["properties"]["image_size"]["x-sfmock-max-pixels"]
        return limit

    def _url(self, base: str, key: bytes, index: int, width: int, height: int, now: float) -> str:
        digest = _sha256(key + bytes([index])).hexdigest()[:32]
        name = object_name(digest, width, height, index, self.object_names)
        return f"{base}{self.image_prefix}{name}?{self.signer.query(name, now)}"


_SHA256 = hashlib.sha256()


def _sha256(data: bytes) -> Any:
    """``hashlib.sha256(data)``, copied from one made at import (the constructor looks the
    algorithm up in OpenSSL each time: under load, more than the hashing costs)."""
    digest = _SHA256.copy()
    digest.update(data)
    return digest


def prompt_tokens(body: dict[str, Any]) -> int:
    """Tokens a request counts for TPM/TPD: about one per four bytes of prompt text."""
    text = body.get("prompt", "") + body.get("negative_prompt", "")
    return max(1, math.ceil(len(text.encode("utf-8")) / 4))


def output_size(body: dict[str, Any], model: ModelSpec, max_pixels: int) -> tuple[int, int]:
    """The size of the picture: the request's, the input image's, or the model default.

    Edit models follow a data-URL input image, scaled down to ``max_pixels`` and to
    :data:`MAX_SIDE` a side if larger (so every URL downloads, whatever the aspect); a
    URL input is never fetched, so they fall back to the model's default size.
    """
    if model.output_size == "input":
        image = body.get("image", "")
        try:
            width, height = probe_data_url(image) if image.startswith("data:") else model.default_size
        except ValueError:
            width, height = model.default_size
        if width * height > max_pixels:
            scale = math.sqrt(max_pixels / (width * height))
            width, height = max(1, int(width * scale)), max(1, int(height * scale))
        if max(width, height) > MAX_SIDE:
            scale = MAX_SIDE / max(width, height)
            width, height = max(1, min(MAX_SIDE, int(width * scale))), max(1, min(MAX_SIDE, int(height * scale)))
        return width, height
    if "image_size" in body:
        return parse_size(body["image_size"])
    return model.default_size
