"""The generation hot path's shortcuts give exactly what the plain code gave.

A trace id is formatted without a ``uuid.UUID``; URL signing builds once a second what
does not depend on the object name; the 200 body is encoded by orjson; the journal takes
the issued URLs from the API instead of reading them back; the routes skip Starlette's
router; a rate-limit window cuts what has left it half a log at a time. Each is checked
here against the plain way."""

from __future__ import annotations

import json
import random
import uuid
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.requests import Request
from starlette.responses import Response
from starlette.testclient import TestClient

from conftest import AUTH
from sfmock import Limits, Settings, VirtualClock, create_app, load_contract
from sfmock.app import FakeApp
from sfmock.service.direct import DirectRoute, _Request
from sfmock.service.generation import Generator
from sfmock.service.headers import _NAMES, header_map
from sfmock.service.responses import JSON_TYPE, generation_response, json_response
from sfmock.service.signing import UrlSigner
from sfmock.service.tracing import uuid4_text
from sfmock.state.windows import SlidingWindow as _Window
from sfmock.strategies import generation_requests

OBJECTS = st.from_regex(r"[0-9a-f]{32}-[0-9]{1,4}x[0-9]{1,4}_[0-3]\.png", fullmatch=True)
NAMES = st.text(min_size=1, max_size=60) | OBJECTS


@settings(max_examples=200, deadline=None)
@given(name=NAMES, times=st.lists(st.floats(0, 4e9), min_size=1, max_size=4), ttl=st.integers(1, 604_800))
def test_query_is_the_signed_parameters_joined(name: str, times: list[float], ttl: int) -> None:
    signer = UrlSigner("k", ttl=ttl)
    for issued in times:  # seconds in any order: the kept one is replaced when it differs
        joined = "&".join(f"{k}={v.replace('/', '%2F')}" for k, v in signer.sign(name, issued).items())
        assert signer.query(name, issued) == joined


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(request=generation_requests(), seed=st.integers(0, 2**32), now=st.floats(0, 4e9))
def test_the_200_body_has_the_same_bytes_as_before(request: dict[str, Any], seed: int, now: float) -> None:
    contract = load_contract()
    generator = Generator(contract=contract, signer=UrlSigner("k"), base_url="http://127.0.0.1:8000")
    model = contract.models[request["model"]]
    body = generator.respond(request, model, rng=random.Random(seed), now=now)
    assert generation_response(body).body == json_response(body).body


def test_the_200_body_of_values_orjson_cannot_write_falls_back() -> None:
    body = {"seed": 2**70, "images": []}
    assert generation_response(body).body == json_response(body).body == b'{"seed":1180591620717411303424,"images":[]}'


HEADER_NAMES = st.sampled_from(
    ["X-RateLimit-Limit-RPM", "x-ratelimit-remaining-ipm", "Retry-After", "Content-Type", "content-LENGTH"]
)


@settings(max_examples=200, deadline=None)
@given(headers=st.none() | st.dictionaries(HEADER_NAMES, st.text("0123456789a; ", max_size=8)))
def test_the_200_answer_has_the_head_starlette_gives(headers: dict[str, str] | None) -> None:
    body = {"images": [{"url": "http://127.0.0.1:1/x.png"}], "seed": 1}
    plain = Response(json_response(body).body, 200, headers=headers, media_type=JSON_TYPE)
    answer = generation_response(body, headers)
    assert (answer.status_code, answer.body, answer.raw_headers) == (plain.status_code, plain.body, plain.raw_headers)
    assert (answer.media_type, answer.background, dict(answer.headers)) == (JSON_TYPE, None, dict(plain.headers))


