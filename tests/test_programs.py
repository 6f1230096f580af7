"""`sfmock check -- COMMAND`: real programs (Node with the `openai` npm package, bash with curl)
as the client under test, each flaw caught by the check the README names."""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from documentation import page
from node_packages import node_packages_missing

from sfmock.cli import main
from sfmock.testing.junit import write_report
from sfmock.testing.program_check import ProgramReport, check_program
from sfmock.testing.program_rules import check_names, judge
from sfmock.testing.programs import TIMINGS, ProgramSetup, run_program, short_scenario
from sfmock.testing.strategies import drawn_outcomes

TESTS = Path(__file__).parent
NODE_CLIENTS = TESTS / "node" / "clients"
SHELL_CLIENTS = TESTS / "shell"


def _node_missing() -> str | None:
    if shutil.which("node") is None:
        return "node is not installed (.ci/run installs it with apt-get install nodejs npm)"
    missing = node_packages_missing("openai")
    if missing is not None:
        return missing
    version = subprocess.run(["node", "--version"], capture_output=True, text=True, check=False).stdout
    if int(version.lstrip("v").split(".")[0] or 0) < 18:
        return f"node {version.strip()} is too old for the openai package (it needs 18+: fetch)"
    return None


NODE_MISSING = _node_missing()  # once: the first call may run npm ci
needs_node = pytest.mark.skipif(NODE_MISSING is not None, reason=str(NODE_MISSING))
needs_curl = pytest.mark.skipif(
    shutil.which("curl") is None, reason="curl is not installed (Debian: apt-get install curl; see docs/development.md)"
)


def node(name: str) -> tuple[str, ...]:
    return ("node", str(NODE_CLIENTS / name))


def bash(name: str) -> tuple[str, ...]:
    return ("bash", str(SHELL_CLIENTS / name))


def check(command: tuple[str, ...], **options: Any) -> ProgramReport:
    return check_program(ProgramSetup(command=command, cwd=str(TESTS)), **options)


# --- the correct clients pass; each flawed one is caught by the check its docstring names ---

SHORT_TIMEOUT = ("bash", "-c", f"bash <(sed '0,/--max-time 10/s//--max-time 1.2/' {bash('curl-careful.sh')[1]})")

CORRECT = [
    pytest.param(node("openai-careful.mjs"), marks=needs_node, id="node-openai"),
    pytest.param(bash("curl-careful.sh"), marks=needs_curl, id="curl"),
]

FLAWED = [
    pytest.param(node("openai-no-retries.mjs"), "retries", marks=needs_node, id="node-no-retries"),
    pytest.param(node("openai-sdk-retries-only.mjs"), "retries", marks=needs_node, id="node-sdk-retries-only"),
    pytest.param(node("openai-retries-everything.mjs"), "retries", marks=needs_node, id="node-retries-400"),
    pytest.param(node("openai-key-on-download.mjs"), "downloads", marks=needs_node, id="node-key-on-download"),
    pytest.param(node("openai-exits-zero.mjs"), "exit-status", marks=needs_node, id="node-exits-zero"),
    pytest.param(node("openai-prints-key.mjs"), "key-not-printed", marks=needs_node, id="node-prints-key"),
    pytest.param(bash("curl-no-retries.sh"), "retries", marks=needs_curl, id="curl-no-retries"),
    pytest.param(bash("curl-retries-everything.sh"), "retries", marks=needs_curl, id="curl-retries-400"),
    pytest.param(bash("curl-key-on-download.sh"), "downloads", marks=needs_curl, id="curl-key-on-download"),
    pytest.param(bash("curl-exits-zero.sh"), "exit-status", marks=needs_curl, id="curl-exits-zero"),
    # the careful client with a read timeout of 1.2 s on the generation, shorter than one takes
    pytest.param(SHORT_TIMEOUT, "timeouts", marks=needs_curl, id="curl-short-timeout"),
]


