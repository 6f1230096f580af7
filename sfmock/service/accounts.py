"""Accounts, their API keys and their balances.

An :class:`Account` is who a key belongs to and what it may do; the :class:`Ledger`
holds the money, which moves only when a generation succeeds. :class:`KeyRegistry`
is the authenticator used when the config declares accounts.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol

from sfmock.errors import ConfigError
from sfmock.service.auth import bearer_token
from sfmock.service.quota import Limits
from sfmock.service.responses import forbidden, unauthorized
from sfmock.state.memory import Balances

if TYPE_CHECKING:
    from faker import Faker

__all__ = [
    "Account",
    "Authenticator",
    "KeyRegistry",
    "Ledger",
    "OpenAuthenticator",
    "accounts_from_config",
    "opening",
]


MAX_TOKEN = 256  # real keys are about 50 characters


@dataclass(frozen=True, kw_only=True)
class Account:
    """An account: identity, status, allowed models, own limits and opening balances."""

    id: str
    name: str = ""  # empty: a stable fake one, see identity()
    email: str = ""
    status: str = "normal"
    models: frozenset[str] | None = None  # None: every model
    limits: Limits | None = None  # None: the server's limits
    balance: Decimal = Decimal("100.00")
    charge_balance: Decimal = Decimal("0.00")
    keys: tuple[tuple[str, bool], ...] = ()  # (key, enabled)

    def may_use(self, model: str) -> bool:
        """Whether the account may call ``model``."""
        return self.models is None or model in self.models

    def identity(self) -> tuple[str, str]:
        """(name, e-mail): the configured ones, else stable fake ones drawn from the id."""
        if self.name and self.email:
            return self.name, self.email
        name, email = _fake_identity(self.id)
        return self.name or name, self.email or email


@functools.lru_cache(maxsize=1024)
def _fake_identity(seed: str) -> tuple[str, str]:
    digest = hashlib.sha256(seed.encode("utf-8")).digest()
    fake = _faker()
    fake.seed_instance(int.from_bytes(digest[:8], "big"))
    return fake.name(), fake.email()


@functools.cache
def _faker() -> Faker:
    from faker import Faker  # a tenth of a second to import: only where an account has no name

    return Faker()


class Authenticator(Protocol):
    """Turns an ``Authorization`` header into an account, or raises an ``ApiError``."""

    def authenticate(self, authorization: str | None) -> Account: ...


@dataclass(frozen=True, kw_only=True)
class _Key:
    account: Account
    enabled: bool


_RECENT_TOKENS = 1024


class OpenAuthenticator:
    """Accepts any well-formed bearer token up to 256 characters; each distinct token is
    its own account. Nothing is stored per token: the account is a pure function of it.
    """

    def __init__(self, balance: Decimal = Decimal("1000000000.00")) -> None:
        self.balance = balance
        self._recent: dict[str, Account] = {}  # the accounts of recent tokens, not to hash each time

    def authenticate(self, authorization: str | None) -> Account:
        token = bearer_token(authorization)
        if token is None or len(token) > MAX_TOKEN:
            raise unauthorized()
        account = self._recent.get(token)
        if account is None:
            if len(self._recent) >= _RECENT_TOKENS:
                self._recent.clear()
            account_id = "open-" + hashlib.sha256(token.encode("utf-8")).hexdigest()[:16]
            account = self._recent[token] = Account(id=account_id, balance=self.balance)
        return account


class KeyRegistry:
    """Authenticates against configured keys: 401 unknown, 403 disabled key or account."""

    def __init__(self, accounts: Iterable[Account]) -> None:
        self._keys: dict[str, _Key] = {}
        for account in accounts:
            for key, enabled in account.keys:
                self._keys[key] = _Key(account=account, enabled=enabled)

    def authenticate(self, authorization: str | None) -> Account:
        token = bearer_token(authorization)
        entry = self._keys.get(token) if token is not None else None
        if entry is None:
            raise unauthorized()
        if not entry.enabled or entry.account.status != "normal":
            raise forbidden()
        return entry.account

    def accounts(self) -> list[Account]:
        """Every configured account, in the order of the config."""
        return list({id(e.account): e.account for e in self._keys.values()}.values())


class Ledger:
    """Balances per account; charges are atomic, all-or-nothing and never go below zero."""

    def __init__(self) -> None:
        self._money = Balances()
        self._accounts: dict[str, Account] = {}

    def seen(self) -> list[Account]:
        """The accounts whose balance was looked at since the last reset, first seen first."""
        return [self._accounts[i] for i in self._money.accounts() if i in self._accounts]

    def balances(self, account: Account) -> tuple[Decimal, Decimal]:
        """(gift balance, charged balance) now."""
        self._accounts.setdefault(account.id, account)
        return self._money.get(account.id, opening(account))

    def charge(self, account: Account, cost: Decimal) -> bool:
        """Take ``cost``, gift balance first; ``False`` (and nothing taken) if it is short.

        An empty account pays for nothing, not even a model priced at zero (as seen live).
        """
        self._accounts.setdefault(account.id, account)
        return self._money.charge(account.id, opening(account), cost)

    def spent(self, account: Account) -> Decimal:
        """How much the account has spent since the last reset."""
        balance, charged = self.balances(account)
        return account.balance + account.charge_balance - balance - charged

    def forget(self, account_id: str) -> None:
        """Drop what is kept for one account (it starts over at its opening balances)."""
        self._money.forget(account_id)
        self._accounts.pop(account_id, None)

    def reset(self) -> None:
        """Every account back to its opening balances."""
        self._money.reset()
        self._accounts.clear()


def opening(account: Account) -> tuple[Decimal, Decimal]:
    """The account's opening (gift, charged) balances."""
    return account.balance, account.charge_balance


def accounts_from_config(
    source: str, entries: Sequence[Mapping[str, Any]], known_models: Iterable[str]
) -> list[Account]:
    """Accounts and their keys from the (schema-checked) ``accounts`` list of a config."""
    models = set(known_models)
    seen_keys: dict[str, str] = {}
    result = []
    for index, entry in enumerate(entries):
        where = f"accounts[{index}]"
        account_id = str(entry.get("id", f"acct-{index + 1}"))
        allowed = entry.get("models")
        for position, model in enumerate(allowed or ()):
            if model not in models:
                expected = f"unknown model {model!r}; expected one of {sorted(models)}"
                raise ConfigError(source, f"{where}.models[{position}]", expected)
        keys: dict[str, bool] = {}
        for position, key_entry in enumerate(entry["keys"]):
            key, status = (
                (key_entry, "normal")
                if isinstance(key_entry, str)
                else (key_entry["key"], key_entry.get("status", "normal"))
            )
            if key in seen_keys:
                raise ConfigError(
                    source, f"{where}.keys[{position}]", f"key {key!r} is already used by {seen_keys[key]}"
                )
            seen_keys[key] = where
            keys[key] = status == "normal"
        account = Account(
            id=account_id,
            name=entry.get("name", ""),
            email=entry.get("email", ""),
            status=entry.get("status", "normal"),
            models=None if allowed is None else frozenset(allowed),
            limits=Limits.from_config(entry["limits"]) if "limits" in entry else None,
            balance=Decimal(str(entry.get("balance", "100.00"))),
            charge_balance=Decimal(str(entry.get("charge_balance", "0.00"))),
            keys=tuple(keys.items()),
        )
        result.append(account)
    return result
