"""Who is calling: the bearer token of an ``Authorization`` header.

The authenticators live in :mod:`sfmock.service.accounts`: ``OpenAuthenticator``
(no accounts configured: any token, each its own account) and ``KeyRegistry``
(accounts and keys from the config, enforced), both :class:`~sfmock.service.accounts.Authenticator`.
"""

from __future__ import annotations

__all__ = ["bearer_token"]


def bearer_token(authorization: str | None) -> str | None:
    """The token of a well-formed ``Bearer <token>`` header, else ``None``."""
    if not authorization:
        return None
    parts = authorization.split()
    if len(parts) != 2 or parts[0].lower() != "bearer":
        return None
    return parts[1]
