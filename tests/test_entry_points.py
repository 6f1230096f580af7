# ruff: noqa: E501  (the catalogue: one row, one line, per config key)
"""Every config key through every entry point, written from the docs alone.

A key can be given in a config file (``sfmock serve --config FILE``), as a flag of
``sfmock serve`` (where the README's table names one), in ``@pytest.mark.sfmock(...)``
and as ``Settings(...)``. For each key of ``contracts/config.schema.yaml`` the table
``ROWS`` holds a good value, the effect the docs promise (observed on a running server by
``tests/entry_probes.py``), a bad value and a fragment of the expectation its error must
state. The catalogue checks that

- the good value has the same, documented effect through every entry point (servers of
  one group take all its keys at once: one process per entry point, not per key);
- a bad value stops every entry point with a message naming the source, the key and the
  expectation (exit status 2 and no traceback from the CLI, a set-up error from the
  marker, ``ConfigError`` from ``Settings``); an unknown key lists the allowed ones;
- a flag beats the config file ("Flags override the config file").

A key added to the schema without a row fails ``test_every_schema_key_has_a_row``; a row
is one line of ``ROWS``. Group ``PLAIN`` (expect ``200``) serves a key whose effect has
no probe yet: its good value must start every entry point's server, which must answer a
generation, and reach the in-process servers' settings.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import uvicorn
import yaml
from documentation import page
from entry_probes import PROBES, RECORDED

import sfmock.cli
from sfmock import ConfigError, Settings, VirtualClock, check_response
from sfmock.server import FakeServer

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = yaml.safe_load((ROOT / "contracts" / "config.schema.yaml").read_text("utf-8"))
SFMOCK = str(Path(sys.executable).with_name("sfmock"))
OPEN, ACCOUNTS, PLAIN, IMAGES = "open", "accounts", "plain", "images"
SAME = object()  # the observation is only compared across entry points (a random draw, seeded)
NO_LOSER = object()
RECORDED_SEED = "recorded-seed"  # resolved to the seed of the recorded answer
SCENARIO = "{scenario}"  # resolved to a scenario file in the test's folder
REPLAY = "{replay}"  # resolved to a folder of recordings made by `sfmock proxy --record`
SIGNING_KEY = "entry-signing-key-0123456789"
EFFECTIVE = "(effective settings)"
FAILED = "(the server or its probe failed)"
# keys whose effect an in-process server cannot show: it runs on a virtual clock, which
# moves only when told whatever frozen_clock says; there the effective settings are compared
SEEN_IN_SETTINGS_ONLY = {"frozen_clock"}


@dataclass(frozen=True)
class Row:
    """One config key: ``good`` through every entry point should be observed as
    ``expect`` (a value, ``SAME``, or a predicate); ``bad`` fails naming ``says``."""

    group: str
    good: Any
    expect: Any
    flag: tuple[str, ...] | None  # the good value as `sfmock serve` arguments; None: no flag
    bad: Any
    says: str
    bad_flag: tuple[str, ...] | None = None
    loser: Any = NO_LOSER  # a valid value in the file that the flag must override
    flag_says: str | None = None  # what the bad flag's error states, when not ``says``


# fmt: off
ROWS: dict[str, Row] = {
    "host": Row(ACCOUNTS, "127.0.0.2", ["127.0.0.2", "127.0.0.2"], ("--host", "127.0.0.2"), "", "non-empty|too short", ("--host", ""), "127.0.0.3"),
    "port": Row(OPEN, 0, True, ("--port", "0"), 70000, "maximum of 65535", ("--port", "70000")),
    "seed": Row(OPEN, 5, SAME, ("--seed", "5"), -1, "minimum of 0", ("--seed", "-1"), 6),
    "url_ttl": Row(OPEN, 60, "60", ("--url-ttl", "60"), "soon", "integer", ("--url-ttl", "604801"), 600, "maximum of 604800"),
    "public_url": Row(OPEN, "http://images.example.test/base", True, ("--public-url", "http://images.example.test/base"), "ftp://x", "does not match", ("--public-url", "ftp://x"), "http://loser.example.test"),
    "strict": Row(OPEN, True, [400, 20015], ("--strict",), "yes", "boolean", ("--strict=yes",), False, "ignored explicit argument"),
    "max_body_bytes": Row(OPEN, 2048, 413, ("--max-body-bytes", "2048"), 100, "minimum of 1024", ("--max-body-bytes", "100"), 1 << 20),
    "control_max_body_bytes": Row(OPEN, 2048, 413, ("--control-max-body-bytes", "2048"), 100, "minimum of 1024", ("--control-max-body-bytes", "100"), 1 << 20),
    "read_timeout": Row(OPEN, 0.5, True, ("--read-timeout", "0.5"), 0, "too small: it must be over 0", ("--read-timeout", "0"), 30),
    "signing_key": Row(OPEN, SIGNING_KEY, lambda seen: seen["here"] == 200, None, "short", "too short|non-empty"),
    "default_balance": Row(OPEN, "1.00", "1.00", None, "-1", "never negative"),
    "prices": Row(OPEN, {"Kwai-Kolors/Kolors": "0.40", "Tongyi-MAI/Z-Image-Turbo": "5"}, "0.60", None, {"Kwai-Kolors/Kolors": "cheap"}, "never negative"),
    "limits": Row(OPEN, "realistic", [200, 200, 429], ("--limits", "realistic"), "fast", r"not one of \['realistic', 'unlimited'\]", ("--limits", "fast"), "unlimited"),
    "model_limits": Row(OPEN, {"Qwen/Qwen-Image": {"ipm": 1}}, [200, 429], None, {"Qwen/Qwen-Image": {"ipm": -1}}, "minimum of 0"),
    "rate_limit_headers": Row(OPEN, True, ["2", True], ("--rate-limit-headers",), "yes", "boolean", ("--rate-limit-headers=yes",), False, "ignored explicit argument"),
    "scenario": Row(OPEN, SCENARIO, [504, "entry"], ("--scenario", SCENARIO), "no-such-scenario", "no such shipped scenario", ("--scenario", "no-such-scenario"), "happy"),
    "control_token": Row(ACCOUNTS, "tok-entry-123", [401, 200], ("--control-token", "tok-entry-123"), "short", "too short|non-empty", ("--control-token", "short"), "tok-loser-456"),
    "journal_size": Row(OPEN, 3, [3, 3, True], ("--journal-size", "3"), 0, "minimum of 1", ("--journal-size", "0"), 500),
    "journal_max_bytes": Row(ACCOUNTS, 65536, [65536, True], ("--journal-max-bytes", "65536"), 1000, "minimum of 65536", ("--journal-max-bytes", "1000"), 1 << 20),
    "max_open_accounts": Row(OPEN, 1, "1.00", ("--max-open-accounts", "1"), 0, "minimum of 1", ("--max-open-accounts", "0"), 100),
    "frozen_clock": Row(ACCOUNTS, True, True, ("--frozen-clock",), "yes", "boolean", ("--frozen-clock=yes",), False, "ignored explicit argument"),
    "replay": Row(ACCOUNTS, REPLAY, [200, RECORDED_SEED], ("--replay", REPLAY), "/no/such/recordings", "expected a folder of recordings", ("--replay", "/no/such/recordings")),
    "replay_match": Row(ACCOUNTS, "exact", True, ("--replay-match", "exact"), "fuzzy", r"not one of \['prompt', 'exact'\]", ("--replay-match", "fuzzy"), "prompt"),
    "replay_miss": Row(ACCOUNTS, "error", [404, True], ("--replay-miss", "error"), "ignore", r"not one of \['fake', 'error'\]", ("--replay-miss", "ignore"), "fake"),
    "dialect": Row(OPEN, "observed", None, ("--dialect", "observed"), "british", r"not one of \['documented', 'observed', 'plain'\]", ("--dialect", "british"), "documented"),
    "balance_status": Row(OPEN, 402, [402, 30001], ("--balance-status", "402"), 401, r"not one of \[402, 403\]", ("--balance-status", "401"), 403),
    "image_prefix": Row(OPEN, "/default/outputs/", "/default/outputs/", ("--image-prefix", "/default/outputs/"), "/v1/outputs/", "does not match", ("--image-prefix", "/v1/outputs/"), "/temporary/outputs/"),
    "retire": Row(OPEN, ["black-forest-labs/FLUX.1-schnell"], [403, 30003, False], None, 5, r"a name, \{model, at: TIME\}"),
    "rate_limit_codes": Row(OPEN, {"IPM": 50611}, 50611, None, {"xpm": 1}, "per metric"),
    "invalid_parameter_code": Row(OPEN, 20015, [400, 20015, "The parameter is invalid. Please check again."], None, 20000, r"not one of \[20012, 20015\]"),
    "unknown_fields": Row(OPEN, "reject", lambda seen: seen[0] == 400, None, "maybe", r"not one of \['accept', 'reject'\]"),
    "image_port": Row(PLAIN, "same", ["same", 200], ("--image-port", "same"), "other", "does not match", ("--image-port", "other"), 0),
    "url_token": Row(IMAGES, "sts", True, None, "iam", r"not one of \['none', 'sts'\]"),
    "object_names": Row(IMAGES, "observed", True, None, "random", r"not one of \['sfmock', 'observed'\]"),
    "image_content_type": Row(IMAGES, "application/octet-stream", "application/octet-stream", None, "image/jpeg", r"not one of \['image/png', 'application/octet-stream'\]"),
    "byte_ranges": Row(IMAGES, "ignore", 200, None, "none", r"not one of \['s3', 'ignore'\]"),
    "range_errors": Row(IMAGES, "observed", [400, 20015], None, "loud", r"not one of \['documented', 'observed'\]"),
    "size_errors": Row(IMAGES, "observed", [400, 20026], None, "loud", r"not one of \['documented', 'observed'\]"),
    "image_public_url": Row(IMAGES, "http://img.example.test/base", [True, 200], ("--image-public-url", "http://img.example.test/base"), "s3", "does not match", ("--image-public-url", "s3"), "http://loser.example.test"),
    "store": Row(PLAIN, "memory", 200, ("--store", "memory"), "mysql://x", "unknown scheme .mysql.", ("--store", "mysql://x")),  # Redis: tests/state/
    "accounts": Row(ACCOUNTS, [{"keys": ["sk-entry-a"], "balance": "2.00"}], [200, 401, "1.95"], None, [{"balance": "1.00"}], "'keys' is a required property"),
}
# fmt: on

ENTRY_POINTS = ("file", "flags", "precedence", "settings", "marker")
SCENARIO_TEXT = """\
name: entry
rules:
  - name: entry-rule
    when: {header: {X-Case: entry}}
    action: {error: 504}
