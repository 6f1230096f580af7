"""The documentation's examples (the README's and those of the pages in ``docs/``) run as
written."""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from documentation import PAGES, ROOT, everything

from conftest import FIXTURES
from redis_server import free_port

README = everything()
# each Python block with the page it comes from, so a traceback names the page
PAGE_BLOCKS = [
    (path.relative_to(ROOT).as_posix(), block)
    for path in PAGES
    for block in re.findall(r"```python\n(.*?)```", path.read_text("utf-8"), re.S)
]
BLOCKS = [block for _, block in PAGE_BLOCKS]


def test_there_are_examples() -> None:
    assert len(BLOCKS) >= 3


def test_pytest_examples_pass(pytester: pytest.Pytester) -> None:
    """Each block is a test file of its own, and every test in it passes; one pytest run
    for them all, as a user's suite would be (one start-up, one session fake)."""
    examples = [(n, b) for n, b in PAGE_BLOCKS if "def test_" in b]
    assert len(examples) >= 5
    names = {f"test_example_{i}": block for i, (_, block) in enumerate(examples)}
    pytester.makepyfile(**names)
    # Hypothesis's timing health check judges the machine, not the example: on a busy one
    # (the suite's own workers beside it) a draw can stall past its second (as CI's profile knows)
    pytester.makeconftest(
        "from hypothesis import HealthCheck, settings\n"
        "settings.register_profile('busy', suppress_health_check=[HealthCheck.too_slow], deadline=None)\n"
        "settings.load_profile('busy')\n"
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-v")
    for name, block in names.items():
        for test in re.findall(r"^(?:async )?def (test_\w+)", block, re.M):
            result.stdout.fnmatch_lines([f"{name}.py::{test} PASSED*"])
    result.assert_outcomes(passed=sum(block.count("def test_") for block in names.values()))


@pytest.mark.parametrize(
    ("name", "block"), [(n, b) for n, b in PAGE_BLOCKS if "def test_" not in b], ids=lambda b: b.splitlines()[0][:30]
)
def test_script_examples_run(name: str, block: str, capsys: pytest.CaptureFixture[str]) -> None:
    exec(compile(block, name, "exec"), {"__name__": "readme"})
    if "print(failure)" in block:
        # the whole report shown, each line in order ("..." for what varies: a trace id, a count)
        shown = re.search(r"```\n(client check failed: .*?)```", README, re.S)
        assert shown is not None
        output = capsys.readouterr().out
        for line in shown.group(1).splitlines():
            assert shows(output, line), (line, output)


# --- the shell examples: run in order, as a new user would, each server on its own port ---

# ```bash blocks run in order; ```sh blocks need the real service (a key) or a checkout and
# are shown only; a block that starts with #! is a script's whole file (test_programs runs it)
SHELL_BLOCKS = [
    b for b in re.findall(r"```bash\n(.*?)```", README, re.S) if "pip install" not in b and not b.startswith("#!")
]
EXPECTED = re.compile(r"#\s*->\s*(.*)$", re.M)


def fragments(expected: str) -> list[str]:
    """What an expectation asks to see, in order: its words, with ``...`` for anything."""
    return [part for word in expected.split() for part in word.split("...") if part]


def shows(output: str, expected: str) -> bool:
    position = 0
    for part in fragments(expected):
        position = output.find(part, position)
        if position < 0:
            return False
        position += len(part)
    return True


def test_shell_blocks_say_what_they_print_and_use_distinct_ports() -> None:
    assert len(SHELL_BLOCKS) >= 6 and sum(len(EXPECTED.findall(b)) for b in SHELL_BLOCKS) >= 10
    started = [re.search(r"--port (\d+)", b) for b in SHELL_BLOCKS if "sfmock serve" in b]
    ports = [int(m.group(1)) if m else 8000 for m in started]
    # 8000 (and 8001, its image host) are the first server's; each takes its port + 1 too
    taken = [port + offset for port in [8000, *ports] for offset in (0, 1)]
    assert len(taken) == len(set(taken)), ports
    # a server started in the background is waited for by its health, never a fixed time
    # (a busy machine starts it later than any sleep)
    for block in SHELL_BLOCKS:
        for port in re.findall(r"sfmock serve .*--port (\d+) &", block):
            assert f"--retry-connrefused --retry-delay 1 -o /dev/null http://127.0.0.1:{port}/_sfmock/health" in block
        assert not re.search(r"&\s*sleep\b", block), block
        assert "siliconflow.cn" not in block, f"the suite would call the real service: make it ```sh\n{block}"
    assert shows("a 200 b 401 c", "200 ... 401") and not shows("401 200", "200 401")


@pytest.mark.skipif(
    not (shutil.which("curl") and shutil.which("file")),
    reason="needs curl and file (Debian: apt-get install curl file; see docs/development.md)",
)
def test_shell_examples_run_as_written(tmp_path: Path) -> None:
    (tmp_path / ".venv").symlink_to(Path(sys.prefix))
    (tmp_path / "fixtures").symlink_to(FIXTURES)
    (tmp_path / "tests").symlink_to(ROOT / "tests")  # the clients `sfmock check` runs
    ports: dict[str, str] = {}
    for port in sorted(set(re.findall(r"\b80\d\d\b", "".join(SHELL_BLOCKS)))):
        chosen = free_port()
        while any(abs(chosen - int(other)) < 2 for other in ports.values()):  # no server's image port
            chosen = free_port()
        ports[port] = str(chosen)
    # the README's first command, left running: `.venv/bin/sfmock serve` (on 8000, or its stand-in)
    server = subprocess.Popen(
        [".venv/bin/sfmock", "serve", "--port", ports["8000"]], cwd=tmp_path, stderr=subprocess.PIPE, text=True
    )
    try:
        assert server.stderr is not None and "API at" in server.stderr.readline()
        for block in SHELL_BLOCKS:
            script = re.sub(r"\b80\d\d\b", lambda m: ports[m.group(0)], block)
            wrapped = f"{script}\nstatus=$?; kill $(jobs -p) 2>/dev/null; wait; exit $status\n"
            run = subprocess.run(
                ["bash", "-c", wrapped], cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False
            )
            output = run.stdout + run.stderr
            assert run.returncode == 0, f"{block}\n---\n{output}"
            for expected in EXPECTED.findall(block):
                assert shows(output, expected), f"expected {expected!r} from:\n{block}\n--- got:\n{output}"
    finally:
        server.send_signal(signal.SIGINT)
        server.communicate(timeout=30)
    assert server.returncode == 0


def test_the_bad_body_row_quotes_what_the_server_sends() -> None:
    from starlette.testclient import TestClient

    from sfmock import Settings, create_app

    row = next(line for line in README.splitlines() if line.startswith("| body not a JSON object"))
    quoted = re.findall(r'"message":"([^"]*?)(?:\.\.\.)?"|`"([^"`]+)"`', row)
    messages = [a or b for a, b in quoted]
    assert len(messages) == 3, row
    auth = {"Authorization": "Bearer sk-readme"}
    with TestClient(create_app(Settings(seed=1))) as client:
        sent = [
            client.post("/v1/images/generations", content=body, headers=auth).json()["message"]
            for body in (b"{nope", b"", b"[]")
        ]
    for message, answer in zip(messages, sent, strict=True):
        assert answer.startswith(message), (message, answer)


def test_the_js_examples_are_the_ones_the_node_test_runs() -> None:
    blocks = [b for b in re.findall(r"```js\n(.*?)```", README, re.S) if "WithoutKey" in b]
    runs = (FIXTURES.parent / "tests" / "node" / "generate.mjs").read_text("utf-8")
    helpers = [block.split("\n\n")[0] for block in blocks]
    assert len(helpers) == 2 and all(helper in runs for helper in helpers)  # each custom fetch, word for word
    assert "fetch: imagesWithoutKey" in blocks[0] and "createOpenAICompatible({" in runs
    assert "images: imagesWithoutKey, strip: presignedDownloadsWithoutKey" in runs
