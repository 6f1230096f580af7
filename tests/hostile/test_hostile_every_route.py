"""Arbitrary JSON at every route, then every GET route read: never a 500, on the memory
store and on a real redis-server.

The routes come from the app itself (every method of every route it serves), so a new
route is driven as soon as it exists; the contract must document each of them. A body
the fake refuses changes nothing: the clock and the scenario stay where they were, and
every read still answers, in the session that sent it and outside it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.routing import Route
from starlette.testclient import TestClient
from test_hostile_fuzz import bodies, values

from conftest import AUTH, contract_hook
from sfmock import Settings, VirtualClock, create_app
from sfmock.app import FakeApp
from sfmock.contract.openapi import load_contract

T0 = 1_767_225_600
GEN = "/v1/images/generations"
SESSIONS = [None, "probe"]


def routes(app: FakeApp) -> list[tuple[str, str]]:
    """(method, path template) of every route the app serves (HEAD is GET's)."""
    return sorted(
        (method, re.sub(r"\{(\w+):\w+\}", r"{\1}", route.path))  # the contract's form: {model}, not {model:path}
        for route in app.routes
        if isinstance(route, Route)
        for method in route.methods or ()
        if method != "HEAD"
    )


def test_the_app_serves_what_the_contract_documents() -> None:
    """The routes driven below are the contract's: none missing, none undocumented."""
    documented = {
        (method.upper(), path)
        for path, operations in load_contract().document["paths"].items()
        for method in operations
        if method in ("get", "put", "post", "delete", "patch")
    }
    assert set(routes(create_app(Settings()))) == documented


# leaves a request may carry that Python's encoder never writes, with plain ones so that
# documents get far enough to be installed: lone surrogates (one half, the other, both
# in the wrong order), a valid pair, NaN, infinities, numbers past float and int64 and past
# the 4,300 digits Python turns into an int
HOSTILE = [
    '"\\ud800"', '"r\\udfff"', '"\\udc80\\ud800"', '"\\ud83d\\ude00"', "NaN", "Infinity", "-Infinity",
    "1e400", "-1e400", "9" * 30, "-" + "9" * 25, "1e-400", "9" * 5000, "-" + "1" * 4400,
]  # fmt: skip
PLAIN = ["0", "1", "2", "0.5", "429", "503", "true", "null", '"x"', '"/v1/*"', '"Kwai-Kolors/Kolors"', '"1024x1024"']
# the fields the routes read, so that hostile values reach validation, storage and answers
KEYS = [
    "model", "prompt", "negative_prompt", "image_size", "seed", "batch_size", "image",  # generation
    "name", "description", "rules", "when", "action", "sequence", "nth", "times", "probability",  # scenario
    "path", "method", "header", "error", "status", "message", "limit", "delay", "retire",
    "pattern", "order", "count", "at_least", "at_most", "within", "timeout", "body", "fault", "key",  # verify
    "advance", "set", "freeze",  # clock
    "\\ud800", "k\\udfff",
]  # fmt: skip
leaves = st.one_of(st.sampled_from(HOSTILE), st.sampled_from(PLAIN), values)
documents = st.recursive(
    leaves,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3).map(lambda items: "[" + ",".join(items) + "]"),
        st.lists(st.tuples(st.sampled_from(KEYS), inner), max_size=5).map(
            lambda pairs: "{" + ",".join(f'"{k}":{v}' for k, v in pairs) + "}"
        ),
    ),
    max_leaves=16,
)
# scenarios the schema accepts but for one hole, filled with a hostile or plain leaf: the
# leaf then reaches every answer that shows a scenario or a rule (its name, its fault in
# the journal, the feed and the metrics) unless the fake refuses it first
SCENARIO = (
    '{"name":%(name)s,"description":%(description)s,"rules":[{"name":%(rule)s,'
    '"when":{"path":%(path)s,"model":%(model)s},"probability":%(probability)s,'
    '"action":{"delay":%(delay)s,"error":{"status":503,"message":%(message)s}}}]}'
)
FILLING = {
    "name": '"s"', "description": '"d"', "rule": '"r"', "path": '"/v1/*"', "model": '"Kwai-Kolors/Kolors"',
    "probability": "1", "delay": "0", "message": '"m"',
}  # fmt: skip
scenarios = st.tuples(st.sampled_from(sorted(FILLING)), st.sampled_from(HOSTILE[:4]) | leaves).map(
    lambda t: SCENARIO % {**FILLING, t[0]: t[1]}
)
patterns = st.tuples(st.sampled_from(["path", "model", "fault", "key", "method", "status"]), leaves, leaves).map(
    lambda t: '{"' + t[0] + '":' + t[1] + ',"body":{"seed":' + t[2] + "}}"
)
verifications = st.one_of(
    st.tuples(patterns, leaves).map(lambda t: '{"pattern":' + t[0] + ',"count":' + t[1] + "}"),
    st.lists(patterns, max_size=3).map(lambda items: '{"order":[' + ",".join(items) + "]}"),
    leaves.map(lambda v: '{"pattern":{},"within":' + v + "}"),
)
moves = st.tuples(st.sampled_from(["advance", "set", "freeze"]), leaves).map(lambda t: '{"' + t[0] + '":' + t[1] + "}")
generations = st.tuples(st.sampled_from(["prompt", "negative_prompt", "seed", "image_size", "batch_size"]), leaves).map(
    lambda t: '{"model":"Kwai-Kolors/Kolors","prompt":"x","' + t[0] + '":' + t[1] + "}"
)
anything = st.one_of(documents, bodies)
# the bodies each route reads, when it reads one; any route also gets anything at all
SHAPED = {
    ("PUT", "/_sfmock/scenario"): scenarios,
    ("POST", "/_sfmock/verify"): verifications,
    ("POST", "/_sfmock/clock"): moves,
    ("POST", GEN): generations,
}


