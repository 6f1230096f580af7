"""The pytest plugin, tested the way mature plugins are: with pytester.

Each case below is a test file of its own; one pytest run holds them all, as a user's
suite would (one start-up, one session fake reset between tests), and the verdict of
each of their tests is checked one by one.
"""

from __future__ import annotations

import re

import pytest

from conftest import FIXTURES

HEADER = """
import httpx
import pytest

AUTH = {"Authorization": "Bearer sk-plugin-test"}
BODY = {"model": "Kwai-Kolors/Kolors", "prompt": "a lighthouse"}
"""

# each case: a test file's source, and the verdict of each of its tests in order
CASES: dict[str, tuple[str, list[tuple[str, str]]]] = {
    "httpx_client_against_the_live_server": (
        """
def test_generate_and_download(sfmock_server):
    with httpx.Client(base_url=sfmock_server.api_url) as client:
        body = client.post("/images/generations", json=BODY, headers=AUTH).json()
    image = httpx.get(body["images"][0]["url"])
    assert image.status_code == 200 and image.content.startswith(b"\\x89PNG")
    sent = sfmock_server.journal.entries()
    assert [(e.method, e.status) for e in sent] == [("POST", 200), ("GET", 200)]
""",
        [("test_generate_and_download", "PASSED")],
    ),
    "state_is_reset_between_tests_on_one_session_server": (
        """
SEEN = []

def test_first(sfmock_server):
    SEEN.append(sfmock_server.url)
    httpx.post(sfmock_server.api_url + "/images/generations", json=BODY, headers=AUTH)
    sfmock_server.advance(100)
    assert len(sfmock_server.journal) == 1

def test_second(sfmock_server):
    assert sfmock_server.url == SEEN[0]  # the same server, started once
    assert len(sfmock_server.journal) == 0
    assert httpx.get(sfmock_server.url + "/_sfmock/clock").json()["now"] == sfmock_server.clock.start
""",
        [("test_first", "PASSED"), ("test_second", "PASSED")],
    ),
    "marker_scenario_by_name_and_by_dict": (
        """
@pytest.mark.sfmock(scenario="overloaded")
def test_overloaded(sfmock_server):
    response = httpx.post(sfmock_server.api_url + "/images/generations", json=BODY, headers=AUTH)
    assert response.status_code == 503 and response.json()["code"] == 50505

@pytest.mark.sfmock(scenario={"rules": [{"sequence": [{"error": 429}, "pass"]}]})
def test_sequence(sfmock_server):
    url = sfmock_server.api_url + "/images/generations"
    assert [httpx.post(url, json=BODY, headers=AUTH).status_code for _ in range(3)] == [429, 200, 200]

def test_unmarked_is_healthy(sfmock_server):
    url = sfmock_server.api_url + "/images/generations"
    assert httpx.post(url, json=BODY, headers=AUTH).status_code == 200
""",
        [("test_overloaded", "PASSED"), ("test_sequence", "PASSED"), ("test_unmarked_is_healthy", "PASSED")],
    ),
    "marker_config_and_settings_get_a_server_of_their_own": (
        f"""
from sfmock import Limits

@pytest.mark.sfmock(config={str(FIXTURES / "accounts.yaml")!r})
def test_accounts(sfmock_server):
    url = sfmock_server.api_url + "/images/generations"
    assert httpx.post(url, json=BODY, headers=AUTH).status_code == 401
    assert httpx.post(url, json=BODY, headers={{"Authorization": "Bearer sk-valid"}}).status_code == 200

@pytest.mark.sfmock(limits=Limits(ipm=1), strict=True)
def test_settings(sfmock_server):
    url = sfmock_server.api_url + "/images/generations"
    body = {{**BODY, "image_size": "1024x1024"}}
    assert httpx.post(url, json=body, headers=AUTH).status_code == 200
    assert httpx.post(url, json=body, headers=AUTH).status_code == 429
    assert httpx.post(url, json={{**body, "cfg": 2}}, headers=AUTH).status_code == 400
""",
        [("test_accounts", "PASSED"), ("test_settings", "PASSED")],
    ),
    "in_process_transport_shares_the_journal": (
        """
def test_transport(sfmock_transport, sfmock_server):
    with httpx.Client(transport=sfmock_transport, base_url="http://sfmock.test/v1") as client:
        body = client.post("/images/generations", json=BODY, headers=AUTH).json()
        assert client.get(body["images"][0]["url"]).status_code == 200
        with pytest.raises(httpx.RemoteProtocolError):
            client.post("/images/generations", json=BODY, headers={**AUTH, "X-Sfmock-Fault": "drop"})
    outcomes = [e.outcome for e in sfmock_server.journal.entries()]
    assert outcomes == ["response", "response", "dropped"]
""",
        [("test_transport", "PASSED")],
    ),
    "requests_and_openai_clients": (
        """
import openai
import requests

def test_requests(sfmock_server):
    response = requests.post(sfmock_server.api_url + "/images/generations", json=BODY, headers=AUTH, timeout=10)
    assert requests.get(response.json()["images"][0]["url"], timeout=10).status_code == 200

def test_openai_sdk(sfmock_server):
    client = openai.OpenAI(base_url=sfmock_server.api_url, api_key="sk-plugin-test", max_retries=0)
    result = client.images.generate(model="Kwai-Kolors/Kolors", prompt="x", extra_body={"batch_size": 2})
    assert len(result.data) == 2

@pytest.mark.sfmock(scenario="overloaded")
def test_openai_sdk_sees_the_overload(sfmock_server):
    client = openai.OpenAI(base_url=sfmock_server.api_url, api_key="sk-plugin-test", max_retries=0)
    with pytest.raises(openai.InternalServerError):
        client.images.generate(model="Kwai-Kolors/Kolors", prompt="x")
""",
        [("test_requests", "PASSED"), ("test_openai_sdk", "PASSED"), ("test_openai_sdk_sees_the_overload", "PASSED")],
    ),
    "expiry_on_the_virtual_clock": (
        """
def test_expiry(sfmock_server):
    body = httpx.post(sfmock_server.api_url + "/images/generations", json=BODY, headers=AUTH).json()
    sfmock_server.advance(3600)
    assert httpx.get(body["images"][0]["url"]).status_code == 403
""",
        [("test_expiry", "PASSED")],
    ),
    "a_bad_marker_is_a_clear_error": (
        """
@pytest.mark.sfmock(scenario="no-such-scenario")
def test_bad(sfmock_server):
    pass
""",
        [("test_bad", "ERROR")],
    ),
}


