"""The pytest plugin, tested the way mature plugins are: with pytester."""

from __future__ import annotations

import pytest

from conftest import FIXTURES

HEADER = """
import httpx
import pytest

AUTH = {"Authorization": "Bearer sk-plugin-test"}
BODY = {"model": "Kwai-Kolors/Kolors", "prompt": "a lighthouse"}
"""


def run(pytester: pytest.Pytester, source: str, *args: str) -> pytest.RunResult:
    pytester.makepyfile(HEADER + source)
    # a subprocess: an in-process run would unload modules (httpcore...) the outer session cached
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q", *args)


def test_plugin_is_registered_and_the_marker_documented(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess("--markers")
    result.stdout.fnmatch_lines(["*@pytest.mark.sfmock(scenario=None, config=None, **settings)*"])
    result = pytester.runpytest_subprocess("--fixtures")
    # pytest lists fixtures sorted by "file:line" as text: check each on its own, in any order
    for fixture in ("sfmock_server --*", "sfmock_transport --*", "check_client --*"):
        result.stdout.fnmatch_lines([fixture])


def test_httpx_client_against_the_live_server(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
def test_generate_and_download(sfmock_server):
    with httpx.Client(base_url=sfmock_server.api_url) as client:
        body = client.post("/images/generations", json=BODY, headers=AUTH).json()
    image = httpx.get(body["images"][0]["url"])
    assert image.status_code == 200 and image.content.startswith(b"\\x89PNG")
    sent = sfmock_server.journal.entries()
    assert [(e.method, e.status) for e in sent] == [("POST", 200), ("GET", 200)]
""",
    )
    result.assert_outcomes(passed=1)


def test_state_is_reset_between_tests_on_one_session_server(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
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
    )
    result.assert_outcomes(passed=2)


def test_marker_scenario_by_name_and_by_dict(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
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
    )
    result.assert_outcomes(passed=3)


def test_marker_config_and_settings_get_a_server_of_their_own(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
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
    )
    result.assert_outcomes(passed=2)


def test_in_process_transport_shares_the_journal(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
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
    )
    result.assert_outcomes(passed=1)


def test_requests_and_openai_clients(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
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
    )
    result.assert_outcomes(passed=3)


def test_expiry_on_the_virtual_clock(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
def test_expiry(sfmock_server):
    body = httpx.post(sfmock_server.api_url + "/images/generations", json=BODY, headers=AUTH).json()
    sfmock_server.advance(3600)
    assert httpx.get(body["images"][0]["url"]).status_code == 403
""",
    )
    result.assert_outcomes(passed=1)


def test_a_bad_marker_is_a_clear_error(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
@pytest.mark.sfmock(scenario="no-such-scenario")
def test_bad(sfmock_server):
    pass
""",
    )
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*no such shipped scenario*"])
