"""Every exception sfmock raises, in one tree.

::

    SfmockError
     ├── ConfigError          a config file or CLI value is wrong (names file, key, expectation)
     ├── ContractError        the contract document cannot be loaded or is inconsistent
     ├── ApiError             an answer the fake API gives instead of a 200 (status + body)
     │    └── DownloadDenied  an answer the image host gives instead of a PNG (S3-style XML)
     ├── ContractViolation    a request or response breaks the contract (also an AssertionError)
     ├── ClientCheckFailed    a client broke an invariant under a schedule (also an
     │                        AssertionError; in sfmock.testing.checks, as it carries the run)
     └── ProgramError         a program under `sfmock check` could not be tested (it did
                              not start, or made no request; in sfmock.testing.programs)
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ApiError",
    "ConfigError",
    "ContractError",
    "ContractViolation",
    "DownloadDenied",
    "SfmockError",
]


class SfmockError(Exception):
    """Base of every sfmock exception."""


class ConfigError(SfmockError):
    """A configuration file or command-line value is invalid.

    The message names the source (file or flag), the key and what was expected.
    """

    def __init__(self, source: str, key: str, expected: str) -> None:
        self.source = source
        self.key = key
        self.expected = expected
        super().__init__(f"{source}: {key}: {expected}")


class ContractError(SfmockError):
    """The contract document cannot be loaded or does not say what sfmock needs."""


class ApiError(SfmockError):
    """A non-200 answer of the fake API: an HTTP status and a JSON body."""

    def __init__(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        self.status = status
        self.body = body
        self.headers = dict(headers or {})
        super().__init__(f"{status}: {body!r}")


class DownloadDenied(ApiError):
    """A refusal of the image host, rendered as an S3-style ``<Error>`` XML document."""

    def __init__(self, status: int, code: str, message: str, **extra: str) -> None:
        self.code = code
        self.message = message
        self.extra = extra
        super().__init__(status, {"Code": code, "Message": message, **extra})


class ContractViolation(SfmockError, AssertionError):
    """A request or response that the contract does not allow.

    It is an ``AssertionError`` so that a test reports it as a failure, not an error.
    """
