"""Letting a generation through: rate limits, then balance, then charge; all or nothing.

Checks run in this order (after authentication, account status, model permission and
request validation, which the API does first): every rate limit of the account on the
model, then the balance. A refused request consumes no quota and costs nothing; an
admitted one is counted and charged in the same critical section, so N concurrent
requests against a limit L admit exactly L.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Mapping
from decimal import Decimal

from sfmock.contract.openapi import ModelSpec
from sfmock.service.accounts import Account, Ledger
from sfmock.service.quota import Limits, QuotaExceeded, RateLimiter, Usage
from sfmock.service.responses import OBSERVED_429_CODES, insufficient_balance, rate_limited

__all__ = ["Admission"]


class Admission:
    """Quota and balance checks of one app."""

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
    ) -> None:
        """``max_accounts`` bounds the accounts whose usage and balance are kept (open
        mode, where any token is an account): past it, the least recently seen one is
        forgotten, as if it had never been used. ``None`` keeps all."""
        self.max_accounts = max_accounts
        self._recent: OrderedDict[str, None] = OrderedDict()
        self.limits = limits
        self.balance_status = balance_status
        self.dialect = dialect
        self.rate_limit_codes = dict(rate_limit_codes)
        self.model_limits = dict(model_limits)
        self.prices = dict(prices)
        self.headers = headers
        self.limiter = RateLimiter()
        self.ledger = Ledger()
        self._limits: dict[tuple[Limits | None, str], Limits] = {}

    def fresh(self) -> Admission:
        """An admission with the same limits and prices and none of the usage or spending."""
        return Admission(
            limits=self.limits,
            model_limits=self.model_limits,
            prices=self.prices,
            headers=self.headers,
            max_accounts=self.max_accounts,
        )

    def limits_for(self, account: Account, model: str) -> Limits:
        """Server-wide limits, under the model's, under the account's own."""
        key = (account.limits, model)
        found = self._limits.get(key)
        if found is None:
            found = self._limits[key] = self._merge(account, model)
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
        limits = self.limits_for(account, model.id)
        cost = self.price(model) * usage.images
        with self.limiter.lock:
            self._seen(account)
            exceeded = self.limiter.check(account.id, model.id, limits, usage, now)
            if exceeded is not None:
                raise rate_limited(
                    exceeded.metric,
                    trace_id,
                    self._headers(account, model.id, limits, now, exceeded),
                    dialect=dialect or self.dialect,
                    codes=self.rate_limit_codes,
                )
            if not self.ledger.charge(account, cost):
                raise insufficient_balance(self.balance_status)
            self.limiter.record(account.id, model.id, limits, usage, now)
            return self._headers(account, model.id, limits, now, None)

    def balances(self, account: Account) -> tuple[Decimal, Decimal]:
        """(gift balance, charged balance) of ``account`` now."""
        with self.limiter.lock:
            self._seen(account)
            return self.ledger.balances(account)

    def _seen(self, account: Account) -> None:
        """Mark ``account`` as the most recently seen; forget the least recent past the bound."""
        if self.max_accounts is None:
            return
        self._recent[account.id] = None
        self._recent.move_to_end(account.id)
        while len(self._recent) > self.max_accounts:
            gone, _ = self._recent.popitem(last=False)
            self.limiter.forget(gone)
            self.ledger.forget(gone)

    def _headers(
        self, account: Account, model: str, limits: Limits, now: float, exceeded: QuotaExceeded | None
    ) -> dict[str, str]:
        if not self.headers:
            return {}
        headers = {}
        for metric, state in self.limiter.state(account.id, model, limits, now).items():
            headers[f"x-ratelimit-limit-{metric}"] = str(state.limit)
            headers[f"x-ratelimit-remaining-{metric}"] = str(state.remaining)
            headers[f"x-ratelimit-reset-{metric}"] = str(math.ceil(state.reset))
        if exceeded is not None and math.isfinite(exceeded.retry_after):
            headers["Retry-After"] = str(max(1, math.ceil(exceeded.retry_after)))
        return headers

    def reset(self) -> None:
        """Forget all usage and restore every opening balance."""
        with self.limiter.lock:
            self.limiter.reset()
            self.ledger.reset()
            self._recent.clear()
