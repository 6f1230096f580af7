"""Whether a request comes from this machine's own pages: the ``Origin`` and ``Host``
checks that ``serve``'s control API and the proxy's control route share (CSRF and DNS
rebinding)."""

from __future__ import annotations

import ipaddress
from collections.abc import Collection
from urllib.parse import urlsplit

__all__ = ["expected_host", "local_origin"]


def expected_host(host: str, names: Collection[str]) -> bool:
    """A ``Host`` header naming one of ``names``, or an IP literal (no name to rebind)."""
    try:
        name = urlsplit(f"//{host}").hostname if host else None
    except ValueError:  # an unclosed "[": no host at all
        return False
    return name is not None and (name in names or _ip(name) is not None)


def local_origin(origin: str, names: Collection[str]) -> bool:
    """An ``Origin`` header of a page served from one of ``names`` or a loopback address."""
    try:
        name = urlsplit(origin).hostname
    except ValueError:
        return False
    if name is None:  # "null": a sandboxed page or a file
        return False
    address = _ip(name)
    return name in names or (address is not None and address.is_loopback)


def _ip(name: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(name)
    except ValueError:
        return None
