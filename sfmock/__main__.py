"""``python -m sfmock``: the same as the ``sfmock`` command."""

from __future__ import annotations

from sfmock.cli import main

raise SystemExit(main())