"""


@dataclass(frozen=True)
class Paths:
    """Files the good values name, made once per module."""

    folder: Path
    scenario: Path
    replay: Path
    recorded_seed: int

    def resolve(self, value: Any) -> Any:
        """``value`` with the placeholders replaced."""
        if value == SCENARIO:
            return str(self.scenario)
        if value == REPLAY:
            return str(self.replay)
        if isinstance(value, tuple):
            return tuple(self.resolve(item) for item in value)
        return value


def group_rows(group: str) -> dict[str, Row]:
    return {key: row for key, row in ROWS.items() if row.group == group}


def group_values(group: str, paths: Paths) -> dict[str, Any]:
    """The good value of every key of ``group``."""
    return {key: paths.resolve(row.good) for key, row in group_rows(group).items()}


def serve_args(group: str, paths: Paths, entry: str, folder: Path) -> list[str]:
    """`sfmock serve` arguments for ``entry``: all in a file, or flags for the keys that have
    one (and a file for the rest), or both: flags over a file giving other valid values."""
    rows = group_rows(group)
    in_file = {"port": 0, **group_values(group, paths)}
    if entry == "file" and "scenario" in in_file:  # a scenario file is found relative to the config file
        in_file["scenario"] = paths.scenario.name
    flags: list[str] = []
    if entry != "file":
        for key, row in rows.items():
            if row.flag is None:
                continue
            flags += paths.resolve(row.flag)
            if entry == "precedence" and row.loser is not NO_LOSER:
                in_file[key] = row.loser
            else:
                in_file.pop(key)
        flags += [] if "port" in rows else ["--port", "0"]
    config = folder / f"{group}-{entry}.yaml"
    config.write_text(yaml.safe_dump(in_file), "utf-8")
    return ["serve", "--config", str(config), "--log-level", "warning", *flags]


@contextlib.contextmanager
def sfmock_serve(args: Sequence[str], folder: Path, name: str) -> Iterator[str]:
    """Run `sfmock serve ARGS` and yield its base URL (the printed one); on leaving, stop it
    with Ctrl+C and check that it exits 0 without a traceback."""
    out, err = folder / f"{name}.out", folder / f"{name}.err"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        process = subprocess.Popen([SFMOCK, *args], stdout=stdout, stderr=stderr)
    try:
        deadline = time.monotonic() + 30
        while "page at" not in (said := out.read_text("utf-8") + err.read_text("utf-8")):
            assert process.poll() is None, f"sfmock {' '.join(args)} exited: {said}"
            assert time.monotonic() < deadline, f"sfmock {' '.join(args)} printed no URL"
            time.sleep(0.05)
        # the chosen port is printed: in the API's URL, or, behind a public URL, where it listens
        found = re.search(r"listening on (http://\S+)", said) or re.search(r"API at (http://\S+)/v1", said)
        assert found and urlsplit(found.group(1)).hostname in ("127.0.0.1", "127.0.0.2"), said
        yield found.group(1)
    finally:
        process.send_signal(signal.SIGINT)
        try:
            status = process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
    assert status == 0 and "Traceback" not in err.read_text("utf-8"), err.read_text("utf-8")


def observe_cli(group: str, paths: Paths, entry: str) -> dict[str, Any]:
    with sfmock_serve(serve_args(group, paths, entry, paths.folder), paths.folder, f"{group}-{entry}") as url:
        return PROBES[group](url)


def observe_settings(group: str, paths: Paths) -> dict[str, Any]:
    settings = Settings(**group_values(group, paths))
    # FakeServer binds loopback on a free port unless told: its own host= is how a test asks
    with FakeServer(settings, host=settings.host) as fake:
        return {**PROBES[group](fake.url), EFFECTIVE: effective(fake.settings)}


def in_settings_only() -> set[str]:
    """Keys whose good value is checked in the in-process servers' settings."""
    return SEEN_IN_SETTINGS_ONLY | set(group_rows(PLAIN))


