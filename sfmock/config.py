"""Server settings: a frozen dataclass, loaded from YAML and checked against a schema.

Both the config file and the command-line flags go through the same JSON Schema
(``contracts/config.schema.yaml``), so an error always names where the value came
from, the key, and what was expected.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml

from .accounts import Account, accounts_from_config
from .contract import load_contract
from .errors import ConfigError
from .faults import Scenario, looks_like_path
from .quota import Limits
from .recording import Exchange, load_recordings
from .schemas import check, load_yaml

__all__ = ["Settings", "load_settings"]


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Everything ``sfmock serve`` can be told; the defaults are the safe ones."""

    host: str = "127.0.0.1"
    port: int = 8000
    seed: int | None = None
    url_ttl: int = 3600
    public_url: str | None = None
    strict: bool = False
    max_body_bytes: int = 8 * 1024 * 1024
    signing_key: str = "sfmock-dev-signing-key"
    default_balance: Decimal = Decimal("100.00")
    prices: Mapping[str, Decimal] = field(default_factory=dict)
    limits: Limits = field(default_factory=Limits)
    model_limits: Mapping[str, Limits] = field(default_factory=dict)
    rate_limit_headers: bool = False
    accounts: tuple[Account, ...] | None = None  # None: open mode, any token is an account
    scenario: Scenario | None = None
    control_token: str | None = None  # None: none on loopback, a generated one elsewhere
    journal_size: int = 1000
    frozen_clock: bool = False
    replay: tuple[Exchange, ...] | None = None  # recordings to answer from (sfmock.replay)
    replay_match: str = "prompt"
    replay_miss: str = "fake"

    @property
    def base_url(self) -> str:
        """Where image URLs point: ``public_url``, else this server's own address."""
        if self.public_url:
            return self.public_url.rstrip("/")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The settings in a YAML file, checked; errors name the file and the key."""
    source = str(path)
    try:
        text = Path(path).read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(source, "(file)", f"cannot be read: {exc}") from None
    try:
        data = load_yaml(text)
    except yaml.YAMLError as exc:
        raise ConfigError(source, "(syntax)", f"is not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(source, "(top level)", "expected a mapping of settings")
    check("config", data, source)
    return data


def load_settings(
    path: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    *,
    flag_names: Mapping[str, str] | None = None,
) -> Settings:
    """Settings from an optional YAML file, then ``overrides`` (e.g. CLI flags) on top."""
    values = read_config_file(path) if path is not None else {}
    extra = {k: v for k, v in (overrides or {}).items() if v is not None}
    check("config", extra, "command line", key_names=flag_names)
    base = Path(path).parent if path is not None else Path()
    if "scenario" in values and looks_like_path(values["scenario"]):
        values["scenario"] = str(base / values["scenario"])  # relative to the config file
    if isinstance(values.get("replay"), str):
        values["replay"] = str(base / values["replay"])
    values.update(extra)
    return _settings(values, str(path) if path is not None else "command line")


def _settings(values: dict[str, Any], source: str) -> Settings:
    """Checked values to :class:`Settings`, with the checks a schema cannot make."""
    models = load_contract().models
    if "scenario" in values:
        values["scenario"] = Scenario.find(values["scenario"])
    for section in ("prices", "model_limits"):
        for model in values.get(section, {}):
            if model not in models:
                raise ConfigError(source, f"{section}.{model}", f"unknown model; expected one of {sorted(models)}")
    if isinstance(values.get("replay"), str):
        try:
            values["replay"] = tuple(load_recordings(values["replay"]))
        except ConfigError as exc:
            raise ConfigError(source, "replay", f"expected a folder of recordings: {exc}") from None
    if "accounts" in values:
        values["accounts"] = tuple(accounts_from_config(source, values["accounts"], models))
    if "limits" in values:
        values["limits"] = Limits.from_config(values["limits"])
    if "model_limits" in values:
        values["model_limits"] = {m: Limits.from_config(v) for m, v in values["model_limits"].items()}
    if "prices" in values:
        values["prices"] = {m: Decimal(str(v)) for m, v in values["prices"].items()}
    if "default_balance" in values:
        values["default_balance"] = Decimal(str(values["default_balance"]))
    return Settings(**values)
