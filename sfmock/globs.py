"""Globs a client chooses (journal filters, verify patterns, scenario paths), matched
with a cache of bounded size.

``fnmatch`` keeps up to 32,768 compiled patterns for the life of the process: clients
that send many large globs would grow the server without end. Here a glob is at most
:data:`MAX_GLOB_CHARS` characters and at most :data:`CACHED_GLOBS` compiled ones are kept.
"""

from __future__ import annotations

import fnmatch
import functools
import re

__all__ = ["CACHED_GLOBS", "MAX_GLOB_CHARS", "glob_matches", "glob_problem"]

MAX_GLOB_CHARS = 1024  # longer than any path the fake serves
CACHED_GLOBS = 256


def glob_problem(pattern: str) -> str | None:
    """Why ``pattern`` may not be used as a glob (too long), or ``None``."""
    if len(pattern) > MAX_GLOB_CHARS:
        return f"a glob of {len(pattern)} characters; expected at most {MAX_GLOB_CHARS}"
    return None


@functools.lru_cache(maxsize=CACHED_GLOBS)
def _compiled(pattern: str) -> re.Pattern[str]:
    # re.compile keeps its own cache too, bounded (512 in CPython): with glob_problem's
    # bound on the size, neither can hold more than a few megabytes
    return re.compile(fnmatch.translate(pattern))


def glob_matches(name: str, pattern: str) -> bool:
    """``fnmatch.fnmatchcase(name, pattern)`` with the bounded cache; a glob over
    :data:`MAX_GLOB_CHARS` matches nothing (the edges refuse it first)."""
    if len(pattern) > MAX_GLOB_CHARS:
        return False
    return _compiled(pattern).match(name) is not None
