"""Programs run so that the check owns them: at the time limit, and when a program exits,
everything it started is gone, and the caller learns which of the two happened.

On Linux each program runs under :mod:`sfmock.testing.reaper`, a small parent that is a
child subreaper: helpers that leave the program's process group or session (``setsid``)
stay in its tree and are killed with the rest, so none outlives the run or holds the
program's stdout open after it. Elsewhere the program gets a process group of its own,
killed whole at the time limit (a helper that leaves it escapes).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

__all__ = ["REAPER", "StartFailed", "run_owned", "stop_all"]

REAPER = Path(__file__).resolve().with_name("reaper.py")
GRACE = 10.0  # seconds the reaper has to kill a tree before it is killed itself
_USE_REAPER = sys.platform == "linux" and os.path.isdir("/proc/self")

_LIVE: set[subprocess.Popen[bytes]] = set()
_LIVE_LOCK = threading.Lock()


class StartFailed(Exception):
    """The program could not be started (the message says why)."""


def run_owned(
    command: Sequence[str], *, env: Mapping[str, str], cwd: str | None, timeout: float
) -> tuple[int | None, bytes, bytes]:
    """Run ``command`` to its end or for ``timeout`` seconds: its exit status (``None``:
    killed at the time limit), stdout and stderr. Nothing it started is left running."""
    if not _USE_REAPER:
        return _run_grouped(command, env=env, cwd=cwd, timeout=timeout)
    read_end, write_end = os.pipe()
    try:
        process = _start([sys.executable, "-I", "-S", str(REAPER), str(write_end), "--", *command], env, cwd, write_end)
    finally:
        os.close(write_end)
    with os.fdopen(read_end, "r") as report:
        first = report.readline().strip()
        if not first.startswith("started"):
            process.communicate()
            raise StartFailed(first.removeprefix("error ") or "the reaper did not start")
        timed_out = False
        with _LIVE_LOCK:
            _LIVE.add(process)
        try:
            out, err = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            out, err = _stop(process)
        except BaseException:  # interrupted (Ctrl+C): the program must not outlive the check
            _stop(process)
            raise
        finally:
            with _LIVE_LOCK:
                _LIVE.discard(process)
        last = report.readline().strip()
    if timed_out or not last.startswith("status "):
        return None if timed_out else process.returncode, out, err
    return int(last.removeprefix("status ")), out, err


def stop_all() -> None:
    """Stop every program still running, with everything it started (on Ctrl+C)."""
    with _LIVE_LOCK:
        running = list(_LIVE)
    for process in running:
        _signal(process, signal.SIGTERM if _USE_REAPER else signal.SIGKILL)


def _start(command: list[str], env: Mapping[str, str], cwd: str | None, *fds: int) -> subprocess.Popen[bytes]:
    try:
        return subprocess.Popen(
            command,
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,  # a process group of its own: the last resort kills it whole
            pass_fds=fds,
        )
    except OSError as exc:
        raise StartFailed(exc.strerror or str(exc)) from None


def _stop(process: subprocess.Popen[bytes]) -> tuple[bytes, bytes]:
    """Have the reaper kill the tree; kill the reaper's group if it does not in time."""
    _signal(process, signal.SIGTERM)
    try:
        return process.communicate(timeout=GRACE)
    except subprocess.TimeoutExpired:
        _signal(process, signal.SIGKILL)
        return process.communicate()


def _signal(process: subprocess.Popen[bytes], signum: int) -> None:
    try:
        if signum == signal.SIGKILL:
            os.killpg(process.pid, signum)
        else:
            process.send_signal(signum)
    except ProcessLookupError:
        pass


def _run_grouped(
    command: Sequence[str], *, env: Mapping[str, str], cwd: str | None, timeout: float
) -> tuple[int | None, bytes, bytes]:
    process = _start(list(command), env, cwd)
    with _LIVE_LOCK:
        _LIVE.add(process)
    try:
        out, err = process.communicate(timeout=timeout)
        return process.returncode, out, err
    except subprocess.TimeoutExpired:
        _signal(process, signal.SIGKILL)
        out, err = process.communicate()
        return None, out, err
    except BaseException:
        _signal(process, signal.SIGKILL)
        raise
    finally:
        with _LIVE_LOCK:
            _LIVE.discard(process)
