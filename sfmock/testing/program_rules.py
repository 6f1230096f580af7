"""The checks only a program needs, and judging one run by them and by the invariants.

A program's run is judged by the checks of :data:`ORDER`, the ones the README's table of
what programs are judged on lists: invariants of :mod:`sfmock.testing.invariants` (read
from the requests the fake recorded) and :data:`PROGRAM_CHECKS`, which read what only a
program has: its output, its exit status and the file it saved. ``errors`` and
``tolerant`` are the program's own: a program raises nothing, it prints and exits.
:func:`takes_request` decides whether ``faithful-request`` applies to a program at all.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sfmock.testing.images import downloads_fine, whole_images
from sfmock.testing.invariants import INVARIANTS, SUCCESS
from sfmock.testing.programs import PNG, TIMINGS, ProgramRun, ProgramSetup, run_program
from sfmock.transports import Exchange
from sfmock.wording import unknown as unknown_name

__all__ = ["ORDER", "PROBE_PROMPT", "PROGRAM_CHECKS", "check_names", "judge", "one_line", "takes_request"]

PROBE_PROMPT = "sfmock-probe-7340033: a red bicycle leaning on a fence"
PROBE_SEED = 7340033


def key_not_printed(result: ProgramRun) -> str | None:
    """The API key never appears in what the program prints."""
    for name, text in (("stdout", result.stdout), ("stderr", result.stderr)):
        if result.run.api_key in text:
            line = next(line for line in text.splitlines() if result.run.api_key in line)
            shown = line.replace(result.run.api_key, "<the API key>")
            if len(shown) > 160:  # around the key, and the cuts said (a number cut short misleads: a port)
                start = max(0, shown.index("<the API key>") - 60)
                cut = shown[start : start + 160]
                shown = ("..." if start else "") + cut + ("..." if start + 160 < len(shown) else "")
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
    if result.status != 0 and not run.exchanges:  # no fault can have failed it: it met none
        return (
            f"exited {result.status} without sending a request, so no fault reached it (something it "
            "keeps between runs stops it: a circuit breaker's state file that stays open, a cache of errors?)"
        )
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
    served = [image for image in whole_images(result.run.downloads) if image.startswith(PNG)]
    if result.saved in served:
        return None
    if not served:
        return f"saved {len(result.saved)} bytes to $SFMOCK_OUTPUT, but no image was served"
    return (
        f"the {len(result.saved)} bytes saved to $SFMOCK_OUTPUT are not the image served "
        f"({len(served[-1])} bytes{', a PNG' if served[-1].startswith(PNG) else ''})"
    )


def errors(result: ProgramRun) -> str | None:
    """After a non-zero exit that followed an HTTP error answer, the program's output (stdout
    and stderr) names that answer's status and trace id (or those of another error answer
    after the last success: downloads in parallel)."""
    run = result.run
    last = run.exchanges[-1] if run.exchanges else None
    if result.status in (0, None) or last is None or last.status is None or last.status < 400 or last.failure:
        return None
    text = result.stdout + result.stderr
    success = max((g.started for g in run.generations if g.status == 200 and g.failure is None), default=0.0)
    recent = [e for e in run.exchanges if e.started >= success and e.failure is None and (e.status or 0) >= 400]
    if any(not _unnamed(e, text) for e in recent):
        return None
    missing = " and ".join(_unnamed(last, text))
    return f"exited {result.status} after a {last.status}, and its output lacks {missing}{_last_line(text)}"


def tolerant(result: ProgramRun) -> str | None:
    """A successful answer is a success: no non-zero exit after a 200 (with unknown fields,
    only the documented ones, a slow body) whose image downloaded."""
    run = result.run
    attempts = run.generations
    if result.status in (0, None) or not attempts:
        return None
    last = run.outcome(len(attempts) - 1)
    whole = downloads_fine(run.downloads)
    if last in SUCCESS and attempts[-1].status == 200 and attempts[-1].failure is None and whole:
        extra = {"extra-fields": " with unknown fields", "documented-body": " holding only the documented fields"}
        text = result.stdout + result.stderr
        return f"exited {result.status} on a successful answer{extra.get(last, '')}{_last_line(text)}"
    return None


def _unnamed(exchange: Exchange, text: str) -> list[str]:
    facts = (("its status", str(exchange.status)), ("its trace id", exchange.trace_id))
    return [f"{what} ({value})" for what, value in facts if value and value not in text]


def _last_line(text: str) -> str:
    line = next((line.strip() for line in reversed(text.splitlines()) if line.strip()), "")
    return f"; it printed last: {line[:160]!r}" if line else "; it printed nothing"


ProgramCheck = Callable[[ProgramRun], "str | None"]

# the program's own checks; key-not-printed is checked first of all (it needs no schedule)
PROGRAM_CHECKS: Mapping[str, ProgramCheck] = {
    "key-not-printed": key_not_printed,
    "errors": errors,
    "tolerant": tolerant,
    "exit-status": exit_status,
    "saved-image": saved_image,
}
# what a program is judged on, in this order (the README's table): not `returns-image` (a
# program returns nothing; `saved-image` compares the file it saved) nor `secrets` (what a
# program raises is what it prints: `key-not-printed`)
ORDER: tuple[str, ...] = (
    "key-not-printed",
    "valid-requests",
    "faithful-request",
    "same-body",
    "timeouts",
    "downloads",
    "retries",
    "backoff",
    "errors",
    "tolerant",
    "exit-status",
    "saved-image",
)
# what the SDKs people use do not do, said beside the verdict it explains
_CUT_BODY = (
    "; that answer's body was cut after its headers, which HTTP SDKs that read the body outside "
    "their retry loop (the openai npm package among them) do not retry: retry the call around the SDK"
)


def check_names(selection: Sequence[str] | None) -> tuple[str, ...]:
    """The checks to apply, in order; raises :class:`ValueError` naming an unknown one."""
    if selection is None:
        return ORDER
    unknown = [name for name in selection if name not in ORDER]
    if unknown:
        raise ValueError(unknown_name("check", unknown[0], ORDER))
    return tuple(name for name in ORDER if name in selection)


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
            generations = result.run.generations
            if name == "retries" and generations and generations[-1].failure == "truncated":
                message += _CUT_BODY
            if name == "timeouts" and result.latency > 0 and result.run.hung is None:
                message += (
                    f"; in this run a generation's answer came after {result.latency:.1f}s, its latency "
                    f"(timings.inference, at most {TIMINGS['latency']:g}s in a program check)"
                )
            return name, message
    return None


def one_line(text: str) -> str:
    """``text`` on one line, for a progress line."""
    return " / ".join(line.strip() for line in text.splitlines() if line.strip())


def takes_request(setup: ProgramSetup) -> tuple[bool, str]:
    """Whether the program sends the request it is given in ``$SFMOCK_REQUEST`` (then it is
    judged on ``faithful-request``), and why.

    ``setup.judge_request`` decides when set (``--request`` sets it). Otherwise one run, every
    answer a success, gives the program another request: :data:`PROBE_PROMPT` as the prompt
    (and another seed if the request has one). The program takes its request from the
    variable if the prompt it sends contains that one's first word, or its seed is the new one.
    """
    if setup.judge_request is not None:
        return setup.judge_request, "the request was given with --request" if setup.judge_request else "told so"
    probe: dict[str, Any] = {**setup.request, "prompt": PROBE_PROMPT}
    if "seed" in setup.request:
        probe["seed"] = PROBE_SEED if setup.request["seed"] != PROBE_SEED else PROBE_SEED + 1
    result = run_program(dataclasses.replace(setup, request=probe), [])
    sent = next((body for body in map(_body, result.run.generations) if isinstance(body, dict)), None)
    if sent is None:
        return False, "it sent no JSON generation request when $SFMOCK_REQUEST held another prompt"
    prompt = sent.get("prompt")
    marker = PROBE_PROMPT.split(":", 1)[0].lower()
    follows_seed = "seed" in probe and sent.get("seed") == probe["seed"]
    if (isinstance(prompt, str) and marker in prompt.lower()) or follows_seed:
        return True, "the request it sends follows $SFMOCK_REQUEST"
    return False, (
        f"it chooses its own request: with another prompt in $SFMOCK_REQUEST it sent prompt={json.dumps(prompt)[:60]}; "
        "--request judges it on the request given"
    )


def _body(exchange: Any) -> Any:
    try:
        return json.loads(exchange.request_body)
    except ValueError:
        return None