def effective(settings: Settings) -> dict[str, str]:
    """The settings a server runs with, as text, where its behaviour cannot show them."""
    return {key: repr(getattr(settings, key)) for key in in_settings_only()}


MARKED_TEST = """
@pytest.mark.sfmock(**{values!r})
def test_{group}(sfmock_server):
    seen = {{**PROBES[{group!r}](sfmock_server.url), {EFFECTIVE!r}: effective(sfmock_server.settings)}}
    Path({out!r}).write_text(json.dumps(seen))
"""


def observe_marker(paths: Paths) -> dict[str, dict[str, Any]]:
    """Every group through ``@pytest.mark.sfmock``, in one pytest run of a user's test file."""
    groups = sorted({row.group for row in ROWS.values()})
    source = "import json\nfrom pathlib import Path\nimport pytest\nfrom entry_probes import PROBES\nfrom test_entry_points import effective\n"
    for group in groups:
        out = str(paths.folder / f"{group}-marker.json")
        source += MARKED_TEST.format(values=group_values(group, paths), group=group, out=out, EFFECTIVE=EFFECTIVE)
    folder = paths.folder / "marked"
    folder.mkdir()
    (folder / "test_marked.py").write_text(source, "utf-8")
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_marked.py"],
        cwd=folder,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parent)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    seen = {}
    for group in groups:
        out = paths.folder / f"{group}-marker.json"
        seen[group] = json.loads(out.read_text("utf-8")) if out.exists() else {FAILED: run.stdout[-3000:]}
    return seen


