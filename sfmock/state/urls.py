"""Store URLs: what is wrong with one, and how to show one without its password."""

from __future__ import annotations

from urllib.parse import parse_qs, unquote, urlsplit, urlunsplit

__all__ = ["EXPECTED", "shown_url", "store_url_problem"]

EXPECTED = "expected memory, redis://[:PASSWORD@]HOST[:PORT][/DB], rediss://... or unix://PATH[?db=DB] (DB: 0 or more)"


def store_url_problem(url: str) -> str | None:
    """What is wrong with a store URL, or ``None``: the scheme, the port, the database
    (redis-py would ignore a database it cannot read, and use 0)."""
    if url == "memory":
        return None
    try:
        parts = urlsplit(url)
        parts.hostname  # noqa: B018  # raises for an unclosed "[" as urlsplit does for some
    except ValueError as exc:
        return f"not a URL ({exc})"
    if parts.scheme not in ("redis", "rediss", "unix"):
        return f"unknown scheme {parts.scheme!r}"
    try:
        port = parts.port  # ValueError when not a number from 0 to 65535
    except ValueError:
        return "the port is not a number from 1 to 65535"
    if port == 0:
        return "the port is not a number from 1 to 65535"
    databases = parse_qs(parts.query).get("db", [])
    if parts.scheme != "unix":
        if not parts.hostname:
            return "no host"
        path = unquote(parts.path).strip("/")
        if path:
            databases.append(path)
    elif not parts.path:
        return "no socket path"
    for database in databases:
        if not database.isdigit() or not database.isascii():
            return f"the database {database!r} is not a number (0 or more)"
    if len(databases) > 1:
        return "the database is given twice"
    return None


def shown_url(url: str) -> str:
    """``url`` without its password, for messages and logs (whatever else is wrong with it)."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:  # not a URL: nothing can be told apart in it, hide all after a "@"
        return url if "@" not in url else "***@" + url.rpartition("@")[2]
    if password is None:
        return url
    user = parts.netloc.rpartition("@")[0].partition(":")[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{parts.netloc.rpartition('@')[2]}"))