def test_a_bad_marker_scenario_is_the_same_error_for_check_client(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_scenario_of_a_check="""
import pytest

@pytest.mark.sfmock(scenario="no-such-scenario")
def test_check(check_client):
    raise AssertionError("the test ran: the marker's scenario was not checked")

@pytest.mark.sfmock(scenario="no-such-scenario")
def test_server(sfmock_server):
    raise AssertionError("the test ran: the marker's scenario was not checked")
"""
    )
    session = str(pytester.runpytest_subprocess("-p", "no:cacheprovider").stdout)
    said = "ConfigError: @pytest.mark.sfmock: scenario: 'no-such-scenario': no such shipped scenario"
    for test in ("test_check", "test_server"):  # each fails its set-up, with the same message
        assert re.search(rf"_ ERROR at setup of {test} _+\n(?:(?!\n__).)*{re.escape(said)}", session, re.S), session
    assert "2 errors in" in session and "the test ran" not in session


def verdicts(output: str, case: str) -> list[tuple[str, str]]:
    """Each test of a case's file with its verdict, in order (a test that errors in
    teardown after passing shows twice)."""
    return re.findall(rf"^test_{case}\.py::(\w+) (PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS)", output, re.M)


def test_plugin_is_registered_and_the_marker_documented(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess("--markers")
    result.stdout.fnmatch_lines(["*@pytest.mark.sfmock(scenario=None, config=None, **settings)*"])
    result = pytester.runpytest_subprocess("--fixtures")
    # pytest lists fixtures sorted by "file:line" as text: check each on its own, in any order
    for fixture in ("sfmock_server --*", "sfmock_transport --*", "check_client --*"):
        result.stdout.fnmatch_lines([fixture])


def test_every_case_in_one_run(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(**{f"test_{name}": HEADER + source for name, (source, _) in CASES.items()})
    # a subprocess: an in-process run would unload modules (httpcore...) the outer session cached
    session = str(pytester.runpytest_subprocess("-p", "no:cacheprovider", "-v").stdout)
    for case, (_, expected) in CASES.items():
        assert verdicts(session, case) == expected, f"{case}:\n{session}"
    error = re.search(r"_ ERROR at setup of test_bad _+\n(?:(?!\n__).)*no such shipped scenario", session, re.S)
    assert error, session
    passed = sum(verdict == "PASSED" for _, expected in CASES.values() for _, verdict in expected)
    assert re.search(rf"=+ {passed} passed, 1 error in ", session), session


def test_a_check_cut_short_by_its_budget_is_named_in_the_runs_summary(pytester: pytest.Pytester) -> None:
    # the progress line goes to stderr, which pytest hides when a test passes: a partial search
    # must not look like a full pass, so the run's summary names it (also under xdist)
    pytester.makepyfile(
        """
        import select

        def generate(ctx):
            select.select([], [], [], 0.3)  # every run waits outside the virtual clock
            http = ctx.http_client(timeout=60)
            for attempt in range(5):
                answer = http.post(f"{ctx.base_url}/images/generations", json=ctx.request,
                                   headers={"Authorization": f"Bearer {ctx.api_key}"})
                if answer.status_code in (429, 500, 502, 503, 504) and attempt < 4:
                    select.select([], [], [], 0.3)  # a back-off outside the virtual clock
                    continue
                answer.raise_for_status()
                return http.get(answer.json()["images"][0]["url"]).content

        def test_slow(check_client):
            report = check_client(generate, seed=1, budget=2.0, progress=None, max_examples=50)
            assert report.note
        """
    )
    for args in ([], ["-n", "1"]):
        result = pytester.runpytest_subprocess("-p", "no:cacheprovider", *args)
        result.assert_outcomes(passed=1)
        result.stdout.fnmatch_lines(
            ["*sfmock: client checks that passed with a note*", "*test_slow*budget of 2s*ran out*"]
        )