def record_one_generation(folder: Path) -> int:
    """Record one Kolors generation through `sfmock proxy --record` in front of a fake;
    the recorded answer's seed."""
    with FakeServer(seed=77) as upstream:
        args = ["proxy", "--upstream", upstream.url, "--record", str(folder), "--port", "0", "--log-level", "warning"]
        with sfmock_serve_proxy(args, folder.parent) as proxy:
            answer = httpx.post(
                proxy + "/v1/images/generations", json=RECORDED, headers={"Authorization": "Bearer sk-r"}
            )
    assert answer.status_code == 200, answer.text
    return int(answer.json()["seed"])


@contextlib.contextmanager
def sfmock_serve_proxy(args: Sequence[str], folder: Path) -> Iterator[str]:
    """Run `sfmock proxy ARGS`; yield its base URL; stop it with Ctrl+C."""
    out = folder / "proxy.out"
    with out.open("wb") as stdout:
        process = subprocess.Popen([SFMOCK, *args], stdout=stdout, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while not (found := re.search(r"proxy at (http://\S+)/v1", out.read_text("utf-8"))):
            assert process.poll() is None and time.monotonic() < deadline, out.read_text("utf-8")
            time.sleep(0.05)
        yield found.group(1)
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=20)


@pytest.fixture(scope="module")
def paths(tmp_path_factory: pytest.TempPathFactory) -> Paths:
    folder = tmp_path_factory.mktemp("entry")
    scenario = folder / "entry-scenario.yaml"
    scenario.write_text(SCENARIO_TEXT, "utf-8")
    replay = folder / "recordings"
    replay.mkdir()
    return Paths(folder, scenario, replay, record_one_generation(replay))


