"""sfmock: an offline, faithful fake of the SiliconFlow image-generation API.

>>> from sfmock import create_app, Settings, VirtualClock
>>> app = create_app(Settings(seed=1), clock=VirtualClock())
"""

from __future__ import annotations

from .accounts import Account, KeyRegistry, OpenAuthenticator

__version__ = "0.1.0"

from .app import create_app
from .auth import Authenticator
from .clock import Clock, SystemClock, VirtualClock
from .config import Settings, load_settings
from .conformance import check_response
from .contract import Contract, ModelSpec, load_contract
from .contractdiff import diff_contracts
from .drift import Drift, check_exchange
from .errors import (
    ApiError,
    ConfigError,
    ContractError,
    ContractViolation,
    DownloadDenied,
    SfmockError,
)
from .faults import Scenario
from .journal import Journal
from .lifecycle import Lifecycle, Retirement
from .proxy import create_proxy
from .quota import Limits
from .recording import Exchange, load_recordings
from .remote import RemoteFake
from .verify import Pattern, VerificationFailed

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
