"""The requests' calls on a Redis Cluster: each command sent to the node that holds its key.

Every script and read of the hot path touches one slot (the store's keys are hash-tagged
per session and per account: :mod:`sfmock.state.redis_keys`), so a call's commands are
grouped by the node of their key, and each group goes down that node's own
:class:`~sfmock.state.redis_line.Line` in one write. A request's read-ahead on the default
session is one group: the clock and the epoch sit in that session's slot.

A ``MOVED`` or ``ASK`` reply means the command was not run (the slot is elsewhere, after a
resharding or a failover): the slot map is read again and that group sent once more, so
nothing is counted twice. Everything else is raised as on a single server.
"""

from __future__ import annotations

from contextlib import ExitStack
from typing import Any

import redis
from redis.cluster import RedisCluster

from sfmock.state.redis_line import Breaker, Command, Line, Scripts, raised

__all__ = ["ClusterLine", "key_of"]

_KEYLESS = {"MULTI", "EXEC", "DISCARD"}
_SCRIPTS = {"EVAL", "EVALSHA"}


def key_of(command: Command) -> Any:
    """The key ``command`` acts on; ``None`` for a transaction's brackets (they go with
    the commands between them)."""
    name = command[0] if isinstance(command[0], str) else command[0].decode()
    if name in _SCRIPTS or name.upper() in _SCRIPTS:
        return command[3] if int(command[2]) > 0 else None
    if name.upper() in _KEYLESS:
        return None
    return command[1]


class ClusterLine(Scripts):
    """:class:`~sfmock.state.redis_line.Line`'s calls, routed by slot over ``client``'s nodes."""

    def __init__(self, client: RedisCluster, breaker: Breaker | None = None) -> None:
        self.client: Any = client  # redis-py's cluster methods are untyped
        self.breaker = breaker or Breaker(0.0)
        self._lines: dict[str, Line] = {}
        self._by_slot: dict[int, Line] = {}  # what the slot map said; forgotten when a slot moves

    def _line(self, slot: int) -> Line:
        line = self._by_slot.get(slot)
        if line is None:
            node = self.client.nodes_manager.get_node_from_slot(slot)
            line = self._lines.get(node.name)
            if line is None:
                line = self._lines[node.name] = Line(self.client.get_redis_connection(node), self.breaker)
            self._by_slot[slot] = line
        return line

    def call(self, *commands: Command) -> list[Any]:
        """The replies to ``commands``, in order; one write per node they touch."""
        keys = [key_of(command) for command in commands]
        known = next((key for key in keys if key is not None), None)
        if known is None:
            raise redis.DataError("a call on a Redis Cluster needs a key to route it")
        if len(commands) == 1:  # most calls: one script
            return self._send(self.client.keyslot(known), list(commands))
        groups: dict[int, list[int]] = {}
        for index, key in enumerate(keys):
            known = key if key is not None else known
            groups.setdefault(self.client.keyslot(known), []).append(index)
        if len(groups) == 1:
            return self._send(next(iter(groups)), list(commands))
        replies: list[Any] = [None] * len(commands)
        try:
            received = self._at_once(groups, commands)
        except (redis.exceptions.MovedError, redis.exceptions.AskError):
            self._by_slot.clear()
            self.client.nodes_manager.initialize()  # a slot moved: what ran were reads, so all again
            received = self._at_once(groups, commands)
        for indices, sent in zip(groups.values(), received, strict=True):
            for i, reply in zip(indices, sent, strict=True):
                replies[i] = reply
        return replies

    def _at_once(self, groups: dict[int, list[int]], commands: tuple[Command, ...]) -> list[list[Any]]:
        """Each group to its node, every write before any read: one wait for them all. Only
        the read-ahead spans slots, and reads may be sent again."""
        lines = [self._line(slot) for slot in groups]
        held = sorted({id(line): line for line in lines}.values(), key=id)  # one order: no deadlock
        with ExitStack() as stack:
            for line in held:
                stack.enter_context(line.lock)
            try:  # two slots of one node: two writes on its connection, read back in order
                parts = [[commands[i] for i in indices] for indices in groups.values()]
                readers = [line.send(part) for line, part in zip(lines, parts, strict=True)]
                received = [
                    line.receive(reader, len(part)) for line, reader, part in zip(lines, readers, parts, strict=True)
                ]
            except BaseException as exc:
                for line in held:
                    line.fail(exc)  # some replies may be left unread on any of them
                raise
        return [raised(replies) for replies in received]

    def _send(self, slot: int, group: list[Command]) -> list[Any]:
        try:
            return self._line(slot).call(*group)
        except (redis.exceptions.MovedError, redis.exceptions.AskError):
            self._by_slot.clear()
            self.client.nodes_manager.initialize()  # the slot moved: nothing of this group ran
            return self._line(slot).call(*group)

    def close(self) -> None:
        for line in self._lines.values():
            line.close()
        self._lines.clear()