@pytest.fixture(scope="module")
def observed(paths: Paths) -> dict[str, dict[str, dict[str, Any]]]:
    """``observed[entry][group]``: what each entry point's server showed (all at once)."""
    groups = sorted({row.group for row in ROWS.values()})
    jobs: dict[tuple[str, str], Callable[[], dict[str, Any]]] = {}
    for group in groups:
        for entry in ("file", "flags", "precedence"):
            jobs[entry, group] = functools.partial(observe_cli, group, paths, entry)
        jobs["settings", group] = functools.partial(observe_settings, group, paths)
    with ThreadPoolExecutor(max_workers=len(jobs) + 1) as pool:
        by_marker = pool.submit(observe_marker, paths)
        futures = {job: pool.submit(run) for job, run in jobs.items()}
        seen: dict[str, dict[str, dict[str, Any]]] = {entry: {} for entry in ENTRY_POINTS}
        for (entry, group), future in futures.items():
            try:
                seen[entry][group] = future.result()
            except Exception as failure:  # reported by each key's test, not as one set-up error
                seen[entry][group] = {FAILED: f"{type(failure).__name__}: {failure}"}
        seen["marker"] = by_marker.result()
    return seen


def test_every_schema_key_has_a_row() -> None:
    assert sorted(ROWS) == sorted(SCHEMA["properties"]), "give each config key a row in ROWS"


def entry_points_of(row: Row) -> tuple[str, ...]:
    """The entry points that take this key: flags only where the docs name one."""
    return ENTRY_POINTS if row.flag else ("file", "settings", "marker")


def expected(row: Row, paths: Paths) -> Any:
    if row.expect == [200, RECORDED_SEED]:
        return [200, paths.recorded_seed]
    return row.expect


@pytest.mark.parametrize("key", sorted(ROWS))
def test_good_value_has_the_documented_effect_through_every_entry_point(
    key: str, observed: dict[str, dict[str, dict[str, Any]]], paths: Paths
) -> None:
    """The same value gives the same effect from the file, the flag, the flag over a file
    saying otherwise (flags win), the marker and ``Settings``."""
    row = ROWS[key]
    # a plain server shows that it answers, and where its images live
    name = key if row.group != PLAIN or key == "image_port" else "plain"
    seen = {
        entry: observed[entry][row.group].get(name, observed[entry][row.group].get(FAILED))
        for entry in entry_points_of(row)
    }
    want = expected(row, paths)
    if callable(want):
        assert all(want(value) for value in seen.values()), seen
    elif want is SAME:
        assert len({json.dumps(value) for value in seen.values()}) == 1, seen
    else:
        assert seen == dict.fromkeys(seen, want)
    if key in in_settings_only():  # in-process, compare the settings the servers run with
        in_process = {entry: observed[entry][row.group][EFFECTIVE][key] for entry in ("settings", "marker")}
        assert in_process == dict.fromkeys(in_process, repr(paths.resolve(row.good)))


