"""Errors that teach: a misspelt name gets the close ones ("did you mean"), a file given
in the other's place is named for what it is, a YAML error says where once."""

from __future__ import annotations

from pathlib import Path

import pytest

from sfmock.chaos.fault_header import parse_fault_header
from sfmock.chaos.faults import Scenario
from sfmock.chaos.verify import Pattern
from sfmock.cli import main
from sfmock.config import Settings, load_settings, settings_from
from sfmock.errors import ConfigError
from sfmock.testing.program_rules import check_names
from sfmock.testing.strategies import schedules
from sfmock.wording import closest, did_you_mean, plural, unknown

FIXTURES = Path(__file__).parent.parent / "fixtures"


def test_the_helper_names_the_close_choices_only() -> None:
    assert closest("url_tl", ["url_ttl", "port", "host"]) == ["url_ttl"]
    assert closest("PORT", ["port", "host"]) == ["port"]
    assert did_you_mean("zzzz", ["port", "host"]) == ""
    assert did_you_mean("eror", ["error", "code"]) == "did you mean 'error'?"
    assert unknown("check", "retires", ["retries", "backoff"]) == (
        "unknown check 'retires'; did you mean 'retries'? expected one of retries, backoff"
    )
    # a long name is compared by its start: a client's megabyte costs no more than a typo
    assert closest("url_ttl" + "x" * 1_000_000, ["url_ttl"]) == []


def _serve_error(tmp_path: Path, text: str, capsys: pytest.CaptureFixture[str], *args: str) -> str:
    path = tmp_path / "config.yaml"
    path.write_text(text, "utf-8")
    assert main(["serve", "--config", str(path), *args]) == 2
    return capsys.readouterr().err