def test_the_journal_and_page_see_the_issued_urls_with_and_without_rewriting_faults() -> None:
    app = create_app(Settings(seed=1, default_balance=Decimal(1000)), clock=VirtualClock())
    with TestClient(app) as client:
        plain = client.post("/v1/images/generations", json={"model": "Kwai-Kolors/Kolors", "prompt": "x"}, headers=AUTH)
        extra = client.post(
            "/v1/images/generations",
            json={"model": "Kwai-Kolors/Kolors", "prompt": "y"},
            headers={**AUTH, "X-Sfmock-Fault": "extra-fields"},
        )
        cut = client.post(
            "/v1/images/generations",
            json={"model": "Kwai-Kolors/Kolors", "prompt": "z"},
            headers={**AUTH, "X-Sfmock-Fault": "malformed"},
        )
    session = app.state.sessions.default
    answers = [session.answer(entry.id) for entry in app.state.journal.entries()]
    assert answers[0].images == tuple(image["url"] for image in plain.json()["images"])
    assert answers[1].images == tuple(image["url"] for image in json.loads(extra.content)["images"])
    assert cut.status_code == 200 and answers[2].images == ()  # not JSON: nothing to read back


def _twins() -> tuple[FakeApp, FakeApp]:
    """Two fakes alike in everything; the second without the direct route (the router serves)."""
    settings = Settings(seed=7, default_balance=Decimal("0.10"), limits=Limits(rpm=4))
    direct, routed = (create_app(settings, clock=VirtualClock(1_767_225_600)) for _ in range(2))
    routed.middleware_stack = pipeline = routed.build_middleware_stack()
    assert routed.pipeline is pipeline and any(isinstance(route, DirectRoute) for route in routed.pipeline.direct)
    routed.pipeline.direct = ()
    return direct, routed


GENERATE = "/v1/images/generations"
REQUESTS: list[tuple[str, str, dict[str, Any]]] = [
    ("POST", GENERATE, {"json": {"model": "Kwai-Kolors/Kolors", "prompt": "x"}, "headers": AUTH}),
    ("POST", GENERATE, {"json": {"model": "Kwai-Kolors/Kolors", "prompt": "x", "batch_size": 9}, "headers": AUTH}),
    ("POST", GENERATE, {"json": {"model": "Kwai-Kolors/Kolors", "prompt": "x"}}),  # no key: 401
    ("POST", GENERATE, {"content": b"{not json", "headers": AUTH}),
    ("POST", GENERATE, {"json": {"model": "nope", "prompt": "x"}, "headers": AUTH}),
    (
        "POST",
        GENERATE,
        {"json": {"model": "Kwai-Kolors/Kolors", "prompt": "x"}, "headers": {**AUTH, "X-Sfmock-Strict": "1"}},
    ),
    (
        "POST",
        GENERATE,
        {"json": {"model": "Kwai-Kolors/Kolors", "prompt": "x"}, "headers": {**AUTH, "X-Sfmock-Strict": "2"}},
    ),
    (
        "POST",
        GENERATE,
        {"json": {"model": "Kwai-Kolors/Kolors", "prompt": "y"}, "headers": {**AUTH, "X-Sfmock-Fault": "503"}},
    ),
    ("POST", GENERATE, {"json": {"model": "Kwai-Kolors/Kolors", "prompt": "z", "batch_size": 2}, "headers": AUTH}),
    ("POST", GENERATE, {"json": {"model": "Kwai-Kolors/Kolors", "prompt": "w"}, "headers": AUTH}),  # balance
    ("GET", GENERATE, {"headers": AUTH}),  # 405, from the router in both
    ("PUT", GENERATE, {"json": {}, "headers": AUTH}),
    ("GET", "IMAGE", {}),
    ("HEAD", "IMAGE", {}),
    ("GET", "IMAGE", {"headers": AUTH}),  # two auth mechanisms: 403
    ("GET", "IMAGE", {"headers": {"X-Sfmock-Fault": "503"}}),
    ("GET", "IMAGE-FORGED", {}),
    ("GET", "/temporary/outputs/a/b.png", {}),  # two segments: the router's 404
    ("GET", "/temporary/outputs/", {}),
    ("POST", "IMAGE", {}),  # the router's 405
]


