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
from .quota import Limits

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
    "Journal",
    "KeyRegistry",
    "Lifecycle",
    "Limits",
    "ModelSpec",
    "OpenAuthenticator",
    "Retirement",
    "Scenario",
    "Settings",
    "SfmockError",
    "SystemClock",
    "VirtualClock",
    "__version__",
    "check_response",
    "create_app",
    "load_contract",
    "load_settings",
]
