"""The parent ``sfmock check`` starts each program under, on Linux: it owns everything the
program starts, and leaves nothing behind.

Run as a script (``python -I -S reaper.py FD -- COMMAND...``; a few standard modules
only, so it starts in a few tens of milliseconds). It makes itself a *child subreaper* (``prctl
PR_SET_CHILD_SUBREAPER``): a process the program starts that loses its parent (a
``setsid`` helper, a double-forked daemon) is reparented here, not to init, so it stays
in this process's tree whatever session or process group it moved to. When the program
exits, or when this process gets SIGTERM (the check's time is up), every process in the
tree is killed and reaped; only then does this one exit, and with it the last holder of
the program's stdout and stderr.

It reports on file descriptor FD, a line each: ``started`` or ``error MESSAGE`` (the
program could not start), then ``status N`` (the program's exit status, negative for a
signal) or ``killed`` (SIGTERM came first).
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import time
from types import FrameType

PR_SET_CHILD_SUBREAPER = 36  # <linux/prctl.h>
ROUNDS = 200  # a tree that keeps forking under SIGKILL still ends: each round kills what it finds


def become_subreaper() -> bool:
    """Make orphans of this process's tree its children; ``False`` where the kernel says no."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def descendants(root: int) -> list[int]:
    """The live processes below ``root`` (zombies are dead already), read from ``/proc``."""
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as stat:
                fields = stat.read().rsplit(b")", 1)[1].split()
        except OSError:  # gone meanwhile
            continue
        if fields[0] != b"Z":
            children.setdefault(int(fields[1]), []).append(int(name))
    found: list[int] = []
    todo = [root]
    while todo:
        below = children.get(todo.pop(), [])
        found.extend(below)
        todo.extend(below)
    return found


def reap() -> None:
    """Collect every child that has exited (orphans reparented here included)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def kill_tree(*, wait: bool) -> None:
    """SIGKILL every process below this one; with ``wait``, until none is left."""
    me = os.getpid()
    for _ in range(ROUNDS):
        alive = descendants(me)
        for pid in alive:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if not wait:
            return
        reap()
        if not alive:
            return
        time.sleep(0.001)  # let the kernel reparent the orphans of what was just killed


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[1] != "--":
        print("usage: reaper.py FD -- COMMAND...", file=sys.stderr)
        return 2
    report = os.fdopen(int(argv[0]), "w", buffering=1)
    os.set_inheritable(report.fileno(), False)  # the program's tree must not hold the report open
    become_subreaper()
    stopped = []

    def stop(signum: int, frame: FrameType | None) -> None:
        stopped.append(signum)
        kill_tree(wait=False)  # the program among them: its wait below returns

    signal.signal(signal.SIGTERM, stop)  # before the program starts: a SIGTERM at once still counts
    try:  # not subprocess: importing it would double this script's start-up time
        # the signals Python ignores go back to their defaults, as subprocess restores them
        program = os.posix_spawnp(argv[2], argv[2:], os.environ, setsigdef=(signal.SIGPIPE, signal.SIGXFSZ))
    except OSError as exc:
        report.write(f"error {exc.strerror or exc}\n")
        return 0
    report.write("started\n")
    status = os.waitstatus_to_exitcode(os.waitpid(program, 0)[1])
    kill_tree(wait=True)  # what the program left running: helpers, daemons
    report.write("killed\n" if stopped else f"status {status}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
