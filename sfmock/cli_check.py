"""``sfmock check [options] -- COMMAND``: a program in any language as the client under test.

The command line of :func:`sfmock.testing.program_check.check_program`: the options, their
checks (exit status 2 with a message naming the option), the progress lines, the JUnit
report and the exit status (0 passed, 1 the client failed a check, 2 usage or
infrastructure error).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Any

from sfmock.errors import ConfigError

__all__ = ["MAX_JOBS", "add_check_parser", "check"]

MAX_JOBS = 32  # each job is a fake and a client's processes: more only thrash the machine


def add_check_parser(commands: Any) -> None:
    """``sfmock check [options] -- COMMAND ...``: a program in any language as the client under test."""
    check = commands.add_parser(
        "check",
        help="check a program (any language) as a client of the API",
        description=(
            "Run COMMAND as the client under test, again and again, each time against a fake of its own "
            "that follows a generated schedule of answers; judge each run; shrink a failure to the "
            "smallest schedule. Exit status: 0 passed, 1 the client failed a check, 2 usage or "
            "infrastructure error (e.g. the program could not start)."
        ),
    )
    # the default is sfmock.testing.budget.BUDGET, check_client's too (not imported here: the CLI starts light)
    check.add_argument("--budget", type=float, default=60.0, metavar="S", help="seconds the search may take (60)")
    jobs = f"runs at a time, each on its own fake (2, at most {MAX_JOBS})"
    check.add_argument("--jobs", type=int, default=2, metavar="N", help=jobs)
    check.add_argument("--seed", type=int, default=0, help="seed of the search and of the fake (0)")
    check.add_argument(
        "--max-examples", type=int, default=100, metavar="N", help="schedules the random search tries at most (100)"
    )
    check.add_argument("--timeout", type=float, default=30.0, metavar="S", help="time limit of one run (30)")
    check.add_argument(
        "--schedule",
        action=_ListOption,
        names=_outcome_names,
        help="run exactly this schedule (comma-separated outcomes, one per request; '' = all ok)",
    )
    check.add_argument(
        "--outcomes",
        action=_ListOption,
        names=_outcome_names,
        help="outcomes the search may use (comma-separated; default: those the fake as configured can give)",
    )
    check.add_argument("--checks", action=_ListOption, names=_check_names, help="checks to apply (default all)")
    check.add_argument(
        "--request",
        metavar="JSON",
        help="the generation request, given in $SFMOCK_REQUEST; the program is judged on sending it (faithful-request)",
    )
    check.add_argument(
        "--config", metavar="FILE", help="the fake's settings (as for serve: strict, accounts, limits, ...)"
    )
    check.add_argument("--min-attempts", type=int, default=3, metavar="N", help="tries a transient failure deserves")
    check.add_argument("--max-attempts", type=int, default=6, metavar="N", help="tries never to exceed")
    check.add_argument("--junit", metavar="FILE", help="also write a JUnit XML report to FILE")
    check.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    check.add_argument("program", nargs=argparse.REMAINDER, metavar="-- COMMAND", help="the program and its arguments")


class _ListOption(argparse.Action):
    """A comma-separated ``LIST`` option whose ``--help`` names the values it takes; they
    are looked up only when help is shown (they live in modules slow to import)."""

    def __init__(self, option_strings: list[str], dest: str, *, names: Callable[[], Sequence[str]], **kw: Any) -> None:
        self._names = names
        super().__init__(option_strings, dest, metavar="LIST", **kw)

    @property
    def help(self) -> str:
        return f"{self._text}; of: {', '.join(self._names())}"

    @help.setter
    def help(self, text: str) -> None:
        self._text = text

    def __call__(
        self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any, _: Any = None
    ) -> None:
        setattr(namespace, self.dest, values)


def _outcome_names() -> Sequence[str]:
    from sfmock.testing.strategies import OUTCOMES

    return list(OUTCOMES)


def _check_names() -> Sequence[str]:
    from sfmock.testing.program_rules import check_names

    return check_names(None)


def check(args: argparse.Namespace) -> int:
    """Run ``sfmock check``; its exit status."""
    import shlex
    import time

    from sfmock.config import Settings, load_settings
    from sfmock.documents import DocumentError, loads_json
    from sfmock.testing.arguments import ArgumentError, default_request
    from sfmock.testing.junit import write_error, write_report
    from sfmock.testing.program_check import check_program
    from sfmock.testing.programs import ProgramError, ProgramSetup, kill_running

    command = args.program[1:] if args.program[:1] == ["--"] else args.program
    problem = None
    if not command:
        problem = "give the program to check after --, e.g. sfmock check -- node client.mjs"
    elif (unusable := _unusable_number(args)) is not None:
        problem = unusable
    elif args.jobs > MAX_JOBS:
        problem = f"--jobs: {args.jobs} is more than {MAX_JOBS}; expected 1 to {MAX_JOBS} runs at a time"
    elif args.junit is not None:
        problem = _unwritable(args.junit)
    request = None
    if args.request is not None:
        try:
            request = loads_json(args.request)  # the boundary's reader: no NaN, no lone surrogate
        except DocumentError as exc:
            problem = f"--request: not JSON we can use ({exc}); expected a JSON object, the generation request body"
        else:
            if not isinstance(request, dict):
                problem = "--request: expected a JSON object, the generation request body"
    settings = Settings()
    if problem is None and args.config is not None:
        try:
            settings = load_settings(args.config)
        except ConfigError as exc:
            problem = str(exc)
    if problem is not None:
        print(f"sfmock check: error: {problem}", file=sys.stderr)
        return 2
    if request is None:  # the default, with what strict mode requires when the settings are strict
        request = default_request(strict=settings.strict)
    started = time.monotonic()

    def progress(line: str) -> None:
        if not args.quiet:
            print(f"sfmock check: {line}", file=sys.stderr, flush=True)

    setup = ProgramSetup(
        command=tuple(command),
        request=request,
        timeout=args.timeout,
        seed=args.seed,
        min_attempts=args.min_attempts,
        max_attempts=args.max_attempts,
        settings=settings,
        config=args.config,
        judge_request=True if args.request is not None else None,
    )
    try:
        report = check_program(
            setup,
            checks=_names(args.checks),
            outcomes=_names(args.outcomes),
            schedule=_names(args.schedule),
            budget=args.budget,
            jobs=args.jobs,
            max_examples=args.max_examples,
            progress=progress,
        )
    except KeyboardInterrupt:
        kill_running()
        print("sfmock check: interrupted", file=sys.stderr)
        return 130
    except (ProgramError, ValueError) as exc:
        message = exc.option() if isinstance(exc, ArgumentError) else str(exc)  # named as the option
        print(f"sfmock check: error: {message}", file=sys.stderr)
        if args.junit:
            write_error(args.junit, shlex.join(command), message)
        return 2
    print(report.text(), end="")
    if args.junit:
        try:
            write_report(args.junit, report)
        except OSError as exc:  # checked before the run; the disk may still fill up
            print(f"sfmock check: error: --junit: {args.junit}: cannot be written: {exc}", file=sys.stderr)
            return 2
    progress(f"done in {time.monotonic() - started:.1f}s")
    return 0 if report.passed else 1


def _unusable_number(args: argparse.Namespace) -> str | None:
    """The first option whose number cannot be used, said as ``--jobs: 0 is not positive;
    expected ...``."""
    expected = {
        "--budget": (args.budget, "seconds the search may take, more than 0"),
        "--jobs": (args.jobs, "runs at a time, at least 1"),
        "--max-examples": (args.max_examples, "schedules to try, at least 1"),
        "--timeout": (args.timeout, "seconds one run may take, more than 0"),
    }
    for flag, (value, what) in expected.items():
        if value <= 0:
            return f"{flag}: {value:g} is not positive; expected {what}"
    if not 0 <= args.seed <= _MAX_SEED:  # was a traceback from the fake's settings, exit 1
        what = f"a whole number from 0 to {_MAX_SEED}, the seed of the search and of its fakes"
        return f"--seed: {args.seed} is out of range; expected {what}"
    return None


_MAX_SEED = 2**63 - 1


def _unwritable(path: str) -> str | None:
    """Why the JUnit report could not be written to ``path`` at the end, if it could not:
    said before the run rather than after it."""
    import os

    folder = os.path.dirname(path) or "."
    if os.path.isdir(path):
        return f"--junit: {path} is a folder; expected a file to write the JUnit XML report to"
    if not os.path.isdir(folder):
        return f"--junit: {path}: the folder {folder} does not exist; expected a file in an existing folder"
    if not os.access(path if os.path.exists(path) else folder, os.W_OK):
        return f"--junit: {path} cannot be written (permission denied); expected a writable file"
    return None


def _names(text: str | None) -> list[str] | None:
    """A comma-separated option as a list ('' is the empty list)."""
    if text is None:
        return None
    return [name.strip() for name in text.split(",") if name.strip()]
