"""How messages word things, in one place: "did you mean ..." for a misspelt name (config
keys, scenario fields, marker keywords, fault items, CLI names: every error that refuses a
name), and counts with the noun in the right number ("1 run", "2 runs")."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = ["closest", "did_you_mean", "plural", "unknown"]

# a name is compared with at most this many characters: a typo is short, and difflib's
# cost grows with the product of the lengths (a client can send a long one)
_LONGEST = 64
_SPREAD = 0.1  # choices this much less alike than the closest one are not offered beside it


def closest(name: str, choices: Iterable[str], *, limit: int = 3) -> list[str]:
    """The choices that look like ``name``, closest first (none for a name far from all)."""
    word = name[:_LONGEST]
    pool = [str(choice) for choice in choices]
    by_case = {choice.lower(): choice for choice in pool}
    if word.lower() in by_case and by_case[word.lower()] != name:
        return [by_case[word.lower()]]  # a difference of case alone
    found = difflib.get_close_matches(word, pool, n=limit, cutoff=0.6)
    if len(found) < 2:
        return found
    # only the ones about as close as the best: 'url_tl' means 'url_ttl', not 'url_token' too
    scores = [difflib.SequenceMatcher(None, choice, word).ratio() for choice in found]
    return [choice for choice, score in zip(found, scores, strict=True) if score >= scores[0] - _SPREAD]


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """``"did you mean 'url_ttl'?"`` for a close choice, else ``""``."""
    found = closest(name, choices)
    if not found:
        return ""
    return "did you mean " + " or ".join(repr(choice) for choice in found) + "?"


def unknown(what: str, name: str, choices: Iterable[str], *, where: str = "") -> str:
    """``"unknown check 'retires'; did you mean 'retries'? expected one of a, b, ..."``: the
    message for a name that is none of ``choices``; the closest first, then them all."""
    pool = [str(choice) for choice in choices]
    hint = did_you_mean(name, pool)
    return f"unknown {what} {name!r}{where}; " + (f"{hint} " if hint else "") + f"expected one of {', '.join(pool)}"


def plural(count: int, noun: str, many: str | None = None) -> str:
    """``plural(1, "run")`` is ``"1 run"``, ``plural(3, "run")`` is ``"3 runs"``; ``many``
    for a noun that does not take an s (``plural(2, "entry", "entries")``)."""
    return f"{count} {noun if count == 1 else many or noun + 's'}"