@pytest.mark.parametrize("command", CORRECT)
def test_a_correct_client_passes_at_the_defaults(command: tuple[str, ...]) -> None:
    report = check(command)  # sfmock check's defaults: budget, jobs, examples, outcomes
    assert report.passed, report.text()
    assert not report.unmet, report.text()
    drawn = drawn_outcomes()
    assert set(report.outcomes) == set(drawn), report.text()  # each one met, and no other
    assert not {"429-retry-after", "503-retry-after", "429-observed"} & set(report.outcomes)
    assert report.not_applied == {} and "faithful-request" in report.checks  # they send $SFMOCK_REQUEST


@pytest.mark.parametrize(("command", "expected"), FLAWED)
def test_a_flawed_client_is_caught_by_the_named_check(command: tuple[str, ...], expected: str) -> None:
    report = check(command)
    failure = report.failure
    assert failure is not None, f"{command[-1]} passed:\n{report.text()}"
    assert failure.check == expected, report.text()
    assert failure.reproduced is True
    assert len(failure.schedule) <= 1  # shrunk: one bad answer (or none) is enough for each of these flaws
    text = report.text()
    assert f"[{expected}]" in text and "transcript:" in text and "replay: sfmock check" in text
    assert "sk-sfmock-check" not in text  # the key is masked in the report


@needs_curl
def test_the_first_run_answers_after_the_modelled_latency_and_a_shorter_read_timeout_fails() -> None:
    short = ("bash", "-c", POST.replace("curl -s ", "curl -s --max-time 0.3 ") + " || exit 1")
    report = check(short, checks=["timeouts"])
    failure = report.failure
    assert failure is not None, report.text()
    assert failure.check == "timeouts" and failure.schedule == () and failure.reproduced is True
    latency = failure.result.latency
    assert 0.3 < latency <= TIMINGS["latency"]  # what the fake models for the request (Kolors: ~1.9 s), capped
    assert failure.message.startswith("request 1 timed out after 0.3s on a normal answer")
    assert f"a generation's answer came after {latency:.1f}s, its latency" in failure.message
    gave_up = failure.result.run.generations[0]
    assert gave_up.failure == "timeout" and gave_up.ended - gave_up.started < latency  # when it hung up
    # the same program with a timeout longer than the latency waits for it and passes
    patient = check(("bash", "-c", POST.replace("curl -s ", "curl -s --max-time 5 ")), schedule=[], checks=["timeouts"])
    assert patient.passed, patient.text()
    # the other runs answer at once: the latency costs a check one run's worth of real time
    other = run_program(ProgramSetup(command=short), [])
    assert other.status == 0 and other.latency == 0


@needs_node
def test_a_body_cut_after_the_headers_is_explained_beside_the_verdict() -> None:
    report = check(node("openai-sdk-retries-only.mjs"), schedule=["truncated"])
    assert report.failure is not None and report.failure.check == "retries", report.text()
    assert report.failure.message.startswith("gave up after a transient truncated on attempt 1")
    assert "the openai npm package among them" in report.failure.message
    assert "retry the call around the SDK" in report.failure.message


@needs_curl
def test_a_client_that_used_the_url_of_a_cut_answer_did_not_give_up() -> None:
    # the README's curl client before it checked curl's exit status: it takes the URL out of a
    # body cut after it, and the download of that URL meets a 403, which it reports
    careful = (SHELL_CLIENTS / "curl-careful.sh").read_text("utf-8")
    trusting = careful.replace(" || status=000 # no whole answer: curl failed", "").replace(" || status=000", "")
    assert trusting != careful
    result = run_program(ProgramSetup(command=("bash", "-c", trusting)), ["truncated", "download-403"])
    assert [(e.failure, e.status) for e in result.run.exchanges] == [("truncated", 200), (None, 403)]
    assert result.status == 1 and "download failed: 403" in result.stderr
    assert judge(result, check_names(None)) is None  # not "gave up after a transient truncated"


# --- the command line: exit status, replay, JUnit ---


