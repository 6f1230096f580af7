"""sfmock: an offline, faithful fake of the SiliconFlow image-generation API.

>>> from sfmock import create_app, Settings, VirtualClock
>>> app = create_app(Settings(seed=1), clock=VirtualClock())
"""

from __future__ import annotations

from sfmock._version import __version__
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
