"""Where loaded modules bind a function under a name of their own (``from time import
monotonic``, ``from trio import run``): the names a check patches to put a client on its
virtual clock (:mod:`sfmock.testing.vtime`, :mod:`sfmock.testing.vtrio`).

A test process holds a thousand modules and fifty thousand module globals; a check looks
through them once. Most modules bind none of the few functions sought, and one pass in C
over a module's values (their identities against the set sought) tells so, a fraction of
the cost of looking at each name in Python.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from typing import Any

__all__ = ["bound_names"]


def bound_names(functions: Iterable[Any], skip: Callable[[str], bool]) -> list[tuple[dict[str, Any], str, Any]]:
    """``(namespace, name, function)`` for every global of a loaded module (not ``skip``-ped
    by its module name) bound to one of ``functions``, by identity."""
    sought = {id(function): function for function in functions}
    found = []
    for module_name, module in list(sys.modules.items()):
        namespace = getattr(module, "__dict__", None)
        if not isinstance(namespace, dict) or skip(module_name):
            continue
        try:
            if sought.keys().isdisjoint(map(id, namespace.values())):
                continue
        except RuntimeError:  # another thread added a global meanwhile: look at each name
            pass
        for name, value in list(namespace.items()):
            if id(value) in sought and sought[id(value)] is value:
                found.append((namespace, name, value))
    return found
