"""Who is calling: the bearer token and the account behind it.

The fake asks an :class:`Authenticator`; the default, :class:`OpenAuthenticator`,
takes any non-empty bearer token, so offline development needs no set-up. A
registry of accounts and keys plugs in here later without touching the handlers.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

from faker import Faker

from .responses import unauthorized

__all__ = ["Account", "Authenticator", "OpenAuthenticator", "bearer_token"]


@dataclass(frozen=True, kw_only=True)
class Account:
    """An account as ``GET /v1/user/info`` shows it."""

    id: str
    name: str
    email: str
    balance: Decimal = Decimal("100.00")
    charge_balance: Decimal = Decimal("0.00")
    status: str = "normal"

    def info(self) -> dict[str, object]:
        """The ``data`` object of ``/v1/user/info``; money as strings, like the service."""
        return {
            "id": self.id,
            "name": self.name,
            "image": "",
            "email": self.email,
            "isAdmin": False,
            "balance": f"{self.balance:.2f}",
            "status": self.status,
            "introduction": "",
            "role": "",
            "chargeBalance": f"{self.charge_balance:.2f}",
            "totalBalance": f"{self.balance + self.charge_balance:.2f}",
        }


class Authenticator(Protocol):
    """Turns an ``Authorization`` header into an account, or raises an ``ApiError``."""

    def authenticate(self, authorization: str | None) -> Account: ...


def bearer_token(authorization: str | None) -> str | None:
    """The token of a well-formed ``Bearer <token>`` header, else ``None``."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or any(c.isspace() for c in token):
        return None
    return token


class OpenAuthenticator:
    """Accepts any well-formed bearer token; each token is its own account."""

    def authenticate(self, authorization: str | None) -> Account:
        token = bearer_token(authorization)
        if token is None:
            raise unauthorized()
        return _account_for(token)


@functools.lru_cache(maxsize=1024)
def _account_for(token: str) -> Account:
    digest = hashlib.sha256(token.encode("utf-8")).digest()
    fake = _faker()
    fake.seed_instance(int.from_bytes(digest[:8], "big"))
    return Account(id=digest[:8].hex(), name=fake.name(), email=fake.email())


@functools.cache
def _faker() -> Faker:
    return Faker()
