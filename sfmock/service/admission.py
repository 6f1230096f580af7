"""Letting a generation through: rate limits, then balance, then charge; all or nothing.

Checks run in this order (after authentication, account status, model permission and
request validation, which the API does first): every rate limit of the account on the
model, then the balance. A refused request consumes no quota and costs nothing; an
admitted one is counted and charged in one atomic step of the store's
:class:`~sfmock.state.store.Book` (in memory, or one script on a shared Redis), so N
concurrent requests against a limit L admit exactly L, from one process or many.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Mapping
from decimal import Decimal

from sfmock.contract.openapi import ModelSpec
from sfmock.service.accounts import Account, opening
from sfmock.service.quota import Limits, Usage, WindowState, window_models, window_states, windows
from sfmock.service.responses import OBSERVED_429_CODES, insufficient_balance, rate_limited
from sfmock.state.memory import MemoryBook
from sfmock.state.store import Book, Verdict, Window
from sfmock.state.tally import Tally

__all__ = ["Admission"]


# the limits of an account on a model, and its windows by usage (requests, images, tokens)
Plan = tuple[Limits, dict[tuple[int, int, int], tuple[Window, ...]]]


class Admission:
    """Quota and balance checks of one session, over a :class:`~sfmock.state.store.Book`."""

    def __init__(
        self,
        *,
        limits: Limits,
        model_limits: Mapping[str, Limits],
        prices: Mapping[str, Decimal],
        headers: bool,
        max_accounts: int | None = None,
        balance_status: int = 403,
        dialect: str = "documented",
        rate_limit_codes: Mapping[str, int] = OBSERVED_429_CODES,
        book: Book | None = None,
        tally: Tally | None = None,
        owner: str | None = None,
    ) -> None:
        """``max_accounts`` bounds the accounts whose usage and balance are kept (open
        mode, where any token is an account): past it, the least recently seen one is
        forgotten, as if it had never been used. ``None`` keeps all. A shared book
        (Redis) bounds them by expiry instead: this process only forgets its own list.
        ``tally``: the accounts every session keeps together (``owner``'s among them),
        bounded for the server (see :mod:`sfmock.state.tally`)."""
        self.max_accounts = max_accounts
        self._tally = tally
        self._owner = owner
        self._recent: OrderedDict[str, Account] = OrderedDict()
        self._last: Account | None = None  # the most recent of _recent, while it is
        self._lock = threading.Lock()
        self.limits = limits
        self.balance_status = balance_status
        self.dialect = dialect
        self.rate_limit_codes = dict(rate_limit_codes)
        self.model_limits = dict(model_limits)
        self.prices = dict(prices)
        self.headers = headers
        self.book: Book = book if book is not None else MemoryBook()
        self._limits: dict[tuple[Limits | None, str], Plan] = {}

    def fresh(self, book: Book | None = None, *, owner: str | None = None) -> Admission:
        """An admission with the same limits and prices over ``book`` (default: a new
        memory one), with none of this one's usage or spending, for session ``owner``
        (counted in the same tally)."""
        return Admission(
            limits=self.limits,
            model_limits=self.model_limits,
            prices=self.prices,
            headers=self.headers,
            max_accounts=self.max_accounts,
            balance_status=self.balance_status,
            dialect=self.dialect,
            rate_limit_codes=self.rate_limit_codes,
            book=book,
            tally=self._tally,
            owner=owner,
        )

    def limits_for(self, account: Account, model: str) -> Limits:
        """Server-wide limits, under the model's, under the account's own."""
        return self._plan(account, model)[0]

    def _plan(self, account: Account, model: str) -> Plan:
        """The limits, and the windows a request counts against by its usage (both kept:
        they are needed on every request, and most requests look alike)."""
        key = (account.limits, model)
        found = self._limits.get(key)
        if found is None:
            found = self._limits[key] = (self._merge(account, model), {})
        return found

    def _merge(self, account: Account, model: str) -> Limits:
        limits = self.limits
        if model in self.model_limits:
            limits = self.model_limits[model].over(limits)
        if account.limits is not None:
            limits = account.limits.over(limits)
        return limits

    def price(self, model: ModelSpec) -> Decimal:
        """The price of one image of ``model``."""
        return self.prices.get(model.id, model.price)

    def admit(
        self, account: Account, model: ModelSpec, usage: Usage, now: float, trace_id: str, dialect: str | None = None
    ) -> dict[str, str]:
        """Count and charge the request, or raise its 429 (worded in ``dialect``, else the
        server's) or its 403/402 code 30001; returns headers to send."""
        limits, specs, cost = self._asked(account, model, usage)
        verdict = self.book.admit(account.id, opening(account), specs, cost, now)
        return self._answer(account, model, limits, now, verdict, trace_id, dialect)

    async def admit_soon(
        self, account: Account, model: ModelSpec, usage: Usage, now: float, trace_id: str, dialect: str | None = None
    ) -> dict[str, str]:
        """:meth:`admit`, awaited: on a book that sends the call with those other requests
        make meanwhile (Redis: :mod:`sfmock.state.redis_batch`), the event loop serves them
        while it waits."""
        limits, specs, cost = self._asked(account, model, usage)
        soon = getattr(self.book, "admit_soon", None)
        if soon is None:
            verdict = self.book.admit(account.id, opening(account), specs, cost, now)
        else:
            verdict = await soon(account.id, opening(account), specs, cost, now)
        return self._answer(account, model, limits, now, verdict, trace_id, dialect)

    def _asked(self, account: Account, model: ModelSpec, usage: Usage) -> tuple[Limits, tuple[Window, ...], Decimal]:
        """The limits, the windows the request counts against and its cost; the account seen."""
        limits, known = self._plan(account, model.id)
        cost = self.price(model) * usage.images
        counted = (usage.requests, usage.images, usage.tokens)  # a tuple hashes in C; a dataclass in Python
        specs = known.get(counted)
        if specs is None:
            if len(known) >= 1024:  # prompts of every length: keep the count bounded
                known.clear()
            specs = known[counted] = windows(model.id, limits, usage)
        self._seen(account)
        return limits, specs, cost

    def _answer(
        self,
        account: Account,
        model: ModelSpec,
        limits: Limits,
        now: float,
        verdict: Verdict,
        trace_id: str,
        dialect: str | None,
    ) -> dict[str, str]:
        """The admitted request's headers, or its refusal raised."""
        if verdict.outcome == "limited":
            metric = limits.items()[verdict.index][0]
            headers = self._headers(account, model.id, limits, now, verdict, verdict.retry_after)
            raise rate_limited(metric, trace_id, headers, dialect=dialect or self.dialect, codes=self.rate_limit_codes)
        if verdict.outcome == "short":
            raise insufficient_balance(self.balance_status)
        return self._headers(account, model.id, limits, now, verdict, None)

    def balances(self, account: Account) -> tuple[Decimal, Decimal]:
        """(gift balance, charged balance) of ``account`` now."""
        self._seen(account)
        return self.book.balances(account.id, opening(account))

    def spent(self, account: Account) -> Decimal:
        """How much ``account`` has spent since the last reset."""
        balance, charged = self.balances(account)
        return account.balance + account.charge_balance - balance - charged

    def seen(self) -> list[Account]:
        """The accounts this process has seen since the last reset, least recent first."""
        with self._lock:
            return list(self._recent.values())

    def models(self, account: Account) -> list[str]:
        """The models ``account`` has used under a limit since the last reset."""
        return window_models(self.book.names(account.id))

    def state(self, account: Account, model: str, limits: Limits, now: float) -> dict[str, WindowState]:
        """Each metric's limit, what is left of it and when all of it is back."""
        specs = windows(model, limits, Usage())
        return window_states(limits, specs, self.book.usage(account.id, specs, now), now)

    def _seen(self, account: Account) -> None:
        """Mark ``account`` as the most recently seen; forget the least recent past the bound."""
        if self._last is account:
            return  # the most recent already (a busy client): nothing moves, nothing goes, no lock
        with self._lock:
            recent = self._recent
            if recent and next(reversed(recent)) == account.id and recent[account.id] is account:
                self._last = account
                return
            new = account.id not in recent
            recent[account.id] = account
            recent.move_to_end(account.id)
            self._last = account
            if self.max_accounts is None:
                return
            while len(self._recent) > self.max_accounts:
                self._forget_oldest()
            tally = self._tally
        if new and tally is not None and tally.add(1, self._owner):
            with self._lock:  # no other session left to push out: this one's least recent go
                while self._tally is not None and self._tally.over() and len(self._recent) > 1:
                    self._forget_oldest()

    def _forget_oldest(self) -> None:
        gone, account = self._recent.popitem(last=False)
        if account is self._last:
            self._last = None
        if not self.book.shared:
            self.book.forget(gone)
        if self._tally is not None:
            self._tally.add(-1, self._owner)

    def _headers(
        self,
        account: Account,
        model: str,
        limits: Limits,
        now: float,
        verdict: Verdict,
        retry_after: float | None,
    ) -> dict[str, str]:
        if not self.headers:
            return {}
        if verdict.windows:  # the store said already
            states = window_states(limits, windows(model, limits, Usage()), verdict.windows, now)
        else:
            states = self.state(account, model, limits, now)
        headers = {}
        for metric, state in states.items():
            headers[f"x-ratelimit-limit-{metric}"] = str(state.limit)
            headers[f"x-ratelimit-remaining-{metric}"] = str(state.remaining)
            headers[f"x-ratelimit-reset-{metric}"] = str(math.ceil(state.reset))
        if retry_after is not None and math.isfinite(retry_after):
            headers["Retry-After"] = str(max(1, math.ceil(retry_after)))
        return headers

    def reset(self) -> None:
        """Forget all usage and restore every opening balance."""
        self.book.reset()
        with self._lock:
            if self._tally is not None:
                self._tally.add(-len(self._recent), self._owner)
            self._recent.clear()
            self._last = None

    def release(self) -> None:
        """Count nothing more in the tally: the session is gone (its book with it)."""
        with self._lock:
            if self._tally is not None:
                self._tally.add(-len(self._recent), self._owner)
            self._tally = None
