"""The ``sfmock`` command: help, errors with a non-zero exit, and a real serve."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import httpx
import pytest
from documentation import page

from conftest import AUTH, contract_hook
from sfmock.cli import main
from sfmock.documents import MAX_FILE_BYTES

FLAGS = [
    "--host",
    "--port",
    "--config",
    "--seed",
    "--url-ttl",
    "--public-url",
    "--strict",
    "--max-body-bytes",
    "--limits",
    "--rate-limit-headers",
    "--scenario",
    "--control-token",
    "--journal-size",
    "--frozen-clock",
    "--replay",
    "--replay-match",
    "--replay-miss",
    "--dialect",
    "--balance-status",
    "--image-prefix",
    "--store",
    "--workers",
]


def test_help_documents_every_flag(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as top:
        main(["--help"])
    assert top.value.code == 0 and "serve" in capsys.readouterr().out
    with pytest.raises(SystemExit) as serve:
        main(["serve", "--help"])
    out = capsys.readouterr().out
    assert serve.value.code == 0
    for flag in FLAGS:
        assert flag in out, flag


@pytest.mark.parametrize(
    ("argv", "phrase"),
    [
        ([], "required"),
        (["fly"], "invalid choice"),
        (["serve", "--bogus"], "unrecognized arguments"),
        (["serve", "--port", "abc"], "invalid int value"),
        (["serve", "--url-ttl", "0"], "--url-ttl: 0 is less than the minimum of 1"),
        (["serve", "--port", "99999"], "--port: 99999 is greater than the maximum"),
        (["serve", "--public-url", "not a url"], "--public-url"),
        (["serve", "--scenario", "/nonexistent.yaml"], "--scenario: '/nonexistent.yaml': cannot be read"),
        (["serve", "--journal-size", "0"], "--journal-size: 0 is less than the minimum of 1"),
        (["serve", "--limits", "generous"], "--limits: 'generous' is not one of ['realistic', 'unlimited']"),
        (["serve", "--config", "/nonexistent/sfmock.yaml"], "/nonexistent/sfmock.yaml: (file): cannot be read"),
        (["serve", "--replay-miss", "maybe"], "--replay-miss: 'maybe' is not one of ['fake', 'error']"),
        (["serve", "--replay", "/nonexistent"], "command line: --replay: expected a folder of recordings"),
        (["serve", "--dialect", "spoken"], "--dialect: 'spoken' is not one of ['documented', 'observed', 'plain']"),
        (["serve", "--balance-status", "401"], "--balance-status: 401 is not one of [402, 403]"),
        (["serve", "--image-prefix", "/v1/x/"], "--image-prefix: '/v1/x/' does not match"),
        (
            ["serve", "--store", "mysql://db"],
            "command line: --store: mysql://db: unknown scheme 'mysql'; expected memory, ",
        ),
        (
            ["serve", "--store", "redis://127.0.0.1:notaport/0"],
            "--store: redis://127.0.0.1:notaport/0: the port is not",
        ),
        (["serve", "--store", "redis://127.0.0.1:99999/0"], "--store: redis://127.0.0.1:99999/0: the port is not"),
        (
            ["serve", "--store", "redis://127.0.0.1/notadb"],
            "--store: redis://127.0.0.1/notadb: the database 'notadb' is",
        ),
        (["serve", "--store", "redis://127.0.0.1/0/extra"], "the database '0/extra' is not a number (0 or more)"),
        (["serve", "--store", "redis://127.0.0.1/-1"], "the database '-1' is not a number (0 or more)"),
        (["serve", "--store", "redis://127.0.0.1/0?db=abc"], "the database 'abc' is not a number (0 or more)"),
        (["serve", "--store", "redis://127.0.0.1/1?db=2"], "the database is given twice"),
        (["serve", "--store", "unix://"], "--store: unix://: no socket path"),
        (["serve", "--store", "redis://:s3cret-pw@127.0.0.1:x/0"], "--store: redis://:***@127.0.0.1:x/0: the port"),
        (["serve", "--store", "http://:s3cret-pw@h/0"], "--store: http://:***@h/0: unknown scheme 'http'"),
        (["serve", "--workers", "0"], "--workers: 0: expected a whole number of processes, 1 or more"),
        (
            ["serve", "--store", "redis://127.0.0.1:1/0"],
            "command line: --store: the shared store redis://127.0.0.1:1/0 cannot be reached: Error 111",
        ),
        (
            ["serve", "--workers", "2"],
            "command line: --workers: 2 workers would each keep their own quotas, balances, journal and "
            "scenario; expected --store redis://HOST:PORT/DB (or store: in the config file) for them to share",
        ),
        (["serve", "--image-port", "other"], "--image-port: 'other' does not match '^same$'"),
        (["serve", "--image-port", "8000"], "--image-port: 8000 is the API's port too"),
        (["serve", "--image-public-url", "s3"], "--image-public-url: 's3' does not match"),
    ],
)
def test_bad_arguments_exit_non_zero_with_a_message(
    capsys: pytest.CaptureFixture[str], argv: list[str], phrase: str
) -> None:
    try:
        status = main(argv)
    except SystemExit as exc:  # argparse's own errors
        status = int(exc.code or 0)
    assert status == 2
    assert phrase in capsys.readouterr().err


def test_a_store_password_is_never_printed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for url in ("redis://:s3cret-pw@127.0.0.1:x/0", "http://u:s3cret-pw@h/0", "redis://u:s3cret-pw@127.0.0.1:1/0"):
        config = tmp_path / "store.yaml"
        config.write_text(f"store: {url!r}\n")
        assert main(["serve", "--config", str(config)]) == 2
        assert main(["serve", "--store", url]) == 2
        assert main(["validate", str(config)]) in (0, 2)
        err = capsys.readouterr().err
        assert "s3cret-pw" not in err and "***" in err


def test_a_store_from_the_config_file_is_blamed_on_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "unreachable.yaml"
    config.write_text("store: redis://127.0.0.1:1/0\n")
    assert main(["serve", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert f"sfmock: error: {config}: store: the shared store redis://127.0.0.1:1/0 cannot be reached" in err
    assert "lost the store" not in err  # nothing was lost: it never answered
    config.write_text("store: redis://127.0.0.1/db0\n")
    assert main(["serve", "--config", str(config)]) == 2
    assert f"{config}: store: redis://127.0.0.1/db0: the database 'db0' is not a number" in capsys.readouterr().err


def test_bad_config_file_names_file_and_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("url_ttl: soon\n")
    assert main(["serve", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert f"{config}: url_ttl:" in err and "integer" in err


def test_port_in_use_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        assert main(["serve", "--port", str(port)]) == 2
    assert f"cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err


def test_image_port_in_use_is_a_clear_error_naming_the_flag(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        assert main(["serve", "--port", "0", "--image-port", str(port)]) == 2
    assert f"--image-port: cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err


@pytest.mark.parametrize("command", [[sys.executable, "-m", "sfmock"], [str(Path(sys.executable).parent / "sfmock")]])
def test_serve_answers_over_a_real_socket(command: list[str], tmp_path: Path) -> None:
    config = tmp_path / "sfmock.yaml"
    config.write_text("url_ttl: 120\nseed: 1\n")
    with _serving([*command, "serve", "--port", "0", "--config", str(config), "--log-level", "warning"]) as process:
        assert process.stderr is not None
        line = process.stderr.readline()
        match = re.search(r"(http://127\.0\.0\.1:\d+)/v1", line)
        assert match, line
        line = process.stderr.readline()
        images = re.search(r"images at (http://127\.0\.0\.1:\d+)/temporary/outputs/ \(an origin of their own\)", line)
        assert images and images[1] != match[1], line  # with --port 0, a free port of its own
        with httpx.Client(base_url=match[1], event_hooks={"response": [contract_hook]}) as client:
            body = client.post(
                "/v1/images/generations", json={"model": "Kwai-Kolors/Kolors", "prompt": "x"}, headers=AUTH
            ).json()
            url = body["images"][0]["url"]
            assert url.startswith(images[1] + "/temporary/outputs/") and "X-Amz-Expires=120" in url
            assert client.get(url).status_code == 200
    assert process.returncode == 0  # Ctrl+C is the normal way to stop: a quiet exit 0


@pytest.mark.parametrize("ignored", [False, True], ids=["default", "inherited-ignored"])
def test_ctrl_c_while_starting_stops_the_server(ignored: bool) -> None:
    """A SIGINT that comes before uvicorn takes the signal (here: with the first start-up
    line) still stops the server, also where the process began with SIGINT ignored, as a
    script's background job or a test runner's worker does; it used to be lost, and the
    server then ran until killed."""
    command = [sys.executable, "-m", "sfmock", "serve", "--port", "0", "--log-level", "warning"]

    def start() -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN if ignored else signal.SIG_DFL)

    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, preexec_fn=start)
    try:
        assert process.stderr is not None
        assert "API at" in process.stderr.readline()  # printed before uvicorn starts
        process.send_signal(signal.SIGINT)
        assert process.wait(30) == 0
    finally:
        process.kill()
        process.wait()
        assert process.stderr is not None
        process.stderr.close()


@contextlib.contextmanager
def _serving(command: list[str], stdout: IO[str] | None = None) -> Iterator[subprocess.Popen[str]]:
    """A real ``sfmock`` process, its stderr a pipe; stopped by Ctrl+C (SIGINT) at the end."""
    process = subprocess.Popen(
        command, stdout=stdout, stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"}
    )
    try:
        yield process
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(10)
        if process.stderr:
            process.stderr.close()


def test_the_access_log_quotes_no_credential(tmp_path: Path) -> None:
    """uvicorn's access log (``--log-level info``) quotes each request's path and query:
    keys in the query and a download's signature are scrubbed by the recordings' rules."""
    out = tmp_path / "out.log"
    command = [sys.executable, "-m", "sfmock", "serve", "--port", "0", "--log-level", "info"]
    with out.open("w") as sink, _serving(command, sink) as process:
        assert process.stderr is not None
        match = re.search(r"(http://127\.0\.0\.1:\d+)/v1", process.stderr.readline())
        assert match
        with httpx.Client(base_url=match[1], event_hooks={"response": [contract_hook]}) as client:
            answer = client.post(
                "/v1/images/generations?api_key=sk-LOGSECRET123456&token=tok-LOGSECRET-2&x=1",
                json={"model": "Kwai-Kolors/Kolors", "prompt": "x"},
                headers=AUTH,
            )
            url = answer.json()["images"][0]["url"]
            assert client.get(url).status_code == 200
    logged = out.read_text() + "\n"
    signature = re.search(r"X-Amz-Signature=([0-9a-f]+)", url)
    assert signature
    assert "/v1/images/generations?api_key=REDACTED&token=REDACTED&x=1" in logged  # the line is there
    assert "X-Amz-Signature=REDACTED" in logged
    for secret in ("sk-LOGSECRET123456", "tok-LOGSECRET-2", signature[1]):
        assert secret not in logged


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    from sfmock import __version__

    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0 and capsys.readouterr().out.strip() == f"sfmock {__version__}"


def test_scenarios_lists_the_shipped_ones_with_descriptions(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scenarios"]) == 0
    lines = capsys.readouterr().out.splitlines()
    names = sorted(p.stem for p in (Path(__file__).parent.parent / "fixtures" / "scenarios").glob("*.yaml"))
    assert [line.split()[0] for line in lines] == names
    assert any("overloaded" in line and "503" in line for line in lines)


@pytest.mark.parametrize("name", ["accounts.yaml", "open.yaml", "realistic-limits.yaml", "scenarios/flaky.yaml"])
def test_validate_accepts_the_shipped_files(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    path = Path(__file__).parent.parent / "fixtures" / name
    assert main(["validate", str(path)]) == 0
    assert "a valid " + ("scenario" if "scenarios/" in name else "config") in capsys.readouterr().out


@pytest.mark.parametrize(
    ("text", "phrase"),
    [
        ("port: 1\nseed: 2\nport: 3\n", "duplicate key 'port' on line 3"),
        ("colour: blue\n", "colour: unknown key; expected one of the keys accounts, "),
        ("url_ttl: soon\n", "url_ttl: 'soon' is not of type 'integer'"),
        ("scenario: no-such\n", "no such shipped scenario"),
        ("rules:\n  - action: {error: 999}\n", "rules[0].action.error"),
        ("rules:\n  - action: {drop: true}\n    action: {hang: 1}\n", "duplicate key 'action' on line 3"),
    ],
)
def test_validate_refuses_like_serve(
    tmp_path: Path, text: str, phrase: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "file.yaml"
    path.write_text(text, "utf-8")
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"sfmock: error: {path}: ") and phrase in err, err
    if not text.startswith("rules"):  # serve says the same
        assert main(["serve", "--config", str(path)]) == 2
        assert phrase in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "usage"),
    [
        (["serve", "--bogus"], "usage: sfmock serve"),
        (["serve", "--port", "abc"], "usage: sfmock serve"),
        (["validate"], "usage: sfmock validate"),
        (["validate", "a", "b"], "usage: sfmock validate"),
        (["scenarios", "--all"], "usage: sfmock scenarios"),
    ],
)
def test_usage_errors_show_the_subcommands_usage(
    argv: list[str], usage: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2 and capsys.readouterr().err.startswith(usage)


def test_log_level_is_documented(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    assert "--log-level" in capsys.readouterr().out
    assert "--log-level" in page("configuration")


def test_fidelity_flags_reach_the_settings() -> None:
    from sfmock.cli import _FLAGS, build_parser
    from sfmock.config import load_settings

    args = build_parser().parse_args(
        ["serve", "--dialect", "observed", "--balance-status", "402", "--image-prefix", "/default/outputs/"]
    )
    settings = load_settings(None, {key: getattr(args, key) for key in _FLAGS}, flag_names=_FLAGS)
    assert (settings.dialect, settings.balance_status, settings.image_prefix) == ("observed", 402, "/default/outputs/")


@pytest.mark.parametrize("flag", ["validate", "--config", "--scenario"])
def test_a_file_larger_than_the_cap_is_refused_naming_it(
    flag: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Config and scenario files are read at most 16 MiB deep (an endless /dev/zero too):
    exit 2 naming the file, never the whole file in memory."""
    big = tmp_path / "big.yaml"
    with big.open("wb") as file:
        file.truncate(MAX_FILE_BYTES + 1)  # sparse: no disk used
    assert main(["validate", str(big)] if flag == "validate" else ["serve", "--port", "0", flag, str(big)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("sfmock: error: ") and str(big) in err
    assert f"larger than {MAX_FILE_BYTES} bytes (16 MiB)" in err
    fits = tmp_path / "fits.yaml"
    fits.write_text("# " + "x" * (MAX_FILE_BYTES - 3) + "\n")  # at the cap exactly: read and found empty
    assert fits.stat().st_size == MAX_FILE_BYTES
    assert main(["validate", str(fits)]) == 0


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (["--junit", "{tmp}"], "--junit: {tmp} is a folder; expected a file to write the JUnit XML report to"),
        (["--junit", "{tmp}/no/x.xml"], "--junit: {tmp}/no/x.xml: the folder {tmp}/no does not exist"),
        (["--jobs", "100000"], "--jobs: 100000 is more than 32; expected 1 to 32 runs at a time"),
    ],
)
def test_check_refuses_a_junit_path_or_jobs_it_cannot_use_before_the_run(
    option: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before any run (the program would be run): exit 2 naming the option, no traceback."""
    ran = tmp_path / "ran"
    argv = ["check", "--quiet", *(o.format(tmp=tmp_path) for o in option), "--", "touch", str(ran)]
    assert main(argv) == 2
    assert f"sfmock check: error: {message.format(tmp=tmp_path)}" in capsys.readouterr().err
    assert not ran.exists()


def test_a_reader_that_goes_away_early_gets_no_traceback() -> None:
    # outsider21: `sfmock scenarios | head -1` ended in a BrokenPipeError traceback
    done = subprocess.run(
        ["bash", "-c", f"'{sys.executable}' -m sfmock scenarios | head -c 1 >/dev/null; exit ${{PIPESTATUS[0]}}"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "Traceback" not in done.stderr and "BrokenPipeError" not in done.stderr, done.stderr
