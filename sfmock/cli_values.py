"""Command-line values through the boundary: every subcommand's, checked once after parsing.

``argparse``'s ``type=float`` takes ``nan`` and ``inf`` (and ``NaN`` passes every bound
check after it: ``serve --read-timeout nan`` would start and never answer); a value of
bytes that are not UTF-8 reaches Python as lone surrogates; a URL such as ``http://[x``
raises deep inside whatever first parses it. Each is an exit 2 naming the flag here.
"""

from __future__ import annotations

import argparse
import math

from sfmock.errors import ConfigError
from sfmock.untrusted import Untrusted, check_text, parse_url

__all__ = ["check_arguments"]

# URLs parsed here only as far as "it is a URL": each command checks the rest in its words
# (--store's form, with its password hidden, is the config's to check)
URL_FLAGS = frozenset({"public_url", "image_public_url", "upstream", "against", "store"})
PASSED_ON = frozenset({"program"})  # the program `sfmock check` runs takes its arguments as bytes


def check_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Raise :class:`ConfigError` (source ``command line``) for the first value sfmock
    cannot use: a number that is not finite, text that is not text, a malformed URL."""
    flags = _flags(parser)
    for name, value in vars(args).items():
        if name in PASSED_ON or value is None:
            continue
        flag = flags.get(name, name)
        try:
            for item in value if isinstance(value, list) else [value]:
                if isinstance(item, float) and not math.isfinite(item):
                    raise Untrusted(flag, f"expected a finite number, got {item!r}")
                if isinstance(item, str):
                    check_text(item, flag)
            if name in URL_FLAGS and isinstance(value, str) and value != "memory":
                parse_url(value, flag, schemes=None)
        except Untrusted as exc:
            raise ConfigError("command line", flag, exc.problem) from None


def _flags(parser: argparse.ArgumentParser) -> dict[str, str]:
    """Each destination's flag (its longest option string), over every subcommand."""
    found: dict[str, str] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                for dest, flag in _flags(sub).items():
                    found.setdefault(dest, flag)
        elif action.option_strings:
            found.setdefault(action.dest, max(action.option_strings, key=len))
    return found
