"""Arbitrary JSON text at every route: never a 500, the journal always serialises, and a
refused request leaves the clock and the scenario where they were.

The bodies are JSON *text*, not Python values, so they can hold what Python's encoder
never writes: lone surrogates (``"\\ud800"``), ``NaN``, ``Infinity``, ``1e400``,
5000-digit integers and hundreds of levels of nesting.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from conftest import AUTH
from sfmock import Settings, VirtualClock, create_app

T0 = 1_767_225_600
ROUTES = [
    ("POST", "/v1/images/generations"),
    ("GET", "/v1/models"),
    ("GET", "/v1/user/info"),
    ("GET", "/temporary/outputs/0123456789abcdef0123456789abcdef-64x64_0.png"),
    ("GET", "/_sfmock/health"),
    ("GET", "/_sfmock/scenario"),
    ("PUT", "/_sfmock/scenario"),
    ("GET", "/_sfmock/clock"),
    ("POST", "/_sfmock/clock"),
    ("GET", "/_sfmock/journal"),
    ("DELETE", "/_sfmock/journal"),
    ("DELETE", "/_sfmock/scenario"),
    ("POST", "/_sfmock/reset"),
]

strings = st.text(st.characters(exclude_categories=()), max_size=20).map(lambda s: json.dumps(s, ensure_ascii=True))
numbers = st.one_of(
    st.integers(-(10**30), 10**30).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(lambda f: json.dumps(f)),
    st.sampled_from(["1e400", "-1e400", "1E999", "9" * 5000, "-0", "1e-400", "-7.29e+89", "4.2e9"]),
)
scalars = st.one_of(st.sampled_from(["null", "true", "false"]), numbers, strings)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4).map(lambda items: "[" + ",".join(items) + "]"),
        st.lists(st.tuples(strings, inner), max_size=4).map(
            lambda pairs: "{" + ",".join(f"{k}:{v}" for k, v in pairs) + "}"
        ),
    ),
    max_leaves=12,
)
deep = st.tuples(st.integers(0, 600), values).map(lambda t: "[" * t[0] + t[1] + "]" * t[0])
# objects that look like real requests, so the values reach validation, charging and the journal
shaped = st.tuples(
    st.sampled_from(["advance", "set", "model", "prompt", "rules", "image_size", "seed", "guidance_scale"]),
    st.one_of(values, deep),
).map(lambda kv: '{"model":"Kwai-Kolors/Kolors","prompt":"x",' + json.dumps(kv[0]) + ":" + kv[1] + "}")
clock_or_rules = st.tuples(st.sampled_from(["advance", "set", "rules", "name"]), st.one_of(values, deep)).map(
    lambda kv: "{" + json.dumps(kv[0]) + ":" + kv[1] + "}"
)
bodies = st.one_of(values, deep, shaped, clock_or_rules)


def no_constant(name: str) -> None:
    raise AssertionError(f"the journal wrote {name}, which is not JSON")


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    app = create_app(Settings(seed=1), clock=VirtualClock(T0))
    with TestClient(app, base_url="http://127.0.0.1:8000", raise_server_exceptions=False) as test_client:
        yield test_client


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(route=st.sampled_from(ROUTES), body=bodies)
def test_arbitrary_json_at_every_route(client: TestClient, route: tuple[str, str], body: str) -> None:
    method, path = route
    clock_before = client.get("/_sfmock/clock").json()["now"]
    scenario_before = client.get("/_sfmock/scenario").json()
    response = client.request(
        method, path, content=body.encode("utf-8"), headers={**AUTH, "Content-Type": "application/json"}
    )
    assert response.status_code < 500, (response.status_code, response.text[:300])
    journal = client.get("/_sfmock/journal")
    assert journal.status_code == 200
    json.loads(journal.content.decode("utf-8"), parse_constant=no_constant)  # strict UTF-8, plain JSON
    if response.status_code >= 400:
        assert client.get("/_sfmock/clock").json()["now"] == clock_before
        assert client.get("/_sfmock/scenario").json() == scenario_before
    client.delete("/_sfmock/scenario")
    client.post("/_sfmock/clock", json={"set": T0})
