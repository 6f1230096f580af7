"""The pytest marker takes what a config file takes: every config key, through the
same schema and conversion, and the same clear error naming the key."""

from __future__ import annotations

import pytest

from conftest import FIXTURES
from redis_server import REDIS_SERVER
from sfmock import ConfigError, Limits, Settings, load_contract
from sfmock.config import settings_from

HEADER = """
import os

import httpx
import pytest

AUTH = {"Authorization": "Bearer sk-marker"}
QWEN = {"model": "Qwen/Qwen-Image", "prompt": "a lighthouse"}
KOLORS = {"model": "Kwai-Kolors/Kolors", "prompt": "a lighthouse"}


def gen(server, body=KOLORS, headers=AUTH):
    return httpx.post(server.api_url + "/images/generations", json=body, headers=headers)
"""

# one test per config key: the marker's value takes effect
EVERY_KEY = {
    "host": """
@pytest.mark.sfmock(host="127.0.0.1")
def test_host(sfmock_server):
    assert sfmock_server.url.startswith("http://127.0.0.1:") and gen(sfmock_server).status_code == 200
""",
    "port": """
@pytest.mark.sfmock(port=0)
def test_port(sfmock_server):
    assert sfmock_server.settings.port > 0 and gen(sfmock_server).status_code == 200
""",
    "seed": """
@pytest.mark.sfmock(seed=5)
def test_seed(sfmock_server):
    from sfmock.server import FakeServer

    with FakeServer(seed=5) as twin, FakeServer(seed=6) as other:
        assert gen(sfmock_server).json()["seed"] == gen(twin).json()["seed"] != gen(other).json()["seed"]
""",
    "url_ttl": """
@pytest.mark.sfmock(url_ttl=60)
def test_url_ttl(sfmock_server):
    url = gen(sfmock_server).json()["images"][0]["url"]
    assert "X-Amz-Expires=60" in url
    sfmock_server.advance(61)
    assert httpx.get(url).status_code == 403
""",
    "public_url": """
@pytest.mark.sfmock(public_url="https://images.example.test/base")
def test_public_url(sfmock_server):
    assert gen(sfmock_server).json()["images"][0]["url"].startswith("https://images.example.test/base/temporary/outputs/")
""",
    "image_port": """
@pytest.mark.sfmock(image_port="same")
def test_image_port(sfmock_server):
    url = gen(sfmock_server).json()["images"][0]["url"]
    assert sfmock_server.image_base_url == sfmock_server.url and url.startswith(sfmock_server.url + "/temporary/")
    assert httpx.get(url).status_code == 200
""",
    "image_public_url": """
@pytest.mark.sfmock(image_public_url="https://s3.example.test")
def test_image_public_url(sfmock_server):
    assert gen(sfmock_server).json()["images"][0]["url"].startswith("https://s3.example.test/temporary/outputs/")
""",
    "strict": """
@pytest.mark.sfmock(strict=True)
def test_strict(sfmock_server):
    assert gen(sfmock_server, {**QWEN, "batch_size": 2}).status_code == 400
""",
    "max_body_bytes": """
@pytest.mark.sfmock(max_body_bytes=2048)
def test_max_body_bytes(sfmock_server):
    assert gen(sfmock_server, {**KOLORS, "prompt": "x" * 4096}).status_code == 413
""",
    "signing_key": """
@pytest.mark.sfmock(signing_key="another-signing-key")
def test_signing_key(sfmock_server):
    assert sfmock_server.settings.signing_key == "another-signing-key"
    assert httpx.get(gen(sfmock_server).json()["images"][0]["url"]).status_code == 200
""",
    "default_balance": """
@pytest.mark.sfmock(default_balance="0.10")
def test_default_balance(sfmock_server):
    assert gen(sfmock_server, QWEN).status_code == 403  # code 30001, as the error-code page lists it
""",
    "prices": """
@pytest.mark.sfmock(prices={"Kwai-Kolors/Kolors": "1.25"}, default_balance=2)
def test_prices(sfmock_server):
    assert gen(sfmock_server).status_code == 200
    info = httpx.get(sfmock_server.api_url + "/user/info", headers=AUTH).json()["data"]
    assert info["balance"] == "0.75" and gen(sfmock_server).status_code == 403
""",
    "limits": """
@pytest.mark.sfmock(limits="realistic")
def test_limits(sfmock_server):
    assert [gen(sfmock_server).status_code for _ in range(3)] == [200, 200, 429]
""",
    "model_limits": """
@pytest.mark.sfmock(model_limits={"Kwai-Kolors/Kolors": {"rpm": 1}})
def test_model_limits(sfmock_server):
    assert [gen(sfmock_server).status_code for _ in range(2)] == [200, 429]
    assert gen(sfmock_server, QWEN).status_code == 200
""",
    "rate_limit_headers": """
@pytest.mark.sfmock(rate_limit_headers=True, limits={"ipm": 5})
def test_rate_limit_headers(sfmock_server):
    assert gen(sfmock_server).headers["x-ratelimit-remaining-ipm"] == "4"
""",
    "accounts": """
@pytest.mark.sfmock(accounts=[{"keys": ["sk-marker"], "balance": "1.00"}])
def test_accounts(sfmock_server):
    assert gen(sfmock_server).status_code == 200
    assert gen(sfmock_server, headers={"Authorization": "Bearer sk-other"}).status_code == 401
""",
    "scenario": """
@pytest.mark.sfmock(scenario="overloaded", seed=1)
def test_scenario(sfmock_server):
    assert gen(sfmock_server).status_code == 503
    assert sfmock_server.settings.scenario.name == "overloaded"  # the server's own configuration
    sfmock_server.reset()  # back to how the marker configured it: still overloaded
    assert gen(sfmock_server).status_code == 503
""",
    "control_token": """
@pytest.mark.sfmock(control_token="s3cret-token")
def test_control_token(sfmock_server):
    assert httpx.get(sfmock_server.url + "/_sfmock/health").status_code == 401
    token = {"X-Sfmock-Token": "s3cret-token"}
    assert httpx.get(sfmock_server.url + "/_sfmock/health", headers=token).status_code == 200
""",
    "journal_size": """
@pytest.mark.sfmock(journal_size=1)
def test_journal_size(sfmock_server):
    gen(sfmock_server), gen(sfmock_server)
    assert len(sfmock_server.journal) == 1
""",
    "frozen_clock": """
@pytest.mark.sfmock(frozen_clock=True)
def test_frozen_clock(sfmock_server):
    before = httpx.get(sfmock_server.url + "/_sfmock/clock").json()["now"]
    assert sfmock_server.settings.frozen_clock is True
    assert httpx.get(sfmock_server.url + "/_sfmock/clock").json()["now"] == before
""",
    "journal_max_bytes": """
@pytest.mark.sfmock(journal_max_bytes=65536)
def test_journal_max_bytes(sfmock_server):
    long = {**KOLORS, "prompt": "x" * 40_000}
    gen(sfmock_server, long), gen(sfmock_server, long)
    assert len(sfmock_server.journal) == 1 and sfmock_server.journal.dropped == 1
""",
    "control_max_body_bytes": """
@pytest.mark.sfmock(control_max_body_bytes=1024)
def test_control_max_body_bytes(sfmock_server):
    scenario = '{"name": "long", "rules": [{"action": {"error": 503}}]}' + " " * 2048
    assert httpx.put(sfmock_server.url + "/_sfmock/scenario", content=scenario).status_code == 413
""",
    "read_timeout": """
@pytest.mark.sfmock(read_timeout=2.5)
def test_read_timeout(sfmock_server):
    assert sfmock_server.settings.read_timeout == 2.5 and gen(sfmock_server).status_code == 200
""",
    "max_open_accounts": """
@pytest.mark.sfmock(max_open_accounts=1, default_balance="0.50")
def test_max_open_accounts(sfmock_server):
    assert gen(sfmock_server, QWEN).status_code == 200  # sk-... pays 0.30 of 0.50
    assert gen(sfmock_server, QWEN, headers={"Authorization": "Bearer sk-another"}).status_code == 200
    assert gen(sfmock_server, QWEN).status_code == 200  # forgotten, so a fresh 0.50 again
""",
    "replay": f"""
@pytest.mark.sfmock(replay={str(FIXTURES / "responses")!r})
def test_replay(sfmock_server):
    assert len(sfmock_server.settings.replay) > 0 and gen(sfmock_server).status_code == 200
""",
    "replay_match": """
@pytest.mark.sfmock(replay_match="exact")
def test_replay_match(sfmock_server):
    assert sfmock_server.settings.replay_match == "exact"
""",
    "replay_miss": f"""
@pytest.mark.sfmock(replay={str(FIXTURES / "responses")!r}, replay_miss="error")
def test_replay_miss(sfmock_server):
    answer = gen(sfmock_server, {{**KOLORS, "prompt": "nothing recorded"}})
    assert answer.status_code == 404
""",
    "dialect": """
@pytest.mark.sfmock(dialect="observed", limits={"ipm": 1})
def test_dialect(sfmock_server):
    gen(sfmock_server)
    assert gen(sfmock_server).json()["code"] == 50604  # the live service's 429
""",
    "balance_status": """
@pytest.mark.sfmock(balance_status=402, default_balance="0.10")
def test_balance_status(sfmock_server):
    assert gen(sfmock_server, QWEN).status_code == 402
""",
    "image_prefix": """
@pytest.mark.sfmock(image_prefix="/default/outputs/")
def test_image_prefix(sfmock_server):
    url = gen(sfmock_server).json()["images"][0]["url"]
    assert "/default/outputs/" in url and httpx.get(url).status_code == 200
""",
    "retire": """
@pytest.mark.sfmock(retire=["Qwen/Qwen-Image"])
def test_retire(sfmock_server):
    assert gen(sfmock_server, QWEN).json() == {"code": 30003, "message": "Model disabled."}
""",
    "rate_limit_codes": """
@pytest.mark.sfmock(dialect="observed", limits={"ipm": 1}, rate_limit_codes={"ipm": 59999})
def test_rate_limit_codes(sfmock_server):
    gen(sfmock_server)
    assert gen(sfmock_server).json()["code"] == 59999
""",
    "unknown_fields": """
@pytest.mark.sfmock(unknown_fields="reject")
def test_unknown_fields(sfmock_server):
    assert gen(sfmock_server, {**KOLORS, "n": 1}).status_code == 400
""",
    "store": """
@pytest.mark.sfmock(store=os.environ["SFMOCK_TEST_STORE"], limits={"rpm": 1})
def test_store(sfmock_server):
    from sfmock.server import FakeServer

    store = os.environ["SFMOCK_TEST_STORE"]
    assert sfmock_server.app.state.store.url == store and gen(sfmock_server).status_code == 200
    with FakeServer(sfmock_server.settings, clock=sfmock_server.clock) as twin:  # one quota on Redis
        assert gen(twin).status_code == (200 if store == "memory" else 429)
""",
    "invalid_parameter_code": """
@pytest.mark.sfmock(invalid_parameter_code=20015)
def test_invalid_parameter_code(sfmock_server):
    assert gen(sfmock_server, {**KOLORS, "batch_size": 9}).json()["code"] == 20015
""",
    "range_errors": """
@pytest.mark.sfmock(range_errors="observed")
def test_range_errors(sfmock_server):
    assert gen(sfmock_server, {**KOLORS, "seed": -1}).json() == {
        "code": 20015, "message": "seed: Must be greater than or equal to 0"
    }
""",
    "size_errors": """
@pytest.mark.sfmock(size_errors="observed")
def test_size_errors(sfmock_server):
    assert gen(sfmock_server, {**KOLORS, "image_size": ""}).json()["code"] == 20026
""",
    "image_content_type": """
@pytest.mark.sfmock(image_content_type="application/octet-stream")
def test_image_content_type(sfmock_server):
    url = gen(sfmock_server).json()["images"][0]["url"]
    assert httpx.get(url).headers["content-type"] == "application/octet-stream"
""",
    "url_token": """
@pytest.mark.sfmock(url_token="sts")
def test_url_token(sfmock_server):
    url = gen(sfmock_server).json()["images"][0]["url"]
    assert "X-Amz-Security-Token=" in url and len(url) > 1500 and httpx.get(url).status_code == 200
""",
    "byte_ranges": """
@pytest.mark.sfmock(byte_ranges="ignore")
def test_byte_ranges(sfmock_server):
    url = gen(sfmock_server).json()["images"][0]["url"]
    whole = httpx.get(url, headers={"Range": "bytes=0-9"})
    assert whole.status_code == 200 and len(whole.content) > 10 and "accept-ranges" not in whole.headers
""",
    "object_names": """
@pytest.mark.sfmock(object_names="observed")
def test_object_names(sfmock_server):
    url = gen(sfmock_server).json()["images"][0]["url"]
    assert url.split("?")[0].endswith("_00001_.png") and httpx.get(url).status_code == 200
""",
}


