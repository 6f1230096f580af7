"""The public home of :mod:`sfmock.testing.checks` (``from sfmock.checks import ...``)."""

from __future__ import annotations

from sfmock.testing.checks import (
    INVARIANTS as INVARIANTS,
)
from sfmock.testing.checks import (
    CheckReport as CheckReport,
)
from sfmock.testing.checks import (
    ClientCheckFailed as ClientCheckFailed,
)
from sfmock.testing.checks import (
    ClientContext as ClientContext,
)
from sfmock.testing.checks import (
    Run as Run,
)
from sfmock.testing.checks import (
    check_client as check_client,
)

__all__ = ["INVARIANTS", "CheckReport", "ClientCheckFailed", "ClientContext", "Run", "check_client"]