def test_the_direct_routes_answer_as_the_router_did() -> None:
    direct, routed = _twins()
    with TestClient(direct) as one, TestClient(routed) as other:
        image = ""
        for method, path, options in REQUESTS:
            if path.startswith("IMAGE"):
                path = image if path == "IMAGE" else image.replace("X-Amz-Signature=", "X-Amz-Signature=0")
            mine = one.request(method, path, **options)
            theirs = other.request(method, path, **options)
            assert (mine.status_code, mine.headers.items(), mine.content) == (
                theirs.status_code,
                theirs.headers.items(),
                theirs.content,
            ), (method, path, options)
            if mine.status_code == 200 and not image:
                image = mine.json()["images"][0]["url"]
    statuses = [entry.status for entry in direct.state.journal.entries()]
    assert {200, 400, 401, 403, 404, 405, 503} <= set(statuses)  # 403: the balance ran out, two auths
    downloads = direct.state.journal.entries(path="/temporary/outputs/*")
    assert [e.status for e in downloads][:4] == [200, 200, 403, 503]
    assert [dict(e) for e in direct.state.journal.entries()] == [dict(e) for e in routed.state.journal.entries()]


def test_the_direct_route_leaves_a_root_path_to_the_router() -> None:
    direct, _ = _twins()
    with TestClient(direct, root_path="/api") as client:
        answer = client.post(
            "/api/v1/images/generations", json={"model": "Kwai-Kolors/Kolors", "prompt": "x"}, headers=AUTH
        )
    assert answer.status_code == 200 and answer.json()["images"]


HEADER_NAMES = st.sampled_from([b"host", b"Authorization", b"authorization", b"X-Sfmock-Session", b"", b"a" * 100])


@settings(max_examples=200, deadline=None)
@given(headers=st.lists(st.tuples(st.one_of(HEADER_NAMES, st.binary(max_size=80)), st.binary(max_size=40))))
def test_the_header_map_is_the_headers_by_lower_case_name(headers: list[tuple[bytes, bytes]]) -> None:
    expected = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in headers}
    assert header_map({"headers": headers}) == expected
    assert header_map({"headers": headers}) == expected  # the names kept from the first time
    assert len(_NAMES) <= 256 and all(len(raw) <= 64 for raw in _NAMES)


def test_the_direct_routes_request_is_starlettes_made_in_one_call() -> None:
    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"{}", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        pass

    scope = {"type": "http", "method": "POST", "path": "/", "headers": [(b"host", b"x")], "query_string": b""}
    made, theirs = _Request(scope, receive, send), Request(scope, receive, send)
    assert isinstance(made, Request) and vars(made) == vars(theirs)
    assert (made.receive, made.headers["host"], made.url.path) == (receive, "x", "/")


class _PlainWindow:
    """The sliding window log as it was: every expired entry cut at once."""

    def __init__(self) -> None:
        self.entries: list[list[float]] = []

    def used(self, now: float, span: int) -> float:
        while self.entries and self.entries[-1][0] > now:
            self.entries.pop()
        self.entries = [entry for entry in self.entries if entry[0] > now - span]
        return sum(amount for _, amount in self.entries)

    def add(self, now: float, amount: float) -> None:
        if self.entries and self.entries[-1][0] == now:
            self.entries[-1][1] += amount
        else:
            self.entries.append([now, amount])


STEPS = st.lists(st.tuples(st.integers(-30, 40), st.integers(1, 5)), min_size=1, max_size=200)


@settings(max_examples=300, deadline=None)
@given(steps=STEPS, span=st.sampled_from([1, 10, 60]))
def test_a_window_counts_as_it_did_when_it_cut_every_expired_entry(steps: list[tuple[int, int]], span: int) -> None:
    window, plain, now = _Window(), _PlainWindow(), 1000.0
    for move, amount in steps:  # mostly forward, sometimes back (a clock set back)
        now = max(0.0, now + move / 4)
        assert window.used(now, span) == plain.used(now, span)
        window.add(now, amount)
        plain.add(now, amount)
        needed = amount + 1
        entries = list(zip(window.times[window.head :], window.amounts[window.head :], strict=True))
        assert entries == [tuple(entry) for entry in plain.entries]
        assert window.free_after(now, span, needed) >= 0
    assert len(window.times) <= 2 * len(plain.entries) + 1  # what has left is at most half the log