def test_every_config_key_has_a_marker_test() -> None:
    from sfmock.contract.schemas import schema

    assert set(EVERY_KEY) == set(schema("config")["properties"])


def test_every_config_key_works_through_the_marker(
    pytester: pytest.Pytester, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    # store: a real Redis when redis-server is installed (CI installs it), else memory
    store = request.getfixturevalue("redis_url") if REDIS_SERVER is not None else "memory"
    monkeypatch.setenv("SFMOCK_TEST_STORE", store)
    config = FIXTURES / "realistic-limits.yaml"
    extra = f"""
@pytest.mark.sfmock(config={str(config)!r}, strict=True)
def test_config_file_and_keys(sfmock_server):
    sized = {{**KOLORS, "image_size": "1024x1024"}}
    assert [gen(sfmock_server, sized).status_code for _ in range(3)] == [200, 200, 429]
    assert gen(sfmock_server, {{**QWEN, "batch_size": 2}}).status_code == 400


async def test_async_client_on_the_transport(sfmock_transport):
    async with httpx.AsyncClient(transport=sfmock_transport, base_url="http://sfmock.test/v1") as client:
        answer = await client.post("/images/generations", json=KOLORS, headers=AUTH)
    assert answer.status_code == 200


def test_sync_client_on_the_same_transport(sfmock_transport):
    with httpx.Client(transport=sfmock_transport, base_url="http://sfmock.test/v1") as client:
        assert client.post("/images/generations", json=KOLORS, headers=AUTH).status_code == 200
"""
    pytester.makepyfile(HEADER + "".join(EVERY_KEY.values()) + extra)
    pytester.makeconftest("import asyncio, inspect, pytest\n" + ASYNC_RUNNER)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q")
    result.assert_outcomes(passed=len(EVERY_KEY) + 3)


# a minimal runner for ``async def`` tests, so this test needs no asyncio plugin
ASYNC_RUNNER = """
@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem):
    if inspect.iscoroutinefunction(pyfuncitem.obj):
        args = {name: pyfuncitem.funcargs[name] for name in pyfuncitem._fixtureinfo.argnames}
        asyncio.run(pyfuncitem.obj(**args))
        return True
"""

BAD_MARKERS = {
    'limits="nope"': "limits",
    'url_ttl="soon"': "url_ttl",
    "port=70000": "port",
    'image_port="other"': "image_port",
    'image_public_url="s3.example.test"': "image_public_url",
    'prices={"No/Such-Model": "1"}': "prices.No/Such-Model",
    'prices={"Kwai-Kolors/Kolors": "-1"}': "prices.Kwai-Kolors/Kolors",
    'accounts=[{"keys": []}]': "accounts[0].keys",
    'accounts=[{"keys": ["sk-a"], "balance": "lots"}]': "accounts[0].balance",
    'colour="blue"': "colour: unknown key",
    'scenario="no-such-scenario"': "no-such-scenario",
    'config="no-such-config.yaml"': "@pytest.mark.sfmock(config='no-such-config.yaml'): no-such-config.yaml",
}


def test_bad_marker_values_name_the_marker_and_the_key(pytester: pytest.Pytester) -> None:
    tests = "".join(
        f"\n@pytest.mark.sfmock({marker})\ndef test_{i}(sfmock_server):\n    pass\n"
        for i, marker in enumerate(BAD_MARKERS)
    )
    pytester.makepyfile(HEADER + tests)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q")
    result.assert_outcomes(errors=len(BAD_MARKERS))
    out = result.stdout.str()
    for key in BAD_MARKERS.values():
        assert key in out, key
    assert "TypeError" not in out and "Traceback" not in out.split("short test summary")[0].split("ERROR at setup")[0]
    assert "sfmock/config.py" not in out and "pytest_plugin.py" not in out  # the message, not sfmock's frames
    assert out.count("ConfigError: @pytest.mark.sfmock") >= len(BAD_MARKERS) - 1  # the scenario one names itself


def test_settings_in_python_take_config_values() -> None:
    settings = Settings(limits="realistic", prices={"Kwai-Kolors/Kolors": "1.25"}, accounts=[{"keys": ["sk-a"]}])  # type: ignore[arg-type]
    assert settings.limits == Limits(ipm=2, ipd=400)
    assert str(settings.prices["Kwai-Kolors/Kolors"]) == "1.25"
    assert settings.accounts is not None and settings.accounts[0].keys == (("sk-a", True),)
    with pytest.raises(ConfigError, match=r"^Settings: url_ttl: 'soon' is not of type 'integer'"):
        Settings(url_ttl="soon")  # type: ignore[arg-type]


def test_unknown_keys_list_the_allowed_ones() -> None:
    with pytest.raises(ConfigError) as info:
        settings_from({"colour": "blue"}, "@pytest.mark.sfmock")
    assert info.value.key == "colour" and "unknown key; expected one of the keys" in info.value.expected
    assert all(key in info.value.expected for key in ("url_ttl", "accounts", "default_balance"))
    assert load_contract()  # the models the price check names come from the contract


def test_a_positional_marker_argument_is_refused_by_every_fixture_that_reads_the_marker(
    pytester: pytest.Pytester,
) -> None:
    # outsider19: check_client ignored @pytest.mark.sfmock("no-such-scenario"); sfmock_server refused it
    pytester.makepyfile(
        HEADER
        + '\n@pytest.mark.sfmock("no-such-scenario")\ndef test_server(sfmock_server):\n    pass\n'
        + '\n@pytest.mark.sfmock("no-such-scenario")\ndef test_check(check_client):\n    pass\n'
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q")
    result.assert_outcomes(errors=2)
    assert result.stdout.str().count("@pytest.mark.sfmock takes keyword arguments only") >= 2, result.stdout.str()


def test_markers_on_the_module_the_class_and_the_test_add_up_the_closest_winning(pytester: pytest.Pytester) -> None:
    # outsider21: of two stacked markers only the closest applied; the other's image_port was dropped
    pytester.makepyfile(
        HEADER
        + """
pytestmark = pytest.mark.sfmock(image_port="same", url_ttl=120)


@pytest.mark.sfmock(url_ttl=60)
class TestImages:
    @pytest.mark.sfmock(object_names="observed")
    def test_stacked(self, sfmock_server):
        url = gen(sfmock_server).json()["images"][0]["url"]
        assert url.startswith(sfmock_server.url)  # the module's image_port: the API's origin
        assert "X-Amz-Expires=60&" in url  # the class's url_ttl over the module's
        assert url.split("?")[0].endswith("_00001_.png")  # the test's own
"""
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q")
    result.assert_outcomes(passed=1)
