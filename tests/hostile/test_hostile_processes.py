"""``sfmock check`` owns its processes (issue 25): at the time limit everything the program
started is gone, a ``setsid`` helper holding its stdout included, and the verdict says
the program ran out of time; a program that exits leaves nothing running either."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from sfmock.testing.programs import ProgramExit, ProgramSetup, run_program

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="a subreaper is Linux's")

# helpers in every way a program may leave one: in its own session holding the program's
# stdout (and marking the file `done` if it lives to the end of its sleep), in its own
# session with nothing open, and an ordinary background child
HELPERS = """
setsid sh -c 'echo $$ > "$MARK/held.pid"; sleep 20; touch "$MARK/done"' &
setsid sh -c 'echo $$ > "$MARK/detached.pid"; exec sleep 300' >/dev/null 2>&1 </dev/null &
sh -c 'echo $$ > "$MARK/child.pid"; exec sleep 300' >/dev/null 2>&1 </dev/null &
until [ -s "$MARK/held.pid" ] && [ -s "$MARK/detached.pid" ] && [ -s "$MARK/child.pid" ]; do sleep 0.01; done
"""
NAMES = ("held", "detached", "child")


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()[0]
    except OSError:
        return False
    return state != b"Z"  # a zombie is dead, waiting for its parent to notice


@pytest.fixture
def mark(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("MARK", str(tmp_path))
    yield tmp_path
    for name in NAMES:  # whatever a failing run left behind
        pidfile = tmp_path / f"{name}.pid"
        if pidfile.is_file():
            try:
                os.kill(int(pidfile.read_text()), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass


def pids(mark: Path) -> dict[str, int]:
    return {name: int((mark / f"{name}.pid").read_text()) for name in NAMES}


def test_at_the_time_limit_everything_the_program_started_is_gone(mark: Path) -> None:
    setup = ProgramSetup(command=("bash", "-c", HELPERS + "exec sleep 300"), timeout=5)
    result = run_program(setup, [])
    assert result.status is None  # it timed out
    assert isinstance(result.run.error, ProgramExit) and "did not finish in time" in str(result.run.error)
    left = {name: pid for name, pid in pids(mark).items() if alive(pid)}
    assert left == {}
    assert not (mark / "done").exists()  # the helper holding stdout was killed, not waited for


def test_a_program_that_exits_leaves_nothing_running(mark: Path) -> None:
    setup = ProgramSetup(command=("bash", "-c", HELPERS + "echo finished; exit 3"), timeout=60)
    result = run_program(setup, [])
    assert result.status == 3 and "finished" in result.stdout
    assert {name: pid for name, pid in pids(mark).items() if alive(pid)} == {}
    assert not (mark / "done").exists()


def test_a_program_that_cannot_start_is_named() -> None:
    from sfmock.testing.programs import ProgramError

    with pytest.raises(ProgramError, match="cannot start '/no/such/program'"):
        run_program(ProgramSetup(command=("/no/such/program",)), [])
