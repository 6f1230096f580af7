"""The checks only a program needs, and judging one run by them and by the invariants.

A program's run is judged by the invariants of :mod:`sfmock.testing.invariants` (read from the
requests the fake recorded) and by :data:`PROGRAM_CHECKS`, which read what only a
program has: its output, its exit status and the file it saved.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from sfmock.testing.invariants import INVARIANTS, SUCCESS
from sfmock.testing.programs import PNG, ProgramRun, is_image
from sfmock.wording import unknown as unknown_name

__all__ = ["PROGRAM_CHECKS", "check_names", "judge"]


def key_not_printed(result: ProgramRun) -> str | None:
    """The API key never appears in what the program prints."""
    for name, text in (("stdout", result.stdout), ("stderr", result.stderr)):
        if result.run.api_key in text:
            line = next(line for line in text.splitlines() if result.run.api_key in line)
            shown = line.replace(result.run.api_key, "<the API key>")[:160]
            return f"printed the API key on {name}: {shown!r}"
    return None


def exit_status(result: ProgramRun) -> str | None:
    """The exit status agrees with what happened: 0 exactly when the program got the image."""
    run = result.run
    if result.status is None:
        return "did not finish in time and was killed (does it wait forever on a request?)"
    if result.status == 0 and not result.got_image:
        if not run.generations:
            why = "it sent no generation request"
        elif not any(e.status == 200 for e in run.generations):
            why = "no generation request was answered 200"
        elif not run.downloads:
            why = "it never downloaded the image"
        else:
            why = "no image download was answered 200 with a PNG"
        return f"reported success (exit 0) without an image: {why}"
    attempts = len(run.generations)
    unfaulted = all(run.outcome(i) in SUCCESS for i in range(max(1, attempts))) and not any(
        e.fault for e in run.exchanges
    )
    if result.status != 0 and unfaulted:
        if result.got_image:
            return f"reported failure (exit {result.status}) after it got the image"
        last = f"; the last answer: {run.exchanges[-1].describe(run.exchanges[-1].started)}" if run.exchanges else ""
        return f"exited {result.status} without an image, and no fault was scheduled{last}"
    return None


def saved_image(result: ProgramRun) -> str | None:
    """After exit 0, an image saved to ``$SFMOCK_OUTPUT`` is exactly an image the fake served."""
    if result.saved is None or result.status != 0:
        return None
    served = [e.body for e in result.run.downloads if is_image(e)]
    if result.saved in served:
        return None
    if not served:
        return f"saved {len(result.saved)} bytes to $SFMOCK_OUTPUT, but no image was served"
    return (
        f"the {len(result.saved)} bytes saved to $SFMOCK_OUTPUT are not the image served "
        f"({len(served[-1])} bytes{', a PNG' if served[-1].startswith(PNG) else ''})"
    )


ProgramCheck = Callable[[ProgramRun], "str | None"]

# checked after the invariants, but key-not-printed first of all (it needs no schedule)
PROGRAM_CHECKS: Mapping[str, ProgramCheck] = {
    "key-not-printed": key_not_printed,
    "exit-status": exit_status,
    "saved-image": saved_image,
}


def check_names(selection: Sequence[str] | None) -> tuple[str, ...]:
    """The checks to apply, in order; raises :class:`ValueError` naming an unknown one."""
    order = ("key-not-printed", *INVARIANTS, "exit-status", "saved-image")
    if selection is None:
        return order
    unknown = [name for name in selection if name not in order]
    if unknown:
        raise ValueError(unknown_name("check", unknown[0], order))
    return tuple(name for name in order if name in selection)


def judge(result: ProgramRun, names: Sequence[str]) -> tuple[str, str] | None:
    """The first check of ``names`` the run breaks, as ``(name, message)``, or ``None``."""
    for name in names:
        if name in PROGRAM_CHECKS:
            message = PROGRAM_CHECKS[name](result)
        else:
            try:
                message = INVARIANTS[name](result.run)
            except AssertionError as exc:
                message = str(exc) or "assertion failed"
        if message:
            return name, message
    return None
