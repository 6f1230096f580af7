"""The Redis store on a real three-node Redis Cluster: every script touches one slot, the
keys spread over the nodes, and ``serve`` takes a node's address (the shared-store
behaviours themselves run on the cluster too: tests/state/test_stores.py and
test_processes.py)."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
import redis

from redis_server import RedisCluster
from sfmock.state.open import open_store
from sfmock.state.redis_line import read_ahead
from sfmock.state.redis_store import RedisStore
from sfmock.state.redis_time import CLOCK_KEY, EPOCH_KEY
from sfmock.state.store import Window

T0 = 1_767_225_600.25
OPENING = (Decimal("2.00"), Decimal("0.50"))


class Numbered:
    def encode(self, item: Any) -> bytes:
        return json.dumps({k: v for k, v in item.items() if k != "id"}).encode()

    def decode(self, data: bytes, item_id: int) -> Any:
        return {"id": item_id, **json.loads(data)}


def _keys_by_node(cluster: RedisCluster) -> list[list[bytes]]:
    held = []
    for port in cluster.ports:
        client = redis.Redis(port=port)
        held.append(sorted(client.keys("sfmock:*")))
        client.close()
    return held


def test_sessions_and_accounts_spread_over_the_nodes_each_in_one_slot(
    redis_cluster: RedisCluster, cluster_url: str
) -> None:
    store = open_store(cluster_url)
    assert isinstance(store, RedisStore) and store.cluster
    window = [Window("m|rpm", 60, 3, 1)]
    for session in (None, "suite-a", "suite-b", "suite-c", "job-7"):
        with store.snapshot(session):  # the read-ahead a request makes: its keys' nodes answer
            ahead = [CLOCK_KEY, EPOCH_KEY, store.prefix(session) + "f:scenario"]
            ahead += [] if session is None else [store.epoch_key(session), store.prefix(session) + "clock"]
            assert all(read_ahead(key) is not None for key in ahead)  # read from two nodes for a named one
            for account in ("alice", "bob", "carol", "dave", "erin", "frank"):
                assert store.book(session).admit(account, OPENING, window, Decimal(1), T0).outcome == "admitted"
            log = store.log(session, Numbered(), size=5, max_bytes=1000)
            assert log.append(lambda n: {"id": n}, 10) >= 1  # the entry's id
    held = _keys_by_node(redis_cluster)
    assert all(held), held  # every node holds some of the store
    client = redis.Redis(port=redis_cluster.ports[0])
    slots: dict[str, set[int]] = {}
    for key in (k for node in held for k in node):
        text = key.decode()
        owner = text.rsplit("{", 1)[1] if "|q:" in text else text.split("|", 1)[0]  # an account, or a session
        slots.setdefault(owner, set()).add(int(client.cluster("keyslot", text)))
    client.close()
    assert all(len(found) == 1 for found in slots.values()), slots  # each account's, each session's keys: one slot
    assert len({slot for found in slots.values() for slot in found}) > 3
    store.close()


def test_a_cluster_database_other_than_0_stops_serve_naming_the_flag(
    cluster_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from sfmock.cli import main

    url = cluster_url.removesuffix("/0") + "/1"
    assert main(["serve", "--store", url, "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert f"command line: --store: {url}: SELECT is not allowed in cluster mode; expected a database" in err


def _move_slot(cluster: RedisCluster, slot: int) -> None:
    """Move ``slot`` with its keys to another node, as ``redis-cli --cluster reshard`` does."""
    clients = [redis.Redis(port=port) for port in cluster.ports]
    ids = [client.execute_command("CLUSTER", "MYID").decode() for client in clients]
    source = next(i for i, client in enumerate(clients) if client.execute_command("CLUSTER", "COUNTKEYSINSLOT", slot))
    target = (source + 1) % len(clients)
    clients[target].execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", ids[source])
    clients[source].execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", ids[target])
    keys = clients[source].execute_command("CLUSTER", "GETKEYSINSLOT", slot, 100)
    clients[source].execute_command("MIGRATE", "127.0.0.1", cluster.ports[target], "", 0, 5000, "KEYS", *keys)
    for client in clients:
        client.execute_command("CLUSTER", "SETSLOT", slot, "NODE", ids[target])
        client.close()


def test_a_slot_moved_under_a_running_store_is_followed_and_nothing_counted_twice(
    redis_cluster: RedisCluster, cluster_url: str
) -> None:
    store = open_store(cluster_url)
    book = store.book(None)
    window = [Window("m|rpm", 60, 2, 1)]
    assert book.admit("alice", OPENING, window, Decimal(1), T0).outcome == "admitted"
    probe = redis.Redis(port=redis_cluster.ports[0])
    _move_slot(redis_cluster, int(probe.execute_command("CLUSTER", "KEYSLOT", "{alice|}")))
    probe.close()
    assert book.admit("alice", OPENING, window, Decimal(1), T0 + 1).outcome == "admitted"  # MOVED, sent again
    assert book.admit("alice", OPENING, window, Decimal(1), T0 + 2).outcome == "limited"
    assert book.balances("alice", OPENING) == (Decimal("0.00"), Decimal("0.50"))
    store.close()
