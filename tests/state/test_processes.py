"""The exactness one process keeps, kept by several: two ``sfmock serve`` processes sharing
a real Redis, ``sfmock serve --workers 2`` on it, and two sharing a real three-node Redis
Cluster, against one process on memory.

The same test bodies run on each setup: quotas and balances admit exactly (N concurrent
requests against a limit L admit L; balances end at zero, never below), the journal
totals every request, ``nth`` and sequence faults count across processes, and a reset or
a clock move made on one process is seen by the other. Then Redis is killed mid-load and
started again: nothing admitted is forgotten, nothing past a limit is admitted, and the
requests that met the outage got the documented 503.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from fleets import CONFIG, GEN, KOLORS, Fleet, Serve, bearer
from prometheus_client.parser import text_string_to_metric_families

from conftest import contract_hook
from redis_server import RedisCluster, RedisServer
from sfmock.scrubbing import scrub_text

SETUPS = ["one process, memory", "two processes, Redis", "--workers 2, Redis", "two processes, Redis Cluster"]


@pytest.fixture(scope="module", params=SETUPS)
def fleet(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    config = tmp_path_factory.mktemp("fleet") / "sfmock.yaml"
    config.write_text(CONFIG, "utf-8")
    if request.param == SETUPS[0]:
        serves = [Serve(config)]
        urls = [serves[0].url]
    elif request.param == SETUPS[3]:  # three nodes: sessions and accounts spread over their slots
        cluster: RedisCluster = request.getfixturevalue("redis_cluster")
        cluster.flush()
        serves = [Serve(config, "--store", cluster.url), Serve(config, "--store", cluster.url)]
        urls = [serve.url for serve in serves]
    else:
        server: RedisServer = request.getfixturevalue("redis_server")
        url = server.url.removesuffix("/0") + ("/1" if request.param == SETUPS[1] else "/2")
        server.flush()
        if request.param == SETUPS[1]:
            serves = [Serve(config, "--store", url), Serve(config, "--store", url)]
            urls = [serve.url for serve in serves]
        else:
            serves = [Serve(config, "--store", url, "--workers", "2")]
            urls = [serves[0].url]
    fleet = Fleet(serves, urls)
    yield fleet
    fleet.stop()


@pytest.fixture
def one(fleet: Fleet) -> Fleet:
    """The fleet, reset (on its last URL) before the test."""
    fleet.control(-1, "POST", "reset")
    return fleet


def test_n_concurrent_requests_against_a_limit_admit_exactly_the_limit(one: Fleet) -> None:
    statuses = one.at_once(40, lambda c: c.post(GEN, json=KOLORS, headers=bearer("sk-quota")))
    assert (statuses.count(200), statuses.count(429)) == (7, 33)
    for n in range(len(one.urls)):  # one journal, whichever process is asked
        journal = one.control(n, "GET", "journal", params={"path": GEN})
        assert [e["status"] for e in journal["entries"]].count(200) == 7 and journal["count"] == 40
    one.control(0, "POST", "clock", json={"advance": 59})
    assert one.client(-1).post(GEN, json=KOLORS, headers=bearer("sk-quota")).status_code == 429
    one.control(-1, "POST", "clock", json={"advance": 1})  # the window has slid, everywhere
    assert one.client(0).post(GEN, json=KOLORS, headers=bearer("sk-quota")).status_code == 200


def test_a_balance_pays_for_exactly_what_it_can_and_never_goes_below_zero(one: Fleet) -> None:
    statuses = one.at_once(30, lambda c: c.post(GEN, json=KOLORS, headers=bearer("sk-money")))
    assert (statuses.count(200), statuses.count(403)) == (8, 22)  # 2.00 / 0.25
    for n in range(len(one.urls)):
        data = one.client(n).get("/v1/user/info", headers=bearer("sk-money")).json()["data"]
        assert (data["balance"], data["totalBalance"]) == ("0.00", "0.00")


def test_nth_and_sequence_faults_count_every_process_s_requests(one: Fleet) -> None:
    scenario = {
        "rules": [
            {"name": "third-and-fifth", "when": {"path": "/v1/models"}, "nth": [3, 5], "action": {"error": 503}},
            {"name": "steps", "when": {"path": "/v1/user/info"}, "sequence": [{"error": 500}, "pass", {"error": 429}]},
        ]
    }
    one.control(0, "PUT", "scenario", json=scenario)
    assert one.control(-1, "GET", "scenario")["rules_count"] == 2  # installed everywhere
    models = [one.client(n).get("/v1/models", headers=bearer("sk-plain")).status_code for n in range(6)]
    assert models == [200, 200, 503, 200, 503, 200]
    info = [one.client(n).get("/v1/user/info", headers=bearer("sk-plain")).status_code for n in range(4)]
    assert info == [500, 200, 429, 200]
    faults = [e["fault"] for e in one.control(-1, "GET", "journal", params={"fault": "*"})["entries"]]
    assert sum("error=" in fault for fault in faults) == 4


def test_reset_and_clock_moves_made_on_one_process_are_seen_by_all(one: Fleet) -> None:
    start = one.control(0, "GET", "clock")["now"]
    assert all(one.control(n, "GET", "clock")["now"] == start for n in range(len(one.urls)))
    one.control(0, "POST", "clock", json={"advance": 3600})
    assert one.control(-1, "GET", "clock")["now"] == start + 3600
    one.control(0, "PUT", "scenario", json={"rules": [{"when": {"path": "/v1/models"}, "action": {"error": 503}}]})
    assert one.client(-1).get("/v1/models", headers=bearer("sk-plain")).status_code == 503
    one.control(-1, "POST", "reset")
    for n in range(len(one.urls)):
        assert one.control(n, "GET", "clock")["now"] == start
        assert one.control(n, "GET", "journal")["count"] == 0
    assert [one.client(n).get("/v1/models", headers=bearer("sk-plain")).status_code for n in range(2)] == [200, 200]


def test_a_generation_sees_what_another_process_changed_and_its_entry_is_seen_there_at_once(one: Fleet) -> None:
    """A process serves a generation on what it read of the clock and scenario last time,
    checked by the admission's own call: a change made on another process just before is
    seen all the same; and the entry that call writes is in the journal of every process
    as soon as the answer is in."""
    last = len(one.urls) - 1
    for _ in range(3):  # the last process has read the clock and the scenario
        assert one.client(last).post(GEN, json=KOLORS, headers=bearer("sk-plain")).status_code == 200
    start = one.control(0, "GET", "clock")["now"]
    one.control(0, "POST", "clock", json={"advance": 3600})
    answer = one.client(last).post(GEN, json=KOLORS, headers=bearer("sk-plain"))
    assert (answer.status_code, answer.json()["created"]) == (200, int(start + 3600))
    for n in range(len(one.urls)):
        entry = one.control(n, "GET", "journal", params={"limit": 1})["entries"][-1]
        assert (entry["trace_id"], entry["time"]) == (answer.headers["x-siliconcloud-trace-id"], start + 3600)
    one.control(0, "PUT", "scenario", json={"rules": [{"when": {"path": GEN}, "action": {"error": 503}}]})
    assert one.client(last).post(GEN, json=KOLORS, headers=bearer("sk-plain")).status_code == 503
    one.control(0, "PUT", "scenario", json={"rules": []})
    for _ in range(4):  # many answers in a row, each read back at once from the other process
        answer = one.client(last).post(GEN, json=KOLORS, headers=bearer("sk-plain"))
        entry = one.control(0, "GET", "journal", params={"limit": 1})["entries"][-1]
        assert (answer.status_code, entry["trace_id"]) == (200, answer.headers["x-siliconcloud-trace-id"])


def test_a_model_a_fault_retires_on_one_process_is_retired_on_all_until_a_reset(one: Fleet) -> None:
    qwen = {"model": "Qwen/Qwen-Image", "prompt": "a lighthouse"}
    rule = {"name": "retire-qwen", "when": {"path": GEN}, "nth": [1], "action": {"retire": "Qwen/Qwen-Image"}}
    one.control(0, "PUT", "scenario", json={"rules": [rule]})
    one.client(0).post(GEN, json=KOLORS, headers=bearer("sk-plain"))  # the rule fires on process 0
    for n in range(8):  # every URL, and a fresh connection each: --workers spreads them over its workers
        with httpx.Client(base_url=one.urls[n % len(one.urls)], timeout=30) as fresh:
            refused = fresh.post(GEN, json=qwen, headers=bearer("sk-plain"))
            assert (refused.status_code, refused.json()["code"]) == (403, 30003)
            listed = [m["id"] for m in fresh.get("/v1/models", headers=bearer("sk-plain")).json()["data"]]
            assert "Qwen/Qwen-Image" not in listed and "Kwai-Kolors/Kolors" in listed
    one.control(-1, "POST", "reset")  # back to the configured schedule, everywhere
    for n in range(8):
        with httpx.Client(base_url=one.urls[n % len(one.urls)], timeout=30) as fresh:
            assert fresh.post(GEN, json=qwen, headers=bearer("sk-plain")).status_code == 200


def _generations_counted(url: str) -> float:
    """The 200 generations ``/_sfmock/metrics`` counts, asked on a fresh connection."""
    with httpx.Client(base_url=url, timeout=30) as fresh:
        text = fresh.get("/_sfmock/metrics").text
    wanted = {"route": GEN, "method": "POST", "status": "200", "model": "Kwai-Kolors/Kolors", "fault": ""}
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "sfmock_requests_total" and sample.labels == wanted
    )


def test_the_metrics_of_workers_add_up(one: Fleet) -> None:
    before = sum(_generations_counted(url) for url in one.urls)  # counters are never reset
    for n in range(12):  # a fresh connection each: --workers spreads them over its workers
        with httpx.Client(base_url=one.urls[n % len(one.urls)], timeout=30) as fresh:
            assert fresh.post(GEN, json=KOLORS, headers=bearer("sk-plain")).status_code == 200
    # one process, or --workers (any worker answers for all); two serve processes count apart
    counted = [sum(_generations_counted(url) for url in one.urls) - before for _ in range(4)]
    assert counted == [12] * 4


def test_a_named_session_is_one_session_across_processes(one: Fleet) -> None:
    session = {"X-Sfmock-Session": "suite-a", **bearer("sk-quota")}
    statuses = one.at_once(20, lambda c: c.post(GEN, json=KOLORS, headers=session))
    assert statuses.count(200) == 7  # the session's own quota, exact
    assert one.client(0).post(GEN, json=KOLORS, headers=bearer("sk-quota")).status_code == 200  # default's
    for n in range(len(one.urls)):
        journal = one.control(n, "GET", "journal", headers={"X-Sfmock-Session": "suite-a"})
        assert journal["count"] == 20
    one.control(-1, "POST", "reset")  # a full reset forgets named sessions, on every process
    assert one.client(0).get("/v1/models", headers=session).status_code == 200
    for n in range(len(one.urls)):
        journal = one.control(n, "GET", "journal", headers={"X-Sfmock-Session": "suite-a"})
        assert [e["path"] for e in journal["entries"]] == ["/v1/models"]  # nothing stale from before
    rule = {"when": {"path": "/v1/models"}, "action": {"error": 503}}
    one.control(0, "PUT", "scenario", json={"rules": [rule]}, headers={"X-Sfmock-Session": "suite-a"})
    one.control(0, "POST", "reset")
    one.control(-1, "PUT", "scenario", json={"rules": []}, headers={"X-Sfmock-Session": "suite-a"})
    assert [one.client(n).get("/v1/models", headers=session).status_code for n in range(2)] == [200, 200]


def test_a_sessions_clock_moved_on_one_process_moves_that_session_alone_on_all(one: Fleet) -> None:
    names = {"a": {"X-Sfmock-Session": "clock-a"}, "b": {"X-Sfmock-Session": "clock-b"}}
    hooks = {"request": [], "response": [contract_hook]}

    def generate(n: int, name: str) -> httpx.Response:
        # a fresh connection each: --workers spreads them over its workers
        with httpx.Client(base_url=one.urls[n % len(one.urls)], timeout=30, event_hooks=hooks) as fresh:
            return fresh.post(GEN, json=KOLORS, headers={**names[name], **bearer("sk-quota")})

    start = one.control(0, "GET", "clock")["now"]
    urls = {}
    for name in names:
        answers = [generate(n, name) for n in range(8)]
        assert [a.status_code for a in answers] == [200] * 7 + [429]  # the session's minute is full
        urls[name] = answers[0].json()["images"][0]["url"]
    one.control(0, "POST", "clock", json={"advance": 3601}, headers=names["a"])
    for n in range(2 * len(one.urls)):
        assert one.control(n, "GET", "clock", headers=names["a"])["now"] == start + 3601
        assert one.control(n, "GET", "clock", headers=names["b"])["now"] == one.control(n, "GET", "clock")["now"]
    assert one.control(0, "GET", "clock")["now"] == start  # the server's clock (frozen) did not move
    assert [generate(n, "a").status_code for n in range(2)] == [200, 200]  # its minute is over everywhere
    assert [generate(n, "b").status_code for n in range(2)] == [429, 429]
    with httpx.Client(timeout=30, event_hooks=hooks) as fresh:
        assert fresh.get(urls["a"]).status_code == 403  # expired in its session, on every process
        assert fresh.get(urls["b"]).status_code == 200
    one.control(-1, "POST", "reset", headers=names["a"])
    assert one.control(0, "GET", "clock", headers=names["a"])["now"] == start


def test_only_the_256_most_recently_used_sessions_are_kept_by_all_processes(one: Fleet) -> None:
    for n in range(260):  # each a new session, on the processes in turn
        headers = {"X-Sfmock-Session": f"cap-{n}", **bearer("sk-plain")}
        assert one.client(n).get("/v1/models", headers=headers).status_code == 200
    for n in range(len(one.urls)):  # the newest are kept, whichever process is asked
        kept = one.control(n, "GET", "journal", headers={"X-Sfmock-Session": f"cap-{259 - n}"})
        assert kept["count"] == 1
    for n in range(len(one.urls)):  # the four oldest went, on every process
        gone = one.control(n, "GET", "journal", headers={"X-Sfmock-Session": f"cap-{n}"})
        assert gone["count"] == 0


def test_the_page_shows_the_answers_of_every_process(one: Fleet) -> None:
    url = one.client(1).post(GEN, json=KOLORS, headers=bearer("sk-plain")).json()["images"][0]["url"]
    one.client(1).get(GEN, headers=bearer("sk-plain"))  # a 405, answered by the same process
    for n in range(len(one.urls)):  # asked of the other process too: the journal kept enough
        first, refused = one.control(n, "GET", "ui/feed")["entries"][-2:]
        assert [image["url"] for image in first["answer"]["images"]] == [scrub_text(url)]  # signature hidden
        assert '"images"' in first["answer"]["body"]
        assert (refused["status"], refused["answer"]["body"]) == (405, '"405 method not allowed"')


def test_killing_redis_mid_load_forgets_nothing_admitted_and_admits_nothing_past_a_limit(
    own_redis: RedisServer, tmp_path: Path
) -> None:
    config = tmp_path / "sfmock.yaml"
    config.write_text(CONFIG, "utf-8")
    fleet = Fleet(*_two(config, own_redis.url))
    statuses: dict[str, list[int]] = {"sk-quota": [], "sk-money": []}
    done = threading.Semaphore(0)
    stop = threading.Event()

    def load(n: int) -> None:
        key = "sk-quota" if n % 2 else "sk-money"
        while not stop.is_set():
            answer = fleet.client(n).post(GEN, json=KOLORS, headers=bearer(key))
            statuses[key].append(answer.status_code)
            if answer.status_code == 503:
                assert "store" in answer.json()["message"]  # the documented body, saying why
            done.release()
            time.sleep(0.005)

    threads = [threading.Thread(target=load, args=(n,)) for n in range(4)]
    try:
        for thread in threads:
            thread.start()
        _wait(done, 6)  # under way: some admitted
        own_redis.kill()
        _wait(done, 12)  # these meet the outage
        own_redis.start()  # the same data: every acknowledged write was on disk
        deadline = time.monotonic() + 20
        while 200 not in statuses["sk-money"][-20:] and time.monotonic() < deadline:
            _wait(done, 1)  # until the service is back by itself
        _wait(done, 40)
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
    try:
        assert 503 in statuses["sk-quota"] + statuses["sk-money"]
        assert statuses["sk-quota"].count(200) <= 7 and statuses["sk-money"].count(200) <= 8  # nothing past
        info = fleet.client(1).get("/v1/user/info", headers=bearer("sk-money")).json()["data"]
        left = Decimal(info["totalBalance"])
        assert left >= 0 and Decimal("2.00") - left >= Decimal("0.25") * statuses["sk-money"].count(200)
        # what Redis counted stands: the quota stays used up to the very request
        refusals = [fleet.client(n).post(GEN, json=KOLORS, headers=bearer("sk-quota")).status_code for n in range(4)]
        assert set(refusals) == {429} or statuses["sk-quota"].count(200) + refusals.count(200) <= 7
    finally:
        fleet.stop()


def _two(config: Path, url: str) -> tuple[list[Serve], list[str]]:
    serves = [Serve(config, "--store", url), Serve(config, "--store", url)]
    return serves, [serve.url for serve in serves]


def _wait(done: threading.Semaphore, count: int) -> None:
    for _ in range(count):
        assert done.acquire(timeout=30), "the load stopped"
