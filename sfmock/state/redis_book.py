"""An account's windows and balances on Redis: one hash and one sorted-set log per account,
admitted by one script (:class:`RedisBook`, made by :meth:`RedisStore.book`)."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from functools import lru_cache
from typing import TYPE_CHECKING, Any, cast

from redis.commands.core import Script

from sfmock.state.recheck import Check, pending
from sfmock.state.redis_keys import account_keys
from sfmock.state.redis_time import CLOCK_KEY, timeline
from sfmock.state.resp import Packed
from sfmock.state.rider import Rider, offered
from sfmock.state.store import MONEY_DIGITS, Verdict, Window, WindowUse

if TYPE_CHECKING:
    from sfmock.state.redis_store import RedisStore

__all__ = ["RedisBook"]

_VERDICTS = {0: "read", 1: "admitted", 2: "limited", 3: "short"}


@lru_cache(maxsize=1024)  # a run has few prices and opening balances: each converted once
def _units(amount: Decimal) -> str:
    """``amount`` in millionths, as the scripts take it; ValueError when not exact."""
    units = amount.scaleb(MONEY_DIGITS)
    if units != units.to_integral_value() or abs(units) > 2**53:
        raise ValueError(f"the Redis store keeps money to {MONEY_DIGITS} decimals, below 9e9: {amount}")
    return str(int(units))


def _money(units: bytes | None, opening: Decimal) -> Decimal:
    if units is None:
        return opening
    value = Decimal(units.decode()).scaleb(-MONEY_DIGITS)
    cents = value.quantize(Decimal("0.01"))
    return cents if cents == value else value.normalize()


def _glob(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


class RedisBook:
    """Windows and balances of one session in Redis; admission is one script."""

    shared = True

    def __init__(self, store: RedisStore, prefix: str, idle_ms: int, *, clock_key: str = CLOCK_KEY) -> None:
        self.store = store
        self.prefix = prefix + "q:"
        self.idle_ms = idle_ms
        self.clock_key = clock_key  # whose "stopped" keeps the log longer
        self._packed: dict[str, Packed] = {}

    def _call(
        self,
        account: str,
        opening: tuple[Decimal, Decimal],
        windows: Sequence[Window],
        cost: Decimal,
        now: float,
        charge: bool,
    ) -> _Call:
        """The admission script's call: its keys and arguments, the journal entry it writes
        (the request's rider) and the read-ahead it checks."""
        keys: list[Any] = [*account_keys(self.prefix, account)] if self.store.cluster else [self._keys(account)]
        args: list[Any] = [
            repr(float(now)),
            _units(opening[0]),
            _units(opening[1]),
            _units(cost),
            "1" if charge else "0",
            self.idle_ms,
            "1" if charge and windows and self.store.clock_stopped(self.clock_key) else "0",
            timeline(self.clock_key),  # processes racing on it are not the clock going back
        ]
        for window in windows:
            args += [window.name, window.span, window.limit, window.amount]
        ahead = offered() if charge else None
        if ahead is not None and (ahead.entry_id is not None or ahead.log.store is not self.store):
            ahead = None
        store = self.store
        if ahead is not None:  # the answer's journal entry, written by the same script if it admits
            keys, args = [*keys, *ahead.keys], [len(args), *args, *ahead.args]
        check = pending() if charge else None  # the read-ahead, checked by the script itself
        if check is None:
            return _Call(store.admit_script if ahead is None else store.admit_push_script, keys, args, ahead, None)
        script = store.admit_checked_script if ahead is None else store.admit_push_checked_script
        return _Call(script, [*check.keys, *keys], [*check.args, *args], ahead, check)

    def _ran(self, call: _Call) -> Verdict:
        return call.verdict(self.store.run(call.script, call.keys, call.args, checked=call.check is not None))

    def _keys(self, account: str) -> Packed:
        """The account's keys, packed once (one server: the line sends them as they are)."""
        packed = self._packed.get(account)
        if packed is None:
            if len(self._packed) >= 1024:
                self._packed.clear()
            packed = self._packed[account] = Packed(account_keys(self.prefix, account))
        return packed

    def admit(
        self, account: str, opening: tuple[Decimal, Decimal], windows: Sequence[Window], cost: Decimal, now: float
    ) -> Verdict:
        return self._ran(self._call(account, opening, windows, cost, now, True))

    async def admit_soon(
        self, account: str, opening: tuple[Decimal, Decimal], windows: Sequence[Window], cost: Decimal, now: float
    ) -> Verdict:
        """:meth:`admit`, its call sent with those other requests make meanwhile."""
        call = self._call(account, opening, windows, cost, now, True)
        reply = await self.store.run_soon(call.script, call.keys, call.args, checked=call.check is not None)
        return call.verdict(reply)

    def usage(self, account: str, windows: Sequence[Window], now: float) -> tuple[WindowUse, ...]:
        return self._ran(self._call(account, (Decimal(0), Decimal(0)), windows, Decimal(0), now, False)).windows

    def balances(self, account: str, opening: tuple[Decimal, Decimal]) -> tuple[Decimal, Decimal]:
        with self.store.guard():
            held = self.store.client.hmget(account_keys(self.prefix, account)[0], ["gift", "charged"])
            gift, charged = cast(list[bytes | None], held)
        return _money(gift, opening[0]), _money(charged, opening[1])

    def names(self, account: str) -> list[str]:
        with self.store.guard():
            fields = cast(list[bytes], self.store.client.hkeys(account_keys(self.prefix, account)[0]))
        return sorted(field[2:].decode() for field in fields if field.startswith(b"i:"))

    def forget(self, account: str) -> None:
        with self.store.guard():
            self.store.client.unlink(*account_keys(self.prefix, account))

    def reset(self) -> None:
        self.store.delete(_glob(self.prefix) + "*")


class _Call:
    """An admission script's call, and what its reply settles."""

    __slots__ = ("ahead", "args", "check", "keys", "script")

    def __init__(
        self, script: Script, keys: list[Any], args: list[Any], ahead: Rider | None, check: Check | None
    ) -> None:
        self.script = script
        self.keys = keys
        self.args = args
        self.ahead = ahead
        self.check = check

    def verdict(self, reply: Any) -> Verdict:
        """The script's ``reply`` as a verdict; the read-ahead it checked confirmed (or the
        request :class:`~sfmock.state.recheck.Stale`), the journal entry's id noted."""
        check, ahead = self.check, self.ahead
        if check is not None:
            if reply[0] == -1:
                check.refused()
            check.done = True
        if ahead is not None:
            entry_id, over, *reply = reply
            if entry_id:
                ahead.entry_id, ahead.over = int(entry_id), bool(over)
        verdict, index, retry = int(reply[0]), int(reply[1]), float(reply[2])
        uses = tuple(
            WindowUse(used=float(reply[i]), newest=float(reply[i + 1]) if reply[i + 1] else None)
            for i in range(3, len(reply), 2)
        )
        return Verdict(_VERDICTS[verdict], uses, index - 1, float("inf") if retry < 0 else retry)
