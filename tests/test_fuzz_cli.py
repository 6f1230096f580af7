"""Schemathesis from its own command line, as a user runs it against ``sfmock serve``
(README, "Fuzz it"), on both configs: zero failures. What cannot apply, and why, is
written down in contracts/schemathesis.toml; open mode adds ``--exclude-checks
ignored_auth`` because it accepts every token by design."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCHEMATHESIS = shutil.which("schemathesis", path=str(Path(sys.executable).parent))


@contextmanager
def serve(*flags: str) -> Iterator[str]:
    command = [sys.executable, "-m", "sfmock", "serve", "--port", "0", "--log-level", "critical", *flags]
    process = subprocess.Popen(command, cwd=ROOT, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stderr is not None
        match = re.search(r"(http://127\.0\.0\.1:\d+)/v1", process.stderr.readline())
        assert match
        yield match[1]
    finally:
        process.terminate()
        process.communicate(timeout=30)


@pytest.mark.skipif(SCHEMATHESIS is None, reason="the schemathesis command is not installed")
@pytest.mark.parametrize(
    ("flags", "key", "extra"),
    [
        ((), "sk-anything", ["--exclude-checks", "ignored_auth"]),
        (("--config", "fixtures/accounts.yaml"), "sk-valid", []),
    ],
    ids=["open", "accounts"],
)
def test_schemathesis_cli_finds_nothing(flags: tuple[str, ...], key: str, extra: list[str]) -> None:
    assert SCHEMATHESIS is not None
    with serve(*flags) as url:
        config = ["--config-file", "contracts/schemathesis.toml"]
        options = ["--url", url, "--seed", "7", "--max-examples", "20", "-H", f"Authorization: Bearer {key}", *extra]
        run = subprocess.run(
            [SCHEMATHESIS, "--no-color", *config, "run", "contracts/openapi.yaml", *options],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    output = run.stdout + run.stderr
    done = re.search(r"Operations:\s+(\d+) selected / (\d+) total", output)
    assert done and done[1] == done[2] and int(done[2]) >= 13, output  # every operation, the control API's too
    assert not re.findall(r"^_{3,} ([A-Z]+ \S+) _{3,}$", output, re.M), output
    assert run.returncode == 0, output