@given(bits=st.integers(0, 2**128 - 1))
def test_a_trace_id_is_the_text_of_a_version_4_uuid(bits: int) -> None:
    assert uuid4_text(bits) == str(uuid.UUID(int=bits, version=4))


def _plain_charge(entry: list[Decimal], cost: Decimal) -> bool:
    """Balances.charge as it was: every charge by the total, then gift first."""
    total = entry[0] + entry[1]
    if total <= 0 or total < cost:
        return False
    from_gift = min(entry[0], cost)
    entry[0] -= from_gift
    entry[1] -= cost - from_gift
    return True


MONEY = st.decimals(min_value=0, max_value=20, places=2)


@settings(max_examples=300, deadline=None)
@given(gift=MONEY, charged=MONEY, costs=st.lists(MONEY, min_size=1, max_size=12))
def test_a_charge_the_gift_balance_covers_takes_what_the_plain_charge_took(
    gift: Decimal, charged: Decimal, costs: list[Decimal]
) -> None:
    from sfmock.state.memory import Balances

    balances, plain = Balances(), [gift, charged]
    for cost in costs:
        assert balances.charge("a", (gift, charged), cost) == _plain_charge(plain, cost)
        assert balances.get("a", (gift, charged)) == tuple(plain)


def test_an_account_seen_again_after_a_reset_is_listed_again() -> None:
    app = create_app(Settings(seed=1), clock=VirtualClock())
    with TestClient(app) as client:
        for _ in range(2):  # the second is the most recent already: nothing moves
            assert (
                client.post(
                    "/v1/images/generations", json={"model": "Kwai-Kolors/Kolors", "prompt": "x"}, headers=AUTH
                ).status_code
                == 200
            )
        assert len(app.state.admission.seen()) == 1
        app.state.admission.reset()
        assert app.state.admission.seen() == []
        client.post("/v1/images/generations", json={"model": "Kwai-Kolors/Kolors", "prompt": "x"}, headers=AUTH)
        assert len(app.state.admission.seen()) == 1


ADMISSIONS = st.lists(
    st.tuples(st.integers(-40, 40), st.integers(1, 5), st.booleans()), min_size=1, max_size=300
)  # (clock move in quarter seconds, amount, whether the window's use is read as well)


@settings(max_examples=400, deadline=None)
@given(steps=ADMISSIONS, span=st.sampled_from([1, 10, 60]), limit=st.integers(1, 60))
def test_a_window_walked_only_near_its_limit_admits_as_one_walked_on_every_request(
    steps: list[tuple[int, int, bool]], span: int, limit: int
) -> None:
    window, plain, now = _Window(), _PlainWindow(), 1000.0
    for move, amount, read in steps:  # mostly forward, sometimes back (a clock set back)
        now = max(0.0, now + move / 4)
        used = plain.used(now, span)
        fits = window.fits(now, span, amount, limit)
        assert fits == (used + amount <= limit)
        if fits:
            window.add(now, amount)
            plain.add(now, amount)
        else:  # refused: it walked, and holds what the plain one holds, with the same wait
            assert window.total == used
            needed = used + amount - limit
            assert window.free_after(now, span, needed) == _plain_wait(plain, now, span, needed)
        if read:  # the rate-limit headers read the window's use: as the plain one's
            assert window.used(now, span) == plain.used(now, span)
        assert len(window.times) - window.head <= 2 * len(plain.entries) + 32  # what left is cut in time


def _plain_wait(plain: _PlainWindow, now: float, span: int, needed: float) -> float:
    freed = 0.0
    for when, amount in plain.entries:
        freed += amount
        if freed >= needed:
            return max(0.0, when + span - now)
    return 0.0
