"""The boundary for untrusted data on the command line, in files and in the environment:
exit 2 with a message naming the flag (or the file and the key), never a traceback, a
server that starts and never answers, or a scenario installed that breaks every read.

Each command runs as a user runs it, in a process of its own; the time limit only ends
a command the old code would have left serving for ever.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from sfmock import ConfigError, load_settings
from sfmock.chaos.faults import Scenario

ENDLESS = 120  # seconds: a refused command exits at once, one that serves never would


def sfmock(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "sfmock", *argv]
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=ENDLESS, env=env)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{' '.join(argv)}: still running after {ENDLESS} s (it should have refused the value)")


def refused(result: subprocess.CompletedProcess[str], *phrases: str) -> None:
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    for phrase in phrases:
        assert phrase in result.stderr, result.stderr[-2000:]


@pytest.mark.parametrize("value", ["nan", "NaN", "inf", "-inf", "1e400"])
def test_serve_refuses_a_read_timeout_that_is_not_a_finite_number(value: str) -> None:
    result = sfmock("serve", "--port", "0", "--image-port", "same", f"--read-timeout={value}")
    refused(result, "command line: --read-timeout:")


@pytest.mark.parametrize(
    "argv",
    [
        ["check", "--timeout", "nan", "--", "true"],
        ["check", "--budget", "inf", "--", "true"],
    ],
)
def test_every_command_refuses_numbers_that_are_not_finite(argv: list[str]) -> None:
    refused(sfmock(*argv), f"command line: {argv[1]}: expected a finite number")


@pytest.mark.parametrize(
    "argv",
    [
        ["serve", "--port", "0", "--store", "redis://[x"],
        ["serve", "--port", "0", "--store", "redis://:secret@[x:6379/0"],
        ["serve", "--port", "0", "--public-url", "http://[x"],
        ["serve", "--port", "0", "--image-public-url", "https://[::1"],
        ["proxy", "--port", "0", "--upstream", "http://[x"],
        ["drift", "--against", "https://[api.siliconflow.cn"],
    ],
)
def test_a_url_with_an_unclosed_bracket_is_an_exit_2_naming_the_flag(argv: list[str]) -> None:
    flag = next(arg for arg in argv if arg.startswith("--") and arg != "--port")
    result = sfmock(*argv)
    refused(result, f"command line: {flag}:", "URL")
    assert "secret" not in result.stderr


def test_serve_refuses_a_scenario_file_with_a_rule_name_that_is_not_text(tmp_path: Path) -> None:
    path = tmp_path / "lone.json"
    path.write_text('{"name": "lone", "rules": [{"name": "r\\udfff", "action": {"error": 503}}]}', "utf-8")
    result = sfmock("serve", "--port", "0", "--image-port", "same", "--scenario", str(path))
    refused(result, str(path), "rules[0].name", "lone surrogate")


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('{"read_timeout": NaN}', "read_timeout"),
        ('{"url_ttl": 1e400}', "url_ttl"),
        ('{"control_token": "\\ud800"}', "control_token"),
        ('{"journal_size": 99999999999999999999999}', "journal_size"),
        ('{"public_url": "http://[x"}', "public_url"),
        ('{"store": "redis://[x"}', "store"),
    ],
)
def test_a_config_file_naming_what_the_fake_cannot_use_names_the_file_and_the_key(
    tmp_path: Path, text: str, key: str
) -> None:
    path = tmp_path / "config.json"
    path.write_text(text, "utf-8")
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    assert (info.value.source, info.value.key) == (str(path), key)


def test_a_scenario_given_in_python_is_checked_the_same_way() -> None:
    with pytest.raises(ConfigError) as info:
        Scenario.from_document({"rules": [{"name": "x\ud800", "action": "pass"}]}, "mine.yaml")
    assert (info.value.source, info.value.key) == ("mine.yaml", "rules[0].name")


def test_the_shared_fake_url_in_the_environment_is_checked(tmp_path: Path) -> None:
    test = tmp_path / "test_shared.py"
    test.write_text("def test_it(sfmock_server):\n    pass\n", "utf-8")
    env = {**os.environ, "SFMOCK_URL": "http://[x"}
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(test)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=ENDLESS, env=env, cwd=tmp_path)
    assert result.returncode != 0
    assert "environment: SFMOCK_URL: not a valid URL" in result.stdout + result.stderr, result.stdout[-2000:]


@pytest.mark.parametrize("request_body", ['{"model": "Kwai-Kolors/Kolors", "prompt": "\\ud800"}', '{"seed": NaN}'])
def test_check_refuses_a_request_it_could_not_send(request_body: str) -> None:
    refused(sfmock("check", "--request", request_body, "--", "true"), "--request: not JSON we can use")
