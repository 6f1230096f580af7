"""The public home of :mod:`sfmock.testing.strategies` (``from sfmock.strategies import ...``)."""

from __future__ import annotations

from sfmock.testing.strategies import (
    DOWNLOAD_FAULTS as DOWNLOAD_FAULTS,
)
from sfmock.testing.strategies import (
    OUTCOMES as OUTCOMES,
)
from sfmock.testing.strategies import (
    PERMANENT as PERMANENT,
)
from sfmock.testing.strategies import (
    SUCCESS as SUCCESS,
)
from sfmock.testing.strategies import (
    TRANSIENT as TRANSIENT,
)
from sfmock.testing.strategies import (
    drawn_outcomes as drawn_outcomes,
)
from sfmock.testing.strategies import (
    generation_requests as generation_requests,
)
from sfmock.testing.strategies import (
    invalid_generation_requests as invalid_generation_requests,
)
from sfmock.testing.strategies import (
    responses as responses,
)
from sfmock.testing.strategies import (
    schedules as schedules,
)

__all__ = [
    "DOWNLOAD_FAULTS",
    "OUTCOMES",
    "PERMANENT",
    "SUCCESS",
    "TRANSIENT",
    "drawn_outcomes",
    "generation_requests",
    "invalid_generation_requests",
    "responses",
    "schedules",
]