def test_a_misspelt_config_key_gets_the_key_meant_not_all_35(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    err = _serve_error(tmp_path, "url_tl: 600\n", capsys)
    assert f"{tmp_path / 'config.yaml'}: url_tl: unknown key; did you mean 'url_ttl'?" in err
    assert "journal_max_bytes" not in err  # not the list of every key


def test_a_key_far_from_all_still_lists_them(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    err = _serve_error(tmp_path, "colour: blue\n", capsys)
    assert "colour: unknown key; expected one of the keys accounts, balance_status," in err


def test_a_misspelt_nested_key_and_enum_value(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    err = _serve_error(tmp_path, "limits: {ipm: 2, ipdd: 3}\n", capsys)
    assert "limits.ipdd: unknown key; did you mean 'ipd'?" in err
    err = _serve_error(tmp_path, "dialect: observd\n", capsys)
    assert "dialect: 'observd' is not one of ['documented', 'observed', 'plain']; did you mean 'observed'?" in err


def test_settings_and_marker_keywords_get_it_too() -> None:
    with pytest.raises(ConfigError, match=r"@pytest.mark.sfmock: url_tl: unknown key; did you mean 'url_ttl'\?"):
        settings_from({"url_tl": 600}, "@pytest.mark.sfmock")
    with pytest.raises(ConfigError, match=r"scenario: 'flakey': no such shipped scenario; did you mean 'flaky'"):
        settings_from({"scenario": "flakey"}, "@pytest.mark.sfmock")
    meant = r"prices\.Kwai-Kolors/Kolor: unknown model; did you mean 'Kwai-Kolors/Kolors'"
    with pytest.raises(ConfigError, match=meant):
        Settings(prices={"Kwai-Kolors/Kolor": "1"})


def test_a_misspelt_scenario_field(tmp_path: Path) -> None:
    path = tmp_path / "scenario.yaml"
    path.write_text("rules:\n  - when: {paht: /v1/*}\n    action: {drop: true}\n", "utf-8")
    with pytest.raises(ConfigError, match=r"rules\[0\]\.when\.paht: unknown key; did you mean 'path'\?"):
        Scenario.load(path)
    path.write_text("rules:\n  - action: {dorp: true}\n", "utf-8")
    with pytest.raises(ConfigError, match=r"rules\[0\]\.action\.dorp: unknown key; did you mean 'drop'\?"):
        Scenario.load(path)


def test_a_misspelt_fault_item_gets_the_item_meant_and_the_list() -> None:
    with pytest.raises(ValueError, match="unknown item 'eror=503'; did you mean 'error'") as caught:
        parse_fault_header("eror=503")
    assert "retry-after" in str(caught.value) and "slow-body" in str(caught.value)
    with pytest.raises(ValueError, match="unknown item 'teapot'; expected a status") as caught:
        parse_fault_header("teapot")
    assert "expired-url" in str(caught.value)


def test_misspelt_outcomes_checks_and_pattern_fields() -> None:
    with pytest.raises(ValueError, match="unknown outcome '5033'; did you mean '503'"):
        schedules(["5033"])
    with pytest.raises(ValueError, match="unknown check 'retires'; did you mean 'retries'"):
        check_names(["retires"])
    with pytest.raises(ValueError, match="pattern: unknown field 'staus'; did you mean 'status'"):
        Pattern.from_mapping({"staus": 503})


@pytest.mark.parametrize(
    ("argv", "phrase"),
    [
        (["serv"], "invalid choice: 'serv' (choose from 'serve',"),
        (["serv"], "; did you mean 'serve'?"),
        (["contract", "dif", "a", "b"], "did you mean 'diff'?"),
        (["serve", "--prot", "80"], "unrecognized arguments: --prot 80; --prot: did you mean '--port'"),
        (["serve", "--log-level", "infoo"], "did you mean 'info'?"),
    ],
)
def test_a_misspelt_command_line_name(argv: list[str], phrase: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    assert phrase in capsys.readouterr().err


def test_a_scenario_given_as_a_config_is_named_as_such(capsys: pytest.CaptureFixture[str]) -> None:
    flaky = FIXTURES / "scenarios" / "flaky.yaml"
    assert main(["serve", "--config", str(flaky)]) == 2
    err = capsys.readouterr().err
    assert f"{flaky}: (top level): is a scenario file (it has 'rules'), not a config file" in err
    assert "pass it with --scenario FILE" in err and "unexpected" not in err


def test_a_config_given_as_a_scenario_is_named_as_such(capsys: pytest.CaptureFixture[str]) -> None:
    config = FIXTURES / "open.yaml"
    assert main(["serve", "--scenario", str(config)]) == 2
    err = capsys.readouterr().err
    assert f"{config}: (top level): is a config file (it has no 'rules'), not a scenario file" in err
    assert "pass it with --config FILE" in err
    with pytest.raises(ConfigError, match="is a config file"):
        load_settings(None, {"scenario": str(config)})


@pytest.mark.parametrize("flag", ["--config", "--scenario"])
def test_a_yaml_syntax_error_names_file_line_and_column_once(
    tmp_path: Path, flag: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("rules:\n  - name: [a\n    x: 2\n", "utf-8")
    assert main(["serve", flag, str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"sfmock: error: {path}: line 3, column 6: not valid YAML: did not find expected ','")
    assert err.count("line") == 2  # where it failed, and where the sequence it was reading began
    assert "<unicode string>" not in err and err.count("valid YAML") == 1 and "\n" not in err


def test_list_options_name_their_values_in_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["check", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for option, names in {
        "--outcomes LIST": ["429-retry-after", "download-expired", "402-balance"],
        "--checks LIST": ["key-not-printed", "backoff", "saved-image"],
        "--schedule LIST": ["503", "dropped"],
    }.items():
        described = text.split(option, 2)[2].split(" --", 1)[0]  # its entry, past the usage line
        for name in names:
            assert name.replace("-", "- ") in described or name in described, (option, name)


def test_contract_diff_help_says_what_old_and_new_are(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["contract", "diff", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "OLD the contract a client was built on (an OpenAPI file)" in text
    assert "NEW the contract it now meets (an OpenAPI file)" in text


def test_counts_take_the_right_number(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from sfmock.fidelity.contractdiff import Break, format_breaks

    assert (plural(1, "run"), plural(0, "run"), plural(2, "entry", "entries")) == ("1 run", "0 runs", "2 entries")
    path = tmp_path / "one.yaml"
    path.write_text("name: one\nrules: [{action: {drop: true}}]\n", "utf-8")
    assert main(["validate", str(path)]) == 0
    assert "a valid scenario ('one', 1 rule)" in capsys.readouterr().out
    one = Break(where="POST /v1/x 200", kind="removed field", detail="'a' is gone")
    assert format_breaks([one]).startswith("breaking: 1 change\n")
    assert format_breaks([one, one]).startswith("breaking: 2 changes\n")


def test_a_long_line_with_the_key_is_shown_around_it_and_its_cuts_are_said() -> None:
    # outsider12: "... http://127.0.0.1:402" read as port 402, the line cut at 160 characters
    from sfmock.testing.evidence import Run
    from sfmock.testing.program_rules import key_not_printed
    from sfmock.testing.programs import ProgramRun

    def printed(stderr: str) -> str | None:
        run = Run(schedule=(), exchanges=(), result=None, error=None, api_key="sk-k3y", max_attempts=6, min_attempts=3)
        return key_not_printed(ProgramRun(run=run, status=1, stdout="", stderr=stderr, saved=None, duration=0.1))

    url = "http://127.0.0.1:40237/v1/images/generations"
    message = printed(f"retry: curl -H 'Authorization: Bearer sk-k3y' -d '{'x' * 120}' {url}")
    assert message is not None and message.endswith('..."') and "127.0.0.1:402" not in message
    far = printed("z" * 300 + " key sk-k3y " + "y" * 300)
    assert far is not None and "...z" in far and "key <the API key> y" in far and far.endswith("...'")
    assert printed("key sk-k3y") == "printed the API key on stderr: 'key <the API key>'"
