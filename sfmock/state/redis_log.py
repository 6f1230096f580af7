"""A bounded log on Redis (the journal, the page's answers): :class:`RedisLog`, made by
:meth:`RedisStore.log`; its entries counted and shed across sessions by one script."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast

from sfmock.state.redis_keys import BUDGET_KEY, SESSIONS_KEY
from sfmock.state.resp import Packed
from sfmock.state.rider import Rider
from sfmock.state.store import NumberedCodec

if TYPE_CHECKING:
    from sfmock.state.redis_store import RedisStore

__all__ = ["RedisLog"]

T = TypeVar("T")


class RedisLog(Generic[T]):
    """A journal in Redis: a sorted set of encoded entries by id, and a meta hash."""

    def __init__(
        self, store: RedisStore, prefix: str, codec: NumberedCodec[T], size: int, max_bytes: int, idle_ms: int
    ) -> None:
        self.store = store
        self.idle_ms = idle_ms
        self.codec = codec
        self._encode: Callable[[Callable[[int], T]], bytes] = getattr(codec, "encode_built", None) or (
            lambda build: codec.encode(build(0))
        )
        self.size = size
        self.max_bytes = max_bytes
        self.entries_key = prefix + "j:entries"
        self.meta_key = prefix + "j:meta"
        self.ids_key = prefix + "j:ids"  # the session's own: no key every request shares
        self._decoded: dict[bytes, T] = {}
        self._packed: tuple[Packed, Packed] | None = None  # the push's keys and its bounds

    field = "s:"  # this session's in the sessions' journal budget (scripts.SHED)

    def append(self, build: Callable[[int], T], size: int) -> int:
        keys, args = self._push(build, size)
        entry_id, over = self.store.run(self.store.push_script, keys, args)
        self.settle(bool(over))
        return int(entry_id)

    def _push(self, build: Callable[[int], T], size: int) -> tuple[list[str], list[Any]]:
        """The push script's keys and arguments for ``build``'s item."""
        payload = self._encode(build)  # written without its id: the script numbers it
        return self._keys(), [size, payload, *self._bounds()]

    def _keys(self) -> list[str]:
        return [self.entries_key, self.meta_key, self.ids_key, *self._budget]

    def _bounds(self) -> list[Any]:
        """The push script's arguments after the entry's own."""
        return [self.size, self.max_bytes, self.idle_ms, self.field, self.max_bytes]

    @property
    def ahead(self) -> bool:
        return not self.store.cluster

    def rider(self, build: Callable[[int], T], size: int, response: bytes) -> Rider | None:
        """The append of ``build``'s item, to be written by an admission on the same server
        (:mod:`sfmock.state.rider`); ``None`` on a cluster, whose slots keep them apart."""
        if not self.ahead:
            return None
        if self._packed is None:  # what stays the same from one entry to the next, packed once
            self._packed = (Packed(self._keys()), Packed(self._bounds()))
        payload = self._encode(build)
        return Rider(self, [self._packed[0]], [size, payload, self._packed[1]], response)

    def rewrite(self, entry_id: int, build: Callable[[int], T], size: int) -> None:
        """Write the item ``entry_id`` again as ``build`` makes it (same ``size``)."""
        payload = self._encode(build)
        self.store.run(self.store.rewrite_script, [self.entries_key], [entry_id, size, payload])

    def settle(self, over: bool) -> None:
        """After an append: the sessions' journals past their budget shed what they must."""
        if over:  # every session's journals together past the budget: the least recently used go
            shed = [SESSIONS_KEY, BUDGET_KEY, self.entries_key, self.meta_key]
            if self.store.run(self.store.shed_script, shed, [self.field, self.max_bytes]):
                self.store.sweep()

    @property
    def _budget(self) -> list[str]:
        """The budget's key, on one server: a cluster keeps it in another slot than the
        session's keys, and each session's journal keeps its own bound there."""
        return [] if self.store.cluster else [BUDGET_KEY]

    def items(self) -> list[T]:
        with self.store.guard():
            members = cast(list[bytes], self.store.client.zrange(self.entries_key, 0, -1))
        # by the whole entry: a session dropped and begun again numbers its entries from 1 again
        decoded: dict[bytes, T] = {}
        result: list[T] = []
        for member in members:
            item = self._decoded.get(member)
            if item is None:
                head, _, rest = member.partition(b" ")
                item = self.codec.decode(rest.partition(b" ")[2], int(head))
            decoded[member] = item
            result.append(item)
        self._decoded = decoded  # only what is held stays cached
        return result

    def oldest_id(self) -> int:
        with self.store.guard():
            first = self.store.client.zrange(self.entries_key, 0, 0, withscores=True)
            if first:
                return int(first[0][1])
            return int(self.store.client.get(self.ids_key) or 0) + 1

    def count(self) -> int:
        with self.store.guard():
            return int(self.store.client.zcard(self.entries_key))

    def _meta(self, name: str) -> int:
        with self.store.guard():
            return int(self.store.client.hget(self.meta_key, name) or 0)

    def held_bytes(self) -> int:
        return self._meta("bytes")

    def dropped(self) -> int:
        return self._meta("dropped")

    def clear(self) -> None:
        self.store.run(self.store.clear_script, [self.entries_key, self.meta_key, *self._budget], [self.field])
