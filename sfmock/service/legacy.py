"""The 2024 route, ``POST /v1/{model}/text-to-image``: the model in the path, the body as for
``POST /v1/images/generations`` without it.

It still answered in 2025 (it validated the body, one-hub#583), and clients still call it
(the Portkey AI gateway's ``siliconflow`` provider, one-hub) [siliconflow-api.md, "Observed
in 2026, second look"]. Model ids hold a slash (``/v1/Kwai-Kolors/Kolors/text-to-image``),
so the model is everything between ``/v1/`` and ``/text-to-image``. Every layer that treats
the generation route specially asks :func:`is_generation`, so the old route meets the same
admission, faults, journal and checks.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["GENERATION_PATH", "LEGACY_ROUTE", "is_generation", "legacy_model"]

GENERATION_PATH: Final = "/v1/images/generations"
LEGACY_ROUTE: Final = "/v1/{model:path}/text-to-image"  # Starlette's form of the route
_LEGACY = re.compile(r"/v1/(?P<model>.+)/text-to-image")


def legacy_model(path: str) -> str | None:
    """The model of an old-route path, or ``None`` when ``path`` is not the old route."""
    if not path.endswith("/text-to-image"):
        return None  # most paths: no regular expression run
    match = _LEGACY.fullmatch(path)
    return match["model"] if match else None


def is_generation(path: str) -> bool:
    """Whether ``path`` asks for a generation: the main route or the old one."""
    return path == GENERATION_PATH or legacy_model(path) is not None