def download_status(reference: FakeServer, url: str) -> int:
    """Download ``url``'s object from ``reference``, its clock set to when ``url`` was signed."""
    parts = urlsplit(url)
    signed = datetime.strptime(parse_qs(parts.query)["X-Amz-Date"][0], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    assert httpx.post(reference.url + "/_sfmock/clock", json={"set": signed.timestamp()}).status_code == 200
    return httpx.get(reference.url + parts.path.removeprefix("/base") + "?" + parts.query).status_code


def test_signing_key_lets_another_process_serve_the_urls(observed: dict[str, dict[str, dict[str, Any]]]) -> None:
    """A URL signed with ``signing_key`` downloads from any server holding the same key,
    whatever entry point set it, and from no server with another key."""
    assert all(FAILED not in observed[entry][OPEN] for entry in ENTRY_POINTS), observed
    urls = [observed[entry][OPEN]["signing_key"]["url"] for entry in ENTRY_POINTS]
    prefix = ROWS["image_prefix"].good
    with (
        FakeServer(signing_key=SIGNING_KEY, image_prefix=prefix, clock=VirtualClock()) as same,
        FakeServer(signing_key="another-signing-key-987", image_prefix=prefix, clock=VirtualClock()) as other,
    ):
        assert [download_status(same, url) for url in urls] == [200] * len(urls)
        assert [download_status(other, url) for url in urls] == [403] * len(urls)


def run_cli(
    argv: Sequence[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> tuple[int, str]:
    """`sfmock ARGV` in this process (the console script is ``sfmock.cli:main``): its exit
    status and what it printed. A server that would start is a failure, not a hang."""

    def started(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"sfmock {' '.join(argv)} accepted the value and started serving")

    monkeypatch.setattr(uvicorn.Server, "run", started)
    try:
        status = sfmock.cli.main(list(argv))
    except SystemExit as exit:
        status = exit.code if isinstance(exit.code, int) else 1
    captured = capsys.readouterr()
    return status, captured.out + captured.err


def assert_names(message: str, source: str, key: str, says: str) -> None:
    """``message`` names the source, the key and (a regular expression of) the expectation."""
    assert source in message, f"the source {source!r} is not named: {message}"
    assert key in message, f"the key {key!r} is not named: {message}"
    assert re.search(says, message), f"the expectation ({says}) is not stated: {message}"
    assert "expected" in message or "ignored explicit argument" in message, f"no expectation: {message}"
    assert "Traceback" not in message, message


@dataclass(frozen=True)
class Bad:
    """A bad value of ``key``, the expectation its error states, and the same as a flag."""

    key: str
    value: Any
    says: str
    flag: tuple[str, ...] | None
    flag_says: str | None = None

    @property
    def id(self) -> str:
        return f"{self.key}={json.dumps(self.value)}"


BAD = [Bad(key, row.bad, row.says, row.bad_flag, row.flag_says) for key, row in ROWS.items()] + [
    # past the schema: what only loading can tell (a file, a model name)
    Bad(
        "scenario",
        "missing-scenario.yaml",
        "cannot be read.*expected a scenario file",
        ("--scenario", "missing-scenario.yaml"),
    ),
    Bad("prices", {"No/Such-Model": "1.00"}, "unknown model; expected one of", None),
    Bad("retire", "No/Such-Model", "unknown model 'No/Such-Model'; expected one of", None),
    Bad("accounts", [{"keys": ["sk-a"], "models": ["No/Such-Model"]}], "unknown model", None),
]


@pytest.mark.parametrize("bad", BAD, ids=lambda bad: bad.id)
def test_bad_value_in_a_config_file_stops_serve(
    bad: Bad, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`sfmock serve --config FILE` exits 2 naming the file, the key and the expectation,
    and `sfmock validate FILE` says the same."""
    config = tmp_path / "sfmock.yaml"
    config.write_text(yaml.safe_dump({bad.key: bad.value}), "utf-8")
    status, said = run_cli(["serve", "--config", str(config), "--port", "0"], monkeypatch, capsys)
    assert status == 2, said
    assert_names(said, str(config), bad.key, bad.says)
    assert run_cli(["validate", str(config)], monkeypatch, capsys) == (2, said)


@pytest.mark.parametrize("bad", [bad for bad in BAD if bad.flag], ids=lambda bad: bad.id)
def test_bad_value_as_a_flag_stops_serve(
    bad: Bad, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert bad.flag is not None
    flag = bad.flag[0].split("=")[0]
    config = tmp_path / "sfmock.yaml"
    config.write_text("port: 0\n", "utf-8")
    status, said = run_cli(["serve", "--config", str(config), *bad.flag], monkeypatch, capsys)
    assert status == 2, said
    # the flag is the key's name on the command line; the (good) config file is not blamed
    assert_names(said, flag, flag, bad.flag_says or bad.says)
    assert str(config) not in said, said


@pytest.mark.parametrize("bad", BAD, ids=lambda bad: bad.id)
def test_bad_value_in_settings_raises_config_error(bad: Bad) -> None:
    with pytest.raises(ConfigError) as info:
        Settings(**{bad.key: bad.value})
    assert info.value.source == "Settings" and re.fullmatch(rf"{bad.key}([.\[].*)?", info.value.key), info.value
    assert_names(str(info.value), "Settings", bad.key, bad.says)


BAD_MARKED_TEST = """
@pytest.mark.sfmock(**{values!r})
def test_{name}(sfmock_server):
    raise AssertionError("the test ran with a bad marker value")
"""


def test_bad_value_in_the_marker_fails_the_set_up(pytester: pytest.Pytester) -> None:
    """One user's test file, a test per bad value: each errors at set-up with the message
    (the test body never runs, no server answers a 500)."""
    source = "import pytest\n" + "".join(
        BAD_MARKED_TEST.format(values={bad.key: bad.value}, name=index) for index, bad in enumerate(BAD)
    )
    pytester.makepyfile(test_marked=source)
    recorder = pytester.inline_run("-p", "no:cacheprovider")
    setups = {
        int(report.nodeid.rsplit("::test_", 1)[1]): report
        for report in recorder.getreports("pytest_runtest_logreport")
        if report.when == "setup"
    }
    problems = []
    for index, bad in enumerate(BAD):
        report = setups[index]
        try:
            assert report.failed, "set-up passed"
            assert "ConfigError" in report.longreprtext, report.longreprtext[-600:]
            assert_names(report.longreprtext, "@pytest.mark.sfmock", bad.key, bad.says)
        except AssertionError as problem:
            problems.append(f"{bad.id}: {problem}")
    assert not problems, "\n".join(problems)


ALLOWED = sorted(SCHEMA["properties"])


def assert_names_the_key_meant(message: str) -> None:
    """``url_tll``: the key meant, not all of them (35 names hide the one that was meant)."""
    assert "url_tll: unknown key; did you mean 'url_ttl'?" in message, message
    assert not all(key in message for key in ALLOWED), f"a close key should be named alone: {message}"


def test_unknown_key_in_a_config_file_names_the_key_meant(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "sfmock.yaml"
    config.write_text("url_ttl: 60\nurl_tll: 60\n", "utf-8")
    status, said = run_cli(["serve", "--config", str(config), "--port", "0"], monkeypatch, capsys)
    assert status == 2 and str(config) in said and "url_tll" in said, said
    assert_names_the_key_meant(said)


def test_a_key_given_twice_in_a_config_file_is_named_with_its_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "sfmock.yaml"
    config.write_text("url_ttl: 60\nseed: 1\nurl_ttl: 70\n", "utf-8")
    status, said = run_cli(["serve", "--config", str(config), "--port", "0"], monkeypatch, capsys)
    assert status == 2 and str(config) in said and "duplicate key 'url_ttl' on line 3" in said, said


def test_unknown_flag_is_a_usage_error(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    status, said = run_cli(["serve", "--port", "0", "--url-tll", "60"], monkeypatch, capsys)
    assert status == 2 and "usage: sfmock serve" in said and "--url-tll" in said, said


def test_unknown_key_in_settings_names_the_key_meant() -> None:
    with pytest.raises(ConfigError) as info:
        Settings(url_tll=60)  # type: ignore[call-arg]
    assert (info.value.source, info.value.key) == ("Settings", "url_tll")
    assert_names_the_key_meant(str(info.value))


def test_unknown_key_in_the_marker_names_the_key_meant(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_marked="import pytest\n" + BAD_MARKED_TEST.format(values={"url_tll": 60}, name="typo"))
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    said = result.stdout.str()
    assert "@pytest.mark.sfmock" in said and "url_tll" in said, said
    assert_names_the_key_meant(said)


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["serve", "--port", "0", "--url-ttl", "604801"], r"--url-ttl: .*maximum of 604800"),
        (["serve", "--port", "0", "--config", "{config}"], r"{config}: url_ttl: 'soon' is not of type 'integer'"),
        (["validate", "{config}"], r"{config}: url_ttl: 'soon' is not of type 'integer'"),
    ],
    ids=["flag", "file", "validate"],
)
def test_the_real_command_exits_2_with_one_line_and_no_traceback(argv: list[str], says: str, tmp_path: Path) -> None:
    """The README's example, through the installed console script."""
    config = tmp_path / "sfmock.yaml"
    config.write_text("url_ttl: soon\n", "utf-8")
    argv = [arg.replace("{config}", str(config)) for arg in argv]
    run = subprocess.run([SFMOCK, *argv], capture_output=True, text=True, timeout=60)
    assert run.returncode == 2, run
    assert run.stdout == "" and run.stderr.count("\n") == 1 and run.stderr.startswith("sfmock: error: "), run.stderr
    assert re.search(says.replace("{config}", re.escape(str(config))), run.stderr), run.stderr


def readme_configuration() -> str:
    return page("configuration").split("\n## ", 1)[0]


def readme_flags(key: str) -> set[str]:
    """The flags the README's configuration table gives ``key`` (empty: none)."""
    for line in readme_configuration().splitlines():
        cells = line.split("|")
        if line.startswith("|") and len(cells) > 2 and f"`{key}`" in cells[2]:
            return set(re.findall(r"`(--[a-z-]+)", cells[1]))
    raise AssertionError(f"docs/configuration.md's table has no row for {key}")


@pytest.mark.parametrize("key", sorted(ROWS))
def test_the_docs_name_the_flag_of_each_key_or_say_it_has_none(
    key: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The README's table, `sfmock serve --help` and the catalogue agree on each key's flag;
    a key without one is named among those set only in a file, the marker or Settings."""
    row = ROWS[key]
    status, helped = run_cli(["serve", "--help"], monkeypatch, capsys)
    assert status == 0
    dashed = "--" + key.replace("_", "-")
    if row.flag:
        assert row.flag[0] in readme_flags(key) and re.search(rf"{re.escape(row.flag[0])}\b", helped)
    else:
        assert readme_flags(key) == set() and dashed not in helped
        only = readme_configuration().split("Keys without a flag", 1)[1].split("\n\n", 1)[0]
        assert f"`{key}`" in only, f"the README should say that {key} has no flag"


def test_a_negative_flag_overrides_true_in_the_file(paths: Paths) -> None:
    """``--no-strict``, ``--no-rate-limit-headers`` and ``--no-frozen-clock`` win over
    ``true`` in the file, as flags do."""
    config = paths.folder / "negated.yaml"
    config.write_text("port: 0\nstrict: true\nrate_limit_headers: true\nfrozen_clock: true\nlimits: realistic\n")
    args = ["serve", "--config", str(config), "--log-level", "warning"]
    args += ["--no-strict", "--no-rate-limit-headers", "--no-frozen-clock"]
    with sfmock_serve(args, paths.folder, "negated") as url:
        lenient = httpx.post(
            url + "/v1/images/generations",
            json={"model": "Qwen/Qwen-Image", "prompt": "x", "batch_size": 2},  # ignored unless strict
            headers={"Authorization": "Bearer sk-negated"},
        )
        clock = httpx.get(url + "/_sfmock/clock")
    for answer in (lenient, clock):
        check_response(
            "GET" if answer is clock else "POST",
            answer.request.url.path,
            answer.status_code,
            answer.headers,
            answer.content,
        )
    assert lenient.status_code == 200, lenient.text
    assert not any(name.startswith("x-ratelimit-") for name in lenient.headers), lenient.headers
    assert clock.json()["frozen"] is False, clock.text