@needs_curl
def test_the_cli_replays_a_failure_and_writes_junit(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    junit = tmp_path / "report.xml"
    status = main(["check", "--quiet", "--budget", "60", "--junit", str(junit), "--", *bash("curl-no-retries.sh")])
    out = capsys.readouterr().out
    assert status == 1, out
    replay = next(line for line in out.splitlines() if line.startswith("replay: "))[len("replay: ") :]
    words = shlex.split(replay)
    assert words[:2] == ["sfmock", "check"] and "--schedule" in words
    assert main([words[1], "--quiet", *words[2:]]) == 1  # the replay line fails the same way
    assert "[retries]" in capsys.readouterr().out
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None and suite.get("failures") == "1" and suite.get("errors") == "0"
    failed = [case.get("name") for case in suite.iter("testcase") if case.find("failure") is not None]
    assert failed == ["retries"]
    assert int(suite.get("tests", "0")) == len(list(suite.iter("testcase"))) > 5


@needs_curl
def test_the_cli_exits_0_when_the_client_passes(tmp_path: Path) -> None:
    junit = tmp_path / "report.xml"
    argv = ["check", "--quiet", "--max-examples", "4", "--junit", str(junit), "--", *bash("curl-careful.sh")]
    assert main(argv) == 0
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None and suite.get("failures") == "0"


def test_a_program_that_cannot_start_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    junit = tmp_path / "report.xml"
    assert main(["check", "--quiet", "--junit", str(junit), "--", str(tmp_path / "no-such-program")]) == 2
    assert "cannot start" in capsys.readouterr().err
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None and suite.get("errors") == "1"


def test_a_program_that_never_reaches_the_fake_is_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--quiet", "--", "bash", "-c", "echo hello"]) == 2
    err = capsys.readouterr().err
    assert "nothing was tested" in err and "SILICONFLOW_BASE_URL" in err and "hello" in err


def test_a_program_killed_at_its_time_limit_before_a_request_is_told_so(capsys: pytest.CaptureFixture[str]) -> None:
    # outsider21: "(it exited None); does it read SILICONFLOW_BASE_URL?" for a --timeout too short
    assert main(["check", "--quiet", "--timeout", "0.2", "--", "sleep", "30"]) == 2
    err = capsys.readouterr().err
    assert "killed at --timeout 0.2s before it sent one: is the time limit too short?" in err
    assert "exited None" not in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["check"], "give the program to check after --"),
        (["check", "--budget", "0", "--", "true"], "--budget: 0 is not positive; expected seconds"),
        (["check", "--jobs", "0", "--", "true"], "--jobs: 0 is not positive; expected runs at a time"),
        (["check", "--seed", "-1", "--", "true"], "--seed: -1 is out of range; expected a whole number from 0"),
        (["check", "--seed", "9" * 20, "--", "true"], "the seed of the search and of its fakes"),  # not serve's
        (["check", "--request", "{", "--", "true"], "--request: not JSON"),
        (["check", "--checks", "retries,speed", "--", "true"], "unknown check 'speed'"),
        (["check", "--outcomes", "503,teapot", "--", "true"], "unknown outcome 'teapot'"),
        (["check", "--schedule", "503,teapot", "--", "true"], "unknown outcome 'teapot' in the schedule"),
    ],
)
def test_bad_usage_is_exit_2_with_a_message(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    assert message in capsys.readouterr().err


# --- one run: the environment, the timings, the checks only a program needs ---


@needs_curl
def test_a_run_gets_its_environment_and_a_fake_of_its_own() -> None:
    script = (
        'echo "$SILICONFLOW_BASE_URL $OPENAI_BASE_URL $SFMOCK_REQUEST"; test "$OPENAI_API_KEY" = "$SILICONFLOW_API_KEY"'
    )
    setup = ProgramSetup(command=("bash", "-c", script), request={"model": "Qwen/Qwen-Image", "prompt": "x"})
    first, second = run_program(setup, []), run_program(setup, [])
    assert first.status == 0
    api, same, request = first.stdout.split()
    assert api == same and api.startswith("http://127.0.0.1:") and api.endswith("/v1")
    assert request == '{"model":"Qwen/Qwen-Image","prompt":"x"}'
    assert first.stdout != second.stdout  # another port: a fake per run


def test_schedules_are_shortened_to_real_time_limits() -> None:
    rule = short_scenario(["timeout", "slow", "ok"]).rules[0]
    assert rule.steps[0].hang == TIMINGS["hang"]
    assert rule.steps[1].slow_body is not None and rule.steps[1].slow_body[1] == TIMINGS["slow_interval"]
    assert rule.steps[2].is_pass


@needs_curl
def test_exit_0_without_an_image_and_a_mismatched_saved_image_are_caught() -> None:
    post = POST
    report = check(("bash", "-c", post), schedule=[])
    assert report.failure.check == "downloads"
    report = check(("bash", "-c", post), schedule=[], checks=["exit-status"])
    assert report.failure.message == "reported success (exit 0) without an image: it never downloaded the image"
    fake = f'{bash("curl-careful.sh")[1]} >/dev/null && echo not-a-png > "$SFMOCK_OUTPUT"'
    report = check(("bash", "-c", fake), schedule=[])
    assert report.failure.check == "saved-image", report.text()
    assert "are not the image served" in report.failure.message


def test_the_readme_shows_the_clients_the_suite_runs() -> None:
    section = page("other-languages")
    assert f"```js\n{(NODE_CLIENTS / 'openai-careful.mjs').read_text('utf-8')}```" in section
    assert f"```bash\n{(SHELL_CLIENTS / 'curl-careful.sh').read_text('utf-8')}```" in section
    from sfmock.testing.programs import program_environment

    for name in program_environment("http://127.0.0.1:1", ProgramSetup(command=("x",)), Path("out.png")):
        assert f"`{name}`" in section, f"{name} is not documented"
    for check_name in ("key-not-printed", "exit-status", "saved-image", "retries", "downloads", "errors"):
        assert f"| `{check_name}`" in section or f"`{check_name}`," in section


POST = (
    'curl -s -o /dev/null -H "Authorization: Bearer $SILICONFLOW_API_KEY" -d "$SFMOCK_REQUEST" '
    '"$SILICONFLOW_BASE_URL/images/generations"'
)


@needs_curl
def test_a_run_past_its_time_limit_is_killed_and_fails_exit_status() -> None:
    report = check_program(
        ProgramSetup(command=("bash", "-c", f"{POST}; sleep 30"), timeout=1), schedule=[], checks=["exit-status"]
    )
    assert report.failure is not None and report.failure.check == "exit-status"
    assert report.failure.message.startswith("did not finish in time and was killed")
    assert report.failure.result.status is None and report.failure.result.duration < 29


@needs_curl
def test_the_budget_bounds_the_search_and_progress_is_printed() -> None:
    lines: list[str] = []
    setup = ProgramSetup(command=bash("curl-careful.sh"), cwd=str(TESTS))
    report = check_program(setup, budget=2, max_examples=10_000, progress=lines.append)
    assert report.passed
    assert 1 <= report.runs < 10_000
    assert lines[0].startswith("checking bash ") and "budget 2s" in lines[0]
    runs = [line for line in lines if " run " in line]
    assert len(runs) == report.runs and all(": passed" in line for line in runs)


@needs_curl
def test_the_key_is_masked_in_the_report_and_the_junit_file(tmp_path: Path) -> None:
    junit = tmp_path / "report.xml"
    leak = f'{bash("curl-careful.sh")[1]}; echo "key: $SILICONFLOW_API_KEY" >&2'
    assert main(["check", "--quiet", "--schedule", "", "--junit", str(junit), "--", "bash", "-c", leak]) == 1
    xml = junit.read_text("utf-8")
    assert "key-not-printed" in xml and "printed the API key on stderr: 'key: &lt;the API key&gt;'" in xml
    assert "sk-sfmock-check" not in xml


@needs_curl
def test_ctrl_c_kills_the_running_program_and_exits_130(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    program = f"{POST}; echo $$ > {shlex.quote(str(pid_file))}; sleep 60"
    argv = [sys.executable, "-m", "sfmock", "check", "--quiet", "--", "bash", "-c", program]
    checker = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    for _ in range(400):  # the program is running once it wrote its pid
        if pid_file.exists() and pid_file.read_text().strip():
            break
        time.sleep(0.05)
    pid = int(pid_file.read_text())
    checker.send_signal(signal.SIGINT)
    _, err = checker.communicate(timeout=30)
    assert checker.returncode == 130, err
    assert _gone(pid), "the program outlived the check"


def _gone(pid: int) -> bool:
    """Exited (a zombie whose parent has gone counts: it runs no more)."""
    for _ in range(100):
        try:
            state = Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0]
        except (FileNotFoundError, IndexError):
            return True
        if state == "Z":
            return True
        time.sleep(0.05)
    return False


@needs_curl
def test_the_fake_takes_a_config_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "sfmock.yaml"
    config.write_text("accounts:\n  - keys: [sk-somebody-else]\n")
    argv = ["check", "--quiet", "--schedule", "", "--config", str(config), "--", *bash("curl-careful.sh")]
    assert main(argv) == 1
    out = capsys.readouterr().out
    assert "[exit-status] exited 1 without an image, and no fault was scheduled" in out and "-> 401" in out
    assert f"--config {config}" in out  # the replay line keeps the config
    config.write_text("accounts:\n  - keys: [sk-sfmock-check-0123456789]\n")
    assert main(argv) == 0
    config.write_text("url_ttl: soon\n")
    assert main(argv) == 2
    assert "url_ttl" in capsys.readouterr().err


@needs_curl
def test_one_job_searches_the_same_schedules_for_the_same_seed() -> None:
    def schedules_tried(seed: int) -> list[str]:
        lines: list[str] = []
        setup = ProgramSetup(command=bash("curl-careful.sh"), cwd=str(TESTS), seed=seed)
        check_program(setup, jobs=1, max_examples=5, outcomes=["ok", "400", "401", "404"], progress=lines.append)
        return [line.split(": ", 1)[1].split(" exit ")[0] for line in lines if " run " in line]

    first = schedules_tried(3)
    assert first[:4] == ["[]", "['400']", "['401']", "['404']"]  # every answer a success, then each alone
    assert len(first) > 4  # then the search
    assert schedules_tried(3) == first


# --- what a program is judged on: faithful-request only when it takes $SFMOCK_REQUEST ---

OWN_REQUEST = (  # a fixed request of its own, no seed: it reads nothing of $SFMOCK_REQUEST
    'curl -sf -o /dev/null -H "Authorization: Bearer $SILICONFLOW_API_KEY" -H "Content-Type: application/json" '
    '-d \'{"model":"Kwai-Kolors/Kolors","prompt":"a cat on a piano"}\' "$SILICONFLOW_BASE_URL/images/generations"'
)
DROPS_SEED = (  # takes $SFMOCK_REQUEST, and drops its seed
    'curl -sf -o /dev/null -H "Authorization: Bearer $SILICONFLOW_API_KEY" -H "Content-Type: application/json" '
    '-d "$(echo "$SFMOCK_REQUEST" | sed \'s/,"seed":[0-9]*//\')" "$SILICONFLOW_BASE_URL/images/generations"'
)


@needs_curl
def test_a_program_with_a_request_of_its_own_is_not_judged_on_faithful_request(tmp_path: Path) -> None:
    report = check(("bash", "-c", OWN_REQUEST), schedule=[], checks=["valid-requests", "faithful-request"])
    assert report.passed, report.text()
    why = report.not_applied["faithful-request"]
    assert why.startswith("it chooses its own request") and '"a cat on a piano"' in why
    assert "not applied: faithful-request (it chooses its own request" in report.text()
    write_report(tmp_path / "report.xml", report)
    suite = ET.parse(tmp_path / "report.xml").getroot().find("testsuite")
    assert suite is not None and suite.get("skipped") == "1" and suite.get("tests") == "2"
    skipped = [case.get("name") for case in suite.iter("testcase") if case.find("skipped") is not None]
    assert skipped == ["faithful-request"]


@needs_curl
def test_a_program_that_takes_the_request_and_drops_a_field_is_caught() -> None:
    report = check(("bash", "-c", DROPS_SEED), schedule=[], checks=["faithful-request"])
    assert report.failure is not None and report.failure.check == "faithful-request", report.text()
    assert "dropped the field 'seed'" in report.failure.message
    assert report.not_applied == {}


@needs_curl
def test_the_request_given_with_the_request_option_is_always_judged(capsys: pytest.CaptureFixture[str]) -> None:
    request = '{"model":"Kwai-Kolors/Kolors","prompt":"a cat on a piano","seed":7}'
    argv = ["check", "--quiet", "--schedule", "", "--checks", "faithful-request", "--request", request]
    assert main([*argv, "--", "bash", "-c", OWN_REQUEST]) == 1
    out = capsys.readouterr().out
    assert "[faithful-request] request 1 dropped the field 'seed'" in out
    assert f"--request '{request}'" in out  # the replay line keeps it: the same judgement


# --- report wording: no internal names, one line per progress line; replay lines run as printed ---

SAYS_TWO_LINES = f"{POST}; echo it went wrong >&2; echo see above >&2; exit 1"


@needs_curl
def test_progress_lines_are_one_line_each_and_name_no_internal_class() -> None:
    lines: list[str] = []
    setup = ProgramSetup(command=("bash", "-c", SAYS_TWO_LINES))
    report = check_program(setup, schedule=["400"], checks=["errors"], progress=lines.append)
    assert report.failure is not None and report.failure.check == "errors"
    assert report.failure.message.startswith("exited 1 after a 400, and its output lacks its status (400)")
    assert "it printed last: 'see above'" in report.failure.message
    for line in [*lines, report.text()]:
        assert "ProgramExit" not in line and "\\n" not in line, line
    assert all("\n" not in line for line in lines)


@needs_curl
@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ([], "retries"),
        (["--checks", "retries,exit-status", "--max-attempts", "5", "--timeout", "20"], "retries"),
    ],
    ids=["defaults", "options"],
)
def test_the_printed_replay_line_reproduces_the_verdict_in_a_shell(
    options: list[str], expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["check", "--quiet", *options, "--", *bash("curl-no-retries.sh")]) == 1
    out = capsys.readouterr().out
    verdict = out.splitlines()[0]
    replay = next(line for line in out.splitlines() if line.startswith("replay: "))[len("replay: ") :]
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(replay, shell=True, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 1, done.stderr
    assert done.stdout.splitlines()[0] == verdict and f"[{expected}]" in verdict
    assert next(line for line in done.stdout.splitlines() if line.startswith("replay: ")) == f"replay: {replay}"


@needs_curl
def test_a_schedule_the_same_as_a_run_as_far_as_the_program_asked_is_not_run_again() -> None:
    # POST asks once and never downloads: a schedule is [] or ['400'] to it, whatever follows
    lines: list[str] = []
    setup = ProgramSetup(command=("bash", "-c", POST))
    outcomes = ["ok", "400", "download-403"]
    report = check_program(
        setup, checks=["valid-requests"], jobs=1, max_examples=20, outcomes=outcomes, progress=lines.append
    )
    assert report.passed, report.text()
    assert report.runs == 2, report.text()  # [] and ['400']; ['download-403'] and every drawn one recalled
    assert report.recalled >= 1 and "not run again" in report.text()
    assert any("['download-403'] is run 1 as far as the program asked" in line for line in lines), lines
    assert report.outcomes["download-403"] >= 1 and not report.unmet  # met as by a run of its own


@needs_curl
def test_the_settings_decide_which_outcomes_are_drawn() -> None:
    from sfmock.config import Settings

    setup = ProgramSetup(command=("bash", "-c", POST), settings=Settings(rate_limit_headers=True, dialect="observed"))
    report = check_program(setup, checks=["valid-requests"], max_examples=1)
    assert report.passed and not report.unmet, report.text()
    assert {"429-retry-after", "503-retry-after", "429-observed"} <= set(report.outcomes)


SHRINKING_WAITS = (  # waits 0.6 s, then 0.2 s: as a jittered back-off may, by chance
    'for wait in 0.6 0.2 0; do code=$(curl -s -o /dev/null -w "%{http_code}" '
    '-H "Authorization: Bearer $SILICONFLOW_API_KEY" -d "$SFMOCK_REQUEST" "$SILICONFLOW_BASE_URL/images/generations"); '
    '[ "$code" = 200 ] && break; sleep $wait; done'
)


AT_ONCE = (  # retries a 429 or a 5xx at once, four attempts
    'for try in 1 2 3 4; do code=$(curl -s -o /dev/null -w "%{http_code}" '
    '-H "Authorization: Bearer $SILICONFLOW_API_KEY" -d "$SFMOCK_REQUEST" "$SILICONFLOW_BASE_URL/images/generations"); '
    "case $code in 429|5*) ;; *) break ;; esac; done"
)
ONE_SHORT_WAIT = (  # waits 0.01 s once, then 0.6 s: as a jittered back-off may draw, by chance
    'for wait in 0.01 0.6 0; do code=$(curl -s -o /dev/null -w "%{http_code}" '
    '-H "Authorization: Bearer $SILICONFLOW_API_KEY" -d "$SFMOCK_REQUEST" "$SILICONFLOW_BASE_URL/images/generations"); '
    '[ "$code" = 200 ] && break; sleep $wait; done'
)


ONE_SLOW_RETRY = (  # retries at once, but its second retry comes 80 ms late: as on a busy machine
    'for wait in 0 0.08 0 0; do code=$(curl -s -o /dev/null -w "%{http_code}" '
    '-H "Authorization: Bearer $SILICONFLOW_API_KEY" -d "$SFMOCK_REQUEST" "$SILICONFLOW_BASE_URL/images/generations"); '
    "case $code in 429|5*) sleep $wait ;; *) break ;; esac; done"
)


@needs_curl
def test_a_retry_at_once_is_shrunk_though_a_busy_machine_slows_one_retry_of_the_smaller_schedule() -> None:
    # a retry at once is found where a run retried within 50 ms twice; the runs that shrink
    # it judge with the replay's 150 ms: on a fresh clone under load, curl started late in
    # the two-503 run, which then read as one quick retry, and the failure stayed at three
    report = check(("bash", "-c", ONE_SLOW_RETRY), checks=["backoff"])
    assert report.failure is not None and report.failure.message.startswith("retried a "), report.text()
    assert len(report.failure.schedule) == 2 and report.failure.reproduced is True, report.text()


@needs_curl
def test_a_program_that_retries_at_once_is_caught_by_backoff() -> None:
    # a program cannot be run again under another random state: a retry of a 429 or 503
    # within 50 ms counts as at once where the run did so more than once (outsider10: such
    # programs in Node, Perl and curl passed)
    report = check(("bash", "-c", AT_ONCE), checks=["backoff"])
    assert report.failure is not None and report.failure.check == "backoff", report.text()
    assert report.failure.message.startswith("retried a "), report.text()
    assert len(report.failure.schedule) == 2 and report.failure.reproduced is True, report.text()
    # one short wait alone may be a jittered draw: not judged
    assert check(("bash", "-c", ONE_SHORT_WAIT), schedule=["503", "503"], checks=["backoff"]).passed


def _retries_503(flag: Path, *, before: int, wait: float) -> tuple[str, ...]:
    """A Python program that retries a 5xx up to 4 attempts in all, in its own process (no
    process started for a retry: "at once" is a millisecond, however busy the machine), at
    once until a run of it has retried ``before`` times, then after ``wait`` seconds (the
    flag file is its memory between runs)."""
    code = f"""
import json, os, pathlib, time, urllib.error, urllib.request
flag, short = pathlib.Path({str(flag)!r}), 0
for attempt in range(4):
    request = urllib.request.Request(
        os.environ["SILICONFLOW_BASE_URL"] + "/images/generations",
        data=os.environ["SFMOCK_REQUEST"].encode(),
        headers={{"Authorization": "Bearer " + os.environ["SILICONFLOW_API_KEY"], "Content-Type": "application/json"}},
    )
    try:
        urllib.request.urlopen(request, timeout=10).read()
        break
    except urllib.error.HTTPError as error:
        if error.code < 500 or attempt == 3:
            break
        if flag.exists():
            time.sleep({wait})
        short += 1
if short >= {before}:
    flag.touch()
"""
    return (sys.executable, "-c", code)


def test_a_retry_at_once_that_a_busy_machine_slows_in_the_replay_is_still_caught(tmp_path: Path) -> None:
    # on a busy machine curl may start 60 ms or more after the last answer: the replay of a
    # program that retries at once found no retry within 50 ms and passed it, "not judged"
    # (a fresh clone under load, 2026-12-07); the replay confirms a retry within 150 ms. The
    # program retries in its own process, so that its first run is "at once" on any machine
    # (as curl, it started more than 50 ms late in a fresh clone's suite, 2026-12-08)
    flag = tmp_path / "caught"
    report = check(_retries_503(flag, before=2, wait=0.08), checks=["backoff"], outcomes=["503"], max_examples=5)
    assert flag.exists()  # a run retried at once; the later ones, and the replay, 80 ms later
    assert report.failure is not None and report.failure.check == "backoff", report.text()
    assert report.failure.message.startswith("retried a ") and report.failure.reproduced is True, report.text()


def test_short_waits_a_replay_does_not_repeat_are_not_judged(tmp_path: Path) -> None:
    # a correct program with full jitter may draw two waits under 50 ms in one run: it was
    # accused, "FLAKY: a replay of it passed"; its replay draws its waits again
    flag = tmp_path / "caught"
    report = check(_retries_503(flag, before=3, wait=0.6), checks=["backoff"], outcomes=["503"], max_examples=5)
    assert flag.exists()  # a run retried at once, twice or more
    assert report.passed, report.text()
    assert "not judged: [backoff] retried a 503" in report.text(), report.text()
    assert "its replay backed off" in report.text()


def _breaker_that_never_closes(state: Path) -> str:
    """Opens (a state file) after a run whose every attempt failed, and never closes again."""
    return (
        f'[ -e {state} ] && {{ echo "circuit open" >&2; exit 1; }}; body=$(mktemp); '
        'for wait in 1 2 0; do code=$(curl -s -o "$body" -w "%{http_code}" '
        '-H "Authorization: Bearer $SILICONFLOW_API_KEY" -d "$SFMOCK_REQUEST" '
        '"$SILICONFLOW_BASE_URL/images/generations"); '
        'case $code in 200) url=$(python3 -c \'import json, sys; print(json.load(sys.stdin)["images"][0]["url"])\' '
        '< "$body") && curl -sf -o /dev/null "$url" && exit 0; exit 1 ;; 429|5*) sleep $wait ;; *) exit 1 ;; esac; '
        f"done; touch {state}; exit 1"
    )


@needs_curl
def test_a_program_that_stops_asking_is_not_passed(tmp_path: Path) -> None:
    # outsider13: once its breaker opened, the program asked nothing; every later schedule was
    # "the same as far as it asked" as that run, never run, and an exit 1 after a fault that was
    # scheduled (never met) passed
    report = check(("bash", "-c", _breaker_that_never_closes(tmp_path / "open")), checks=["exit-status"])
    assert report.failure is not None and report.failure.check == "exit-status", report.text()
    assert "without sending a request" in report.failure.message
    assert (tmp_path / "open").exists()


@needs_curl
def test_a_back_off_that_shrinks_is_not_judged_for_a_program() -> None:
    # a program cannot be rerun under another random state: jitter and a shrinking back-off look alike
    report = check(("bash", "-c", SHRINKING_WAITS), schedule=["503", "503"], checks=["backoff"])
    assert report.passed, report.text()
    assert report.outcomes == {"503": 2, "ok": 1}


@needs_curl
def test_a_timeout_the_server_ends_is_named_as_the_program_saw_it() -> None:
    # a program's "timeout" is a 2 s hang, then a closed connection: curl said "Empty reply
    # from server", and the verdict said "a transient timeout", which curl's --retry retries
    # (outsider17); the verdict says what the program met
    report = check(bash("curl-no-retries.sh"), schedule=["timeout"], checks=["retries"])
    assert report.failure is not None and report.failure.check == "retries", report.text()
    hang = TIMINGS["hang"]
    assert f"timeout (no answer for {hang:g}s, then the connection closed)" in report.failure.message, report.text()
