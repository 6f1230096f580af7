"""Where the Redis store keeps what: the key names, hash-tagged so that every script and
read of a request touches one slot, and a Redis Cluster spreads sessions and accounts
over its nodes.

Redis Cluster places a key by the text between its first ``{`` and the next ``}`` (its
hash tag) when there is one. Session names hold no braces; account names may, and keep
their keys together all the same (both keys of an account start with the same text up
to the first ``}``).

- A session's own keys (journal, scenario, fault counters, epoch of a named session,
  journal ids): ``sfmock:NAME|{NAME|}...`` (the default session: ``sfmock:|{|}...``).
- An account's hash and log: ``sfmock:NAME|q:a:{ACCOUNT|}`` and ``sfmock:NAME|q:log:{ACCOUNT|}``.
- The run's clock and epoch: in the default session's slot (``sfmock:#clock{|}``), so a
  request on the default session reads them with its scenario from one node.
- The registry of named sessions: ``sfmock:#sessions{#sessions}`` and its counter; the
  scenario version counter ``sfmock:#versions`` (read only when a scenario is replaced).

Every key starts with ``sfmock:NAME|`` or ``sfmock:#``, so a session's keys are found by
that prefix.
"""

from __future__ import annotations

__all__ = ["NAMESPACE", "SESSIONS_KEY", "SESSIONS_SEQ_KEY", "VERSIONS_KEY", "account_keys", "base", "prefix"]

NAMESPACE = "sfmock"
VERSIONS_KEY = f"{NAMESPACE}:#versions"  # scenario versions
SESSIONS_KEY = f"{NAMESPACE}:#sessions{{#sessions}}"  # named sessions by their last use
SESSIONS_SEQ_KEY = f"{NAMESPACE}:#sessions-seq{{#sessions}}"  # the order of those uses


def base(session: str | None) -> str:
    """What every key of ``session`` starts with (``None``: the default session)."""
    return f"{NAMESPACE}:{session or ''}|"


def prefix(session: str | None) -> str:
    """What the session's own keys start with: its base and its slot's hash tag."""
    return f"{base(session)}{{{session or ''}|}}"


def account_keys(book: str, account: str) -> tuple[str, str]:
    """The hash and the log of ``account`` in the book whose keys start with ``book``."""
    return f"{book}a:{{{account}|}}", f"{book}log:{{{account}|}}"
