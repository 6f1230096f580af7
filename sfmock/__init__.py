"""sfmock: an offline, faithful fake of the SiliconFlow image-generation API.

>>> from sfmock import create_app, Settings, VirtualClock
>>> app = create_app(Settings(seed=1), clock=VirtualClock())
"""

from __future__ import annotations

import importlib
import typing as _typing

from sfmock._version import __version__

if _typing.TYPE_CHECKING:
    from sfmock.app import create_app
    from sfmock.chaos.faults import Scenario
    from sfmock.chaos.journal import Journal
    from sfmock.chaos.verify import Pattern, VerificationFailed
    from sfmock.clock import Clock, SystemClock, VirtualClock
    from sfmock.config import Settings, load_settings
    from sfmock.contract.openapi import Contract, ModelSpec, load_contract
    from sfmock.errors import (
        ApiError,
        ConfigError,
        ContractError,
        ContractViolation,
        DownloadDenied,
        SfmockError,
    )
    from sfmock.fidelity.conformance import check_response
    from sfmock.fidelity.contractdiff import diff_contracts
    from sfmock.fidelity.drift import Drift, check_exchange
    from sfmock.fidelity.proxy import create_proxy
    from sfmock.fidelity.recording import Exchange, load_recordings
    from sfmock.remote import RemoteFake
    from sfmock.service.accounts import Account, Authenticator, KeyRegistry, OpenAuthenticator
    from sfmock.service.lifecycle import Lifecycle, Retirement
    from sfmock.service.quota import Limits

# each public name is imported from its module when first asked for (PEP 562): a process
# that only serves (``sfmock serve``, a fleet's workers) or only checks does not pay for
# the proxy's HTTP client, the conformance checker and the rest at start-up
_LAZY: dict[str, str] = {
    "create_app": "sfmock.app",
    "Scenario": "sfmock.chaos.faults",
    "Journal": "sfmock.chaos.journal",
    "Pattern": "sfmock.chaos.verify",
    "VerificationFailed": "sfmock.chaos.verify",
    "Clock": "sfmock.clock",
    "SystemClock": "sfmock.clock",
    "VirtualClock": "sfmock.clock",
    "Settings": "sfmock.config",
    "load_settings": "sfmock.config",
    "Contract": "sfmock.contract.openapi",
    "ModelSpec": "sfmock.contract.openapi",
    "load_contract": "sfmock.contract.openapi",
    "ApiError": "sfmock.errors",
    "ConfigError": "sfmock.errors",
    "ContractError": "sfmock.errors",
    "ContractViolation": "sfmock.errors",
    "DownloadDenied": "sfmock.errors",
    "SfmockError": "sfmock.errors",
    "check_response": "sfmock.fidelity.conformance",
    "diff_contracts": "sfmock.fidelity.contractdiff",
    "Drift": "sfmock.fidelity.drift",
    "check_exchange": "sfmock.fidelity.drift",
    "create_proxy": "sfmock.fidelity.proxy",
    "Exchange": "sfmock.fidelity.recording",
    "load_recordings": "sfmock.fidelity.recording",
    "RemoteFake": "sfmock.remote",
    "Account": "sfmock.service.accounts",
    "Authenticator": "sfmock.service.accounts",
    "KeyRegistry": "sfmock.service.accounts",
    "OpenAuthenticator": "sfmock.service.accounts",
    "Lifecycle": "sfmock.service.lifecycle",
    "Retirement": "sfmock.service.lifecycle",
    "Limits": "sfmock.service.quota",
}


def __getattr__(name: str) -> _typing.Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'sfmock' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # asked for once
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__all__ = [
    "Account",
    "ApiError",
    "Authenticator",
    "Clock",
    "ConfigError",
    "Contract",
    "ContractError",
    "ContractViolation",
    "DownloadDenied",
    "Drift",
    "Exchange",
    "Journal",
    "KeyRegistry",
    "Lifecycle",
    "Limits",
    "ModelSpec",
    "OpenAuthenticator",
    "Pattern",
    "RemoteFake",
    "Retirement",
    "Scenario",
    "Settings",
    "SfmockError",
    "SystemClock",
    "VerificationFailed",
    "VirtualClock",
    "__version__",
    "check_exchange",
    "check_response",
    "create_app",
    "create_proxy",
    "diff_contracts",
    "load_contract",
    "load_recordings",
    "load_settings",
]
