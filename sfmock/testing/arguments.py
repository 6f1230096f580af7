"""The arguments of a client check, checked once for ``check_client`` and ``sfmock check``.

Both entry points hand their arguments to :func:`check_arguments` before anything runs,
so an argument no check could honour (no outcome to draw, a minimum of attempts above
the maximum, a request the service would refuse) is refused there, naming the argument
and what it takes, instead of a verdict that blames the client. The error,
:class:`ArgumentError`, is worded for Python (``argument outcomes``) or, by :meth:`~ArgumentError.option`,
for the command line (``--outcomes``).
"""

from __future__ import annotations

import functools
import math
import sys
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from sfmock.contract.openapi import load_contract
from sfmock.contract.validation import RequestValidator
from sfmock.testing.strategies import OUTCOMES
from sfmock.wording import unknown

__all__ = ["DEFAULT_REQUEST", "ArgumentError", "check_arguments", "check_request", "chosen_names", "default_request"]

DEFAULT_REQUEST: Mapping[str, Any] = {"model": "Kwai-Kolors/Kolors", "prompt": "a lighthouse at dawn", "seed": 42}
STRICT_SIZE = "1024x1024"  # strict mode requires an image_size (Kolors' default size)


def default_request(*, strict: bool) -> dict[str, Any]:
    """The request of a check that is given none: :data:`DEFAULT_REQUEST`, with the
    ``image_size`` strict mode requires when the fake is strict (so the fake accepts it)."""
    return {**DEFAULT_REQUEST, "image_size": STRICT_SIZE} if strict else dict(DEFAULT_REQUEST)


class ArgumentError(ValueError):
    """An argument of a check that no check can run with: which one, and what it takes."""

    def __init__(self, argument: str, problem: str) -> None:
        self.argument = argument
        self.problem = problem
        super().__init__(f"argument {argument}: {problem}")

    def option(self) -> str:
        """The message with the command line's name of the argument (``--min-attempts``)."""
        return f"--{self.argument.replace('_', '-')}: {self.problem}"


def check_arguments(
    *,
    request: Any,
    outcomes: Sequence[str] | None,
    schedule: Sequence[str] | None,
    min_attempts: int,
    max_attempts: int,
    strict: bool,
    max_total_wait: float | None = None,
    hang_bound: float | None = None,
    budget: float | None = None,
) -> None:
    """Raise :class:`ArgumentError` for the first argument a check cannot run with."""
    if schedule is not None:
        _known("schedule", schedule, " in the schedule")
    if outcomes is not None:
        chosen_names("outcomes", outcomes, OUTCOMES, "outcome")
    for name, value in (("min_attempts", min_attempts), ("max_attempts", max_attempts)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ArgumentError(name, f"expected a whole number of attempts, at least 1; got {value!r}")
    if min_attempts > max_attempts:
        raise ArgumentError(
            "min_attempts",
            f"{min_attempts} is more than the maximum of attempts ({max_attempts}): no client can make "
            f"at least {min_attempts} attempts and at most {max_attempts}",
        )
    bounds = (("max_total_wait", max_total_wait, True), ("hang_bound", hang_bound, False), ("budget", budget, False))
    for name, seconds, zero in bounds:
        if seconds is None:
            continue
        number = not isinstance(seconds, bool) and isinstance(seconds, int | float) and math.isfinite(seconds)
        if not number or seconds < 0 or (seconds == 0 and not zero):
            limit = "0 or more" if zero else "more than 0"
            raise ArgumentError(name, f"expected a finite number of seconds, {limit}; got {seconds!r}")
    check_request(request, strict=strict)


def chosen_names(argument: str, names: Sequence[Any], choices: Collection[str], what: str) -> None:
    """A list the check picks from (outcomes, checks): not empty, and every name known."""
    if not names:
        raise ArgumentError(
            argument, f"expected at least one {what} (an empty list checks nothing); of: {', '.join(choices)}"
        )
    for name in names:
        if isinstance(name, str) and name not in choices:
            raise ArgumentError(argument, unknown(what, name, choices))


def _known(argument: str, names: Sequence[str], where: str) -> None:
    for name in names:
        if name not in OUTCOMES:
            raise ArgumentError(argument, unknown("outcome", name, OUTCOMES, where=where))


def check_request(request: Any, *, strict: bool) -> None:
    """The generation request of a check: a body the service accepts (under strict rules when
    the fake runs strict), since a client that sends it faithfully must not be blamed."""
    if not isinstance(request, Mapping):
        raise ArgumentError("request", f"expected a JSON object, the generation request body; got {request!r:.80}")
    validator = _validator()
    contract = validator.contract
    model = request.get("model")
    if not isinstance(model, str) or model not in contract.models:
        if not isinstance(model, str):
            raise ArgumentError("request", f"expected a 'model' naming a model, of: {', '.join(contract.models)}")
        raise ArgumentError("request", unknown("model", model, contract.models) + " (the contract's models)")
    problem = validator.first_error(dict(request), strict=strict)
    if problem is not None:
        mode = "strict " if strict else ""
        raise ArgumentError("request", f"the service would refuse it (it breaks the {mode}contract): {problem}")


@functools.cache
def _validator() -> RequestValidator:
    return RequestValidator(load_contract())


def refuse_patched_threads() -> None:
    """A process whose threads and clocks gevent's ``monkey.patch_all()`` replaced cannot host a
    check: its fake server runs on a thread of its own and its virtual clock stands in for
    ``time`` (a check there crashed or hung). Refused at once, saying so."""
    monkey = sys.modules.get("gevent.monkey")
    patched = getattr(monkey, "is_module_patched", None)
    if patched is not None and (patched("threading") or patched("time")):
        raise ArgumentError(
            "client",
            "gevent's monkey.patch_all() has replaced threading and time in this process, which the check's "
            "fake server and virtual clock run on: check the client in a process without the patch (gevent "
            "itself, unpatched, works), or as a program: sfmock check -- python client.py",
        )
