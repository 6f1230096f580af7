"""GET /_sfmock/metrics: Prometheus text, one registry per app."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from conftest import AUTH, contract_hook
from sfmock import Limits, Settings, VirtualClock, create_app
from sfmock.chaos.metrics import LATENCY_BUCKETS, Counts, SharedCounts
from sfmock.transports import Transport

GEN = "/v1/images/generations"
KOLORS = {"model": "Kwai-Kolors/Kolors", "prompt": "a lighthouse", "batch_size": 2}
QWEN = {"model": "Qwen/Qwen-Image", "prompt": "a neon sign"}


def samples(client: httpx.Client) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    answer = client.get("/_sfmock/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain; version=")
    found = {}
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            found[sample.name, frozenset(sample.labels.items())] = sample.value
    return found


def value(found: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return found.get((name, frozenset(labels.items())), 0.0)


@pytest.fixture
def client(clock: VirtualClock) -> Iterator[TestClient]:
    app = create_app(Settings(seed=2, limits=Limits(ipm=3)), clock=clock)
    with TestClient(app) as test_client:
        test_client.event_hooks = {"request": [], "response": [contract_hook]}
        yield test_client


def test_requests_images_429s_and_latency(client: TestClient) -> None:
    urls = [image["url"] for image in client.post(GEN, json=KOLORS, headers=AUTH).json()["images"]]  # 2 images
    assert client.post(GEN, json=KOLORS, headers=AUTH).status_code == 429  # IPM 3: 2 more do not fit
    assert client.post(GEN, json=QWEN, headers=AUTH).status_code == 200
    assert client.post(GEN, json=QWEN, headers={**AUTH, "X-Sfmock-Fault": "error=429;limit=RPM"}).status_code == 429
    assert client.post(GEN, json=QWEN, headers={**AUTH, "X-Sfmock-Fault": "503"}).status_code == 503
    assert client.get(urls[0]).status_code == 200
    assert client.get(urls[1] + "x").status_code == 403  # a broken signature is no download
    assert client.get("/v1/models", headers=AUTH).status_code == 200
    assert client.get("/nowhere").status_code == 404
    client.get("/_sfmock/health")  # the control API is not counted

    found = samples(client)
    requests = "sfmock_requests_total"
    base = {"route": GEN, "method": "POST", "fault": ""}
    assert value(found, requests, **base, status="200", model="Kwai-Kolors/Kolors") == 1
    assert value(found, requests, **base, status="429", model="Kwai-Kolors/Kolors") == 1
    assert value(found, requests, **base, status="200", model="Qwen/Qwen-Image") == 1
    assert value(found, requests, **{**base, "fault": "header"}, status="429", model="Qwen/Qwen-Image") == 1
    assert value(found, requests, **{**base, "fault": "header"}, status="503", model="Qwen/Qwen-Image") == 1
    store = {"route": "/temporary/outputs/{object}", "method": "GET", "fault": "", "model": ""}
    assert value(found, requests, **store, status="200") == 1
    assert value(found, requests, **store, status="403") == 1
    assert value(found, requests, route="/v1/models", method="GET", status="200", model="", fault="") == 1
    assert value(found, requests, route="other", method="GET", status="404", model="", fault="") == 1
    assert sum(v for (name, _), v in found.items() if name == requests) == 9
    assert value(found, "sfmock_images_issued_total", model="Kwai-Kolors/Kolors") == 2
    assert value(found, "sfmock_images_issued_total", model="Qwen/Qwen-Image") == 1
    assert value(found, "sfmock_images_downloaded_total") == 1
    assert value(found, "sfmock_rate_limited_total", metric="ipm") == 1
    assert value(found, "sfmock_rate_limited_total", metric="rpm") == 1
    assert value(found, "sfmock_request_duration_seconds_count", route=GEN) == 5
    assert value(found, "sfmock_request_duration_seconds_bucket", route=GEN, le="+Inf") == 5
    assert value(found, "sfmock_request_duration_seconds_count", route="/temporary/outputs/{object}") == 2


def test_dropped_requests_and_scenario_rules_are_labelled(clock: VirtualClock) -> None:
    app = create_app(Settings(seed=1), clock=clock)
    rule = {"name": "cut", "when": {"path": "/v1/models"}, "action": {"drop": True}}
    with httpx.Client(transport=Transport(app, clock), base_url="http://sfmock.test") as client:
        client.put("/_sfmock/scenario", json={"rules": [rule]})
        with pytest.raises(httpx.RemoteProtocolError):
            client.get("/v1/models", headers=AUTH)
        found = samples(client)
    models = {"route": "/v1/models", "method": "GET", "model": ""}
    # a rule a client installed is labelled "scenario": its name is the client's choice
    assert value(found, "sfmock_requests_total", **models, status="none", fault="scenario") == 1


def test_each_app_counts_alone(clock: VirtualClock) -> None:
    one, two = TestClient(create_app(Settings(seed=1), clock=clock)), TestClient(create_app(Settings(), clock=clock))
    with one, two:
        one.get("/v1/models", headers=AUTH)
        found = samples(two)
        assert not [v for (name, _), v in found.items() if name == "sfmock_requests_total"]
        models = {"route": "/v1/models", "method": "GET", "model": ""}
        assert value(samples(one), "sfmock_requests_total", **models, status="200", fault="") == 1


def test_metrics_need_the_control_token_off_loopback(clock: VirtualClock) -> None:
    app = create_app(Settings(host="0.0.0.0", control_token="s3cret-token"), clock=clock)
    with TestClient(app) as client:
        client.event_hooks = {"request": [], "response": [contract_hook]}
        assert client.get("/_sfmock/metrics").status_code == 401
        assert client.get("/_sfmock/metrics", headers={"X-Sfmock-Token": "s3cret-token"}).status_code == 200


def test_labels_a_client_chooses_cannot_grow_the_metrics(clock: VirtualClock) -> None:
    with TestClient(create_app(Settings(seed=1), clock=clock)) as client:
        client.event_hooks = {"request": [], "response": [contract_hook]}
        for n in range(50):  # fifty model names the catalogue does not have, and odd methods
            assert client.post(GEN, json={"model": f"made-up/{n}", "prompt": "x"}, headers=AUTH).status_code == 400
            assert client.request(f"BREW{n}", "/v1/models", headers=AUTH).status_code == 405
        assert client.post(GEN, json=KOLORS, headers=AUTH).status_code == 200
        found = samples(client)
    requests = {labels: v for (name, labels), v in found.items() if name == "sfmock_requests_total"}
    base = {"route": GEN, "method": "POST", "fault": ""}
    assert value(found, "sfmock_requests_total", **base, status="400", model="other") == 50
    assert value(found, "sfmock_requests_total", **base, status="200", model="Kwai-Kolors/Kolors") == 1
    models = {"route": "/v1/models", "model": "", "fault": ""}
    assert value(found, "sfmock_requests_total", **models, method="other", status="405") == 50
    assert len(requests) == 3


OBSERVATIONS = st.lists(
    st.tuples(
        st.tuples(
            st.sampled_from([GEN, "/v1/models", "other"]),
            st.sampled_from(["GET", "POST"]),
            st.sampled_from(["200", "429", "none"]),
            st.sampled_from(["", "Kwai-Kolors/Kolors", "other"]),
            st.sampled_from(["", "header"]),
        ),
        st.sampled_from(LATENCY_BUCKETS) | st.floats(0, 100),  # on a bucket's bound, and between
        st.integers(0, 4),
        st.booleans(),
        st.sampled_from([None, "ipm", "none"]),
    ),
    max_size=30,
)


@settings(max_examples=60, deadline=None)
@given(observations=OBSERVATIONS)
def test_the_plain_counts_expose_what_prometheus_client_metrics_would(
    observations: list[tuple[tuple[str, str, str, str, str], float, int, bool, str | None]],
) -> None:
    """The counters a collector reads give the same families, samples and values as
    prometheus_client's Counter and Histogram fed the same requests (``_created``: when)."""
    plain, theirs = CollectorRegistry(), CollectorRegistry()
    counts, shared = Counts(plain), SharedCounts(theirs)
    for observation in observations:
        counts.add(*observation)
        shared.add(*observation)

    def exposed(registry: CollectorRegistry) -> list[tuple[str, str, list[tuple[str, dict[str, str], float]]]]:
        return [
            (family.name, family.type, [(s.name, s.labels, s.value) for s in family.samples])
            for family in text_string_to_metric_families(generate_latest(registry).decode())
            if not family.name.endswith("_created")
        ]

    assert exposed(plain) == exposed(theirs)
    created = [
        f.name for f in text_string_to_metric_families(generate_latest(plain).decode()) if f.name.endswith("_created")
    ]
    assert created == [
        f.name for f in text_string_to_metric_families(generate_latest(theirs).decode()) if f.name.endswith("_created")
    ]
