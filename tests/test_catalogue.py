"""The bad-input catalogue: every entry point given bad input answers a documented 4xx,
or a clear error naming the source, the key and the expectation with a non-zero exit;
never a 500, a hang or lost state. (The request-body catalogue over a socket is in
tests/test_bad_input.py; bad marker keywords are in tests/test_marker.py.)"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import AUTH, contract_hook
from sfmock import ConfigError, Scenario, Settings, VirtualClock, load_settings
from sfmock.cli import main
from sfmock.server import FakeServer

GEN = "/v1/images/generations"
OK = {"model": "Kwai-Kolors/Kolors", "prompt": "a lighthouse"}

# (method, path, headers, body) -> the status the contract documents for it
ROUTES: dict[str, tuple[str, str, dict[str, str], bytes | None, int]] = {
    "clock: a string": ("POST", "/_sfmock/clock", {}, b'"later"', 400),
    "clock: an array": ("POST", "/_sfmock/clock", {}, b"[1, 2]", 400),
    "clock: advance backwards": ("POST", "/_sfmock/clock", {}, b'{"advance": -1}', 400),
    "clock: advance a string": ("POST", "/_sfmock/clock", {}, b'{"advance": "1h"}', 400),
    "clock: advance a boolean": ("POST", "/_sfmock/clock", {}, b'{"advance": true}', 400),
    "clock: NaN": ("POST", "/_sfmock/clock", {}, b'{"advance": NaN}', 400),
    "clock: two verbs": ("POST", "/_sfmock/clock", {}, b'{"advance": 1, "set": 2}', 400),
    "clock: unknown verb": ("POST", "/_sfmock/clock", {}, b'{"rewind": 1}', 400),
    "clock: not YAML": ("POST", "/_sfmock/clock", {}, b"{advance: [", 400),
    "journal: unknown filter": ("GET", "/_sfmock/journal?stauts=503", {}, None, 400),
    "journal: limit 0": ("GET", "/_sfmock/journal?limit=0", {}, None, 400),
    "journal: limit text": ("GET", "/_sfmock/journal?limit=all", {}, None, 400),
    "journal: since NaN": ("GET", "/_sfmock/journal?since=nan", {}, None, 400),
    "journal: status text": ("GET", "/_sfmock/journal?status=ok", {}, None, 400),
    "scenario: empty body": ("PUT", "/_sfmock/scenario", {}, b"", 400),
    "scenario: null": ("PUT", "/_sfmock/scenario", {}, b"null", 400),
    "scenario: an array": ("PUT", "/_sfmock/scenario", {}, b"[]", 400),
    "scenario: unknown key": ("PUT", "/_sfmock/scenario", {}, b'{"colour": "red"}', 400),
    "scenario: bad status": ("PUT", "/_sfmock/scenario", {}, b'{"rules": [{"action": {"error": 999}}]}', 400),
    "scenario: no action": ("PUT", "/_sfmock/scenario", {}, b'{"rules": [{"when": {}}]}', 400),
    "scenario: duplicate key": ("PUT", "/_sfmock/scenario", {}, b"rules: []\nrules: []\n", 400),
    "scenario: not YAML": ("PUT", "/_sfmock/scenario", {}, b"rules: [", 400),
    "fault: unknown item": ("POST", GEN, {"X-Sfmock-Fault": "explode"}, None, 400),
    "fault: status text": ("POST", GEN, {"X-Sfmock-Fault": "error=abc"}, None, 400),
    "fault: status 999": ("POST", GEN, {"X-Sfmock-Fault": "error=999"}, None, 400),
    "fault: twice": ("POST", GEN, {"X-Sfmock-Fault": "error=503;error=504"}, None, 400),
    "fault: two bare statuses": ("POST", GEN, {"X-Sfmock-Fault": "503;504"}, None, 400),
    "fault: code without status": ("POST", GEN, {"X-Sfmock-Fault": "code=50505"}, None, 400),
    "fault: negative delay": ("POST", GEN, {"X-Sfmock-Fault": "delay=-1"}, None, 400),
    "fault: truncate above 1": ("POST", GEN, {"X-Sfmock-Fault": "truncate=7"}, None, 400),
    "fault: drop with a value": ("POST", GEN, {"X-Sfmock-Fault": "drop=yes"}, None, 400),
    "fault: on the image host": ("GET", "/temporary/outputs/x.png", {"X-Sfmock-Fault": "explode"}, None, 400),
    "strict: not a switch": ("POST", GEN, {"X-Sfmock-Strict": "maybe"}, None, 400),
    "models: no key": ("GET", "/v1/models", {"Authorization": ""}, None, 401),
    "user info: not bearer": ("GET", "/v1/user/info", {"Authorization": "Basic eDp5"}, None, 401),
    "generation: wrong method": ("GET", GEN, {}, None, 405),
    "unknown path": ("GET", "/v2/images/generations", {}, None, 404),
    "image: no signature": ("GET", "/temporary/outputs/x.png", {}, None, 403),
}


@pytest.fixture(scope="module")
def server() -> Iterator[FakeServer]:
    with FakeServer(Settings(seed=1), clock=VirtualClock()) as live:
        yield live


@pytest.mark.parametrize("case", ROUTES.values(), ids=list(ROUTES))
def test_routes(server: FakeServer, case: tuple[str, str, dict[str, str], bytes | None, int]) -> None:
    method, path, headers, body, status = case
    server.reset()
    server.use_scenario({"name": "kept", "rules": []})
    with httpx.Client(base_url=server.url, timeout=10, event_hooks={"response": [contract_hook]}) as client:
        content = (
            body
            if body is not None
            else (b'{"model": "Kwai-Kolors/Kolors", "prompt": "x"}' if method == "POST" else None)
        )
        answer = client.request(method, path, content=content, headers={**AUTH, **headers})
        assert answer.status_code == status, answer.text
        if path.startswith("/_sfmock") and status == 400:
            assert answer.json()["error"].split(":")[0] in path  # names the route's concern
        # nothing was lost: the scenario is still there, and a good request still works
        assert client.get("/_sfmock/scenario").json()["name"] == "kept"
        assert client.post(GEN, json=OK, headers=AUTH).status_code == 200


CONFIG_FILES = {
    "url_ttl text": ("url_ttl: soon\n", "url_ttl", "integer"),
    "port too big": ("port: 70000\n", "port", "maximum"),
    "negative balance": ('default_balance: "-1"\n', "default_balance", "does not match"),
    "price of an unknown model": ('prices: {No/Model: "1"}\n', "prices.No/Model", "unknown model"),
    "limits preset unknown": ("limits: generous\n", "limits", "is not one of ['realistic', 'unlimited']"),
    "limit negative": ("limits: {ipm: -1}\n", "limits.ipm", "less than the minimum of 0"),
    "account without keys": ("accounts: [{id: a}]\n", "accounts[0]", "'keys' is a required property"),
    "key used twice": ("accounts: [{keys: [k]}, {keys: [k]}]\n", "accounts[1].keys[0]", "already used"),
    "key with a space": ("accounts: [{keys: ['a b']}]\n", "accounts[0].keys[0]", "An API key (no white space)"),
    "account model unknown": ("accounts: [{keys: [k], models: [No/Model]}]\n", "accounts[0].models[0]", "unknown"),
    "short control token": ("control_token: abc\n", "control_token", "is too short"),
    "unknown key": ("colour: blue\n", "colour", "unknown key; expected one of the keys accounts"),
    "duplicate key": ("seed: 1\nseed: 2\n", "(syntax)", "duplicate key 'seed' on line 2"),
    "not a mapping": ("- seed\n", "(top level)", "expected a mapping"),
    "unknown scenario": ("scenario: no-such\n", "scenario", "no such shipped scenario"),
}


@pytest.mark.parametrize("case", CONFIG_FILES.values(), ids=list(CONFIG_FILES))
def test_config_files(tmp_path: Path, case: tuple[str, str, str]) -> None:
    text, key, phrase = case
    path = tmp_path / "sfmock.yaml"
    path.write_text(text, "utf-8")
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    assert (info.value.source, info.value.key) == (str(path), key), str(info.value)
    assert phrase in info.value.expected, info.value.expected


SCENARIO_FILES = {
    "rules not a list": ("rules: {a: 1}\n", "rules", "is not of type 'array'"),
    "unknown action": (
        "rules: [{action: {explode: true}}]\n",
        "rules[0].action.explode",
        "unknown key; expected one of the keys delay",
    ),
    "probability above 1": ("rules: [{probability: 2, action: {drop: true}}]\n", "rules[0].probability", "maximum"),
    "nth zero": ("rules: [{nth: 0, action: {drop: true}}]\n", "rules[0].nth", "less than the minimum of 1"),
    "empty sequence": ("rules: [{sequence: []}]\n", "rules[0].sequence", "should be non-empty"),
    "duplicate key": ("name: a\nname: b\nrules: []\n", "(syntax)", "duplicate key 'name' on line 2"),
    "unknown top key": ("rulez: []\n", "rulez", "unknown key; did you mean 'rules'?"),
    "not YAML": ("rules: [\n", "line 2, column 1", "not valid YAML"),
}


@pytest.mark.parametrize("case", SCENARIO_FILES.values(), ids=list(SCENARIO_FILES))
def test_scenario_files(tmp_path: Path, case: tuple[str, str, str]) -> None:
    text, key, phrase = case
    path = tmp_path / "scenario.yaml"
    path.write_text(text, "utf-8")
    with pytest.raises(ConfigError) as info:
        Scenario.load(path)
    assert (info.value.source, info.value.key) == (str(path), key), str(info.value)
    assert phrase in info.value.expected, info.value.expected
    assert main(["validate", str(path)]) == 2  # the CLI says the same, with a non-zero exit


CLI: dict[str, tuple[list[str], str]] = {
    "no command": ([], "usage: sfmock"),
    "unknown command": (["fly"], "invalid choice"),
    "unknown flag": (["serve", "--bogus"], "usage: sfmock serve"),
    "port text": (["serve", "--port", "abc"], "invalid int value"),
    "url ttl zero": (["serve", "--url-ttl", "0"], "--url-ttl: 0 is less than the minimum of 1"),
    "bad log level": (["serve", "--log-level", "loud"], "invalid choice"),
    "bad limits": (["serve", "--limits", "generous"], "--limits"),
    "missing scenario file": (["serve", "--scenario", "/nonexistent.yaml"], "cannot be read"),
    "validate nothing": (["validate"], "usage: sfmock validate"),
    "validate a missing file": (["validate", "/nonexistent.yaml"], "/nonexistent.yaml: (file): cannot be read"),
}


@pytest.mark.parametrize("case", CLI.values(), ids=list(CLI))
def test_cli(case: tuple[list[str], str], capsys: pytest.CaptureFixture[str]) -> None:
    argv, phrase = case
    try:
        status = main(argv)
    except SystemExit as exc:
        status = int(exc.code or 0)
    assert status == 2
    assert phrase in capsys.readouterr().err


def test_the_catalogue_is_large_and_covers_every_entry_point() -> None:
    from test_bad_input import BODIES, FIELDS
    from test_marker import BAD_MARKERS

    sizes: dict[str, Any] = {
        "routes": len(ROUTES),
        "config files": len(CONFIG_FILES),
        "scenario files": len(SCENARIO_FILES),
        "cli": len(CLI),
        "marker": len(BAD_MARKERS),
        "fault header": sum(name.startswith("fault:") for name in ROUTES),
        "request bodies": len(BODIES) + len(FIELDS),
    }
    assert all(sizes.values()) and sum(sizes.values()) - sizes["fault header"] >= 60, sizes
    routes = {path.split("?")[0] for _, path, *_ in ROUTES.values()}
    assert {"/_sfmock/clock", "/_sfmock/journal", "/_sfmock/scenario", GEN, "/v1/models", "/v1/user/info"} <= routes