@pytest.fixture(params=["memory", "redis"])
def app(request: pytest.FixtureRequest) -> Iterator[FakeApp]:
    store = "memory" if request.param == "memory" else request.getfixturevalue("redis_url")
    fake = create_app(Settings(seed=1, store=store), clock=VirtualClock(T0))
    yield fake
    fake.state.store.close()


@pytest.fixture
def client(app: FakeApp) -> Iterator[TestClient]:
    with TestClient(app, base_url="http://127.0.0.1:8000", raise_server_exceptions=False) as test_client:
        test_client.event_hooks = {"request": [], "response": [contract_hook]}
        yield test_client


def filled(path: str, image: str) -> str:
    """A path template with a real object name (an image issued) in place of ``{object}``
    and a catalogue model in place of ``{model}``."""
    return path.replace("{object}", image).replace("{model}", "Kwai-Kolors/Kolors")


def never_a_500(client: TestClient, method: str, path: str, **options: object) -> int:
    response = client.request(method, path, **options)  # type: ignore[arg-type]
    assert response.status_code < 500, (method, path, response.status_code, response.text[:300])
    # a refusal in the service's words, not Python's (int()'s 4,300-digit limit names sys.set_int_max_str_digits)
    assert "sys." not in response.text and "Traceback" not in response.text, (method, path, response.text[:300])
    return response.status_code


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_arbitrary_json_at_every_route_then_every_read(app: FakeApp, client: TestClient, data: st.DataObject) -> None:
    served = routes(app)
    writers = [route for route in served if route[0] != "GET"]  # half the draws: what changes state
    method, path = data.draw(st.sampled_from(writers) | st.sampled_from(served), label="route")
    shaped = SHAPED.get((method, path))
    body = data.draw(anything if shaped is None else st.one_of(shaped, shaped, shaped, anything), label="body")
    session = data.draw(st.sampled_from(SESSIONS), label="session")
    named = {} if session is None else {"X-Sfmock-Session": session}
    issued = client.post(GEN, json={"model": "Kwai-Kolors/Kolors", "prompt": "x"}, headers={**AUTH, **named})
    image = issued.json()["images"][0]["url"].split("/")[-1].split("?")[0] if issued.status_code == 200 else "x.png"
    clock_before = client.get("/_sfmock/clock").json()["now"]
    scenario_before = client.get("/_sfmock/scenario", headers=named).json()
    headers = {**AUTH, **named, "Content-Type": "application/json"}
    status = never_a_500(client, method, filled(path, image), content=body.encode("utf-8"), headers=headers)
    for read_method, read_path in served:
        if read_method == "GET":
            for where in [{}, named] if named else [{}]:
                never_a_500(client, "GET", filled(read_path, image), headers={**AUTH, **where})
    journal = client.get("/_sfmock/journal", headers=named)
    assert journal.status_code == 200
    json.loads(journal.content.decode("utf-8"))  # strict UTF-8
    if status >= 400:
        assert client.get("/_sfmock/clock").json()["now"] == clock_before
        assert client.get("/_sfmock/scenario", headers=named).json() == scenario_before
    client.post("/_sfmock/reset")
