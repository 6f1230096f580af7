"""One budget for what every session of a server holds together (journal bytes, open-mode
accounts), so that the documented bounds hold whatever the number of sessions.

Each session's journal and account list keep their own bound as before, and also add
what they hold to a shared :class:`Tally`. When an addition takes the total over its
limit, the tally asks :attr:`Tally.shed` (set by :class:`~sfmock.chaos.sessions.Sessions`)
to push out the least recently used named sessions other than the one adding, until
the total fits: a session's own recent entries are not lost because another is noisy
while the total fits, and when it does not, the sessions nobody used for longest start
over, as those beyond the session count do. With no other session left to push out,
the adding session trims its own oldest (its caller does that, told by :meth:`add`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

__all__ = ["Tally"]


class Tally:
    """A running total of one kind of holding across sessions, and its limit; thread-safe."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self._lock = threading.Lock()
        # pushes out the least recently used named sessions but ``owner`` (None: the default
        # session) until this tally fits; set by the sessions, absent for a lone journal
        self.shed: Callable[[Tally, str | None], None] | None = None

    def add(self, delta: int, owner: str | None) -> bool:
        """Count ``delta`` more held by ``owner``'s session; ``True`` while the total is
        still over the limit after other sessions were pushed out (the owner then trims
        its own). Called without the caller's own lock held: shedding takes other locks."""
        with self._lock:
            self.used += delta
            over = self.used > self.limit
        if not over or delta <= 0:
            return False
        if self.shed is not None:
            self.shed(self, owner)
        with self._lock:
            return self.used > self.limit

    def over(self) -> bool:
        with self._lock:
            return self.used > self.limit
