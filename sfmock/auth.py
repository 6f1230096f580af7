"""Who is calling: the bearer token, and the protocol of anything that authenticates it.

The authenticators themselves live in :mod:`sfmock.accounts`: ``OpenAuthenticator``
(no accounts configured: any token, each its own account) and ``KeyRegistry``
(accounts and keys from the config, enforced).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from .accounts import Account

__all__ = ["Authenticator", "bearer_token"]


class Authenticator(Protocol):
    """Turns an ``Authorization`` header into an account, or raises an ``ApiError``."""

    def authenticate(self, authorization: str | None) -> Account: ...


def bearer_token(authorization: str | None) -> str | None:
    """The token of a well-formed ``Bearer <token>`` header, else ``None``."""
    if not authorization:
        return None
    parts = authorization.split()
    if len(parts) != 2 or parts[0].lower() != "bearer":
        return None
    return parts[1]
