"""Server settings: a frozen dataclass, loaded from YAML and checked against a schema.

Both the config file and the command-line flags go through the same JSON Schema
(``contracts/config.schema.yaml``), so an error always names where the value came
from, the key, and what was expected.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml

from .accounts import Account, accounts_from_config
from .contract import load_contract
from .errors import ConfigError
from .faults import Scenario, looks_like_path
from .imagehost import IMAGE_PREFIX
from .lifecycle import Retirement
from .quota import Limits
from .responses import OBSERVED_429_CODES
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
    # the live service as clients meet it (see the README's "Fidelity" table)
    dialect: str = "documented"  # or "observed": error bodies as the live service words them
    balance_status: int = 403  # code 30001: 403 on the error-code page; 402 also seen
    image_prefix: str = IMAGE_PREFIX  # /default/outputs/ until 2026
    # models that retire: names (from the start), Retirement or {model, at | after} mappings
    retire: Sequence[Retirement | str | Mapping[str, Any]] = ()
    rate_limit_codes: Mapping[str, int] = field(default_factory=lambda: dict(OBSERVED_429_CODES))
    unknown_fields: str = "accept"  # fields the reference does not list (n, size, user, ...): a guess
    invalid_parameter_code: int = 20012  # 20015 as seen on other endpoints: a guess for images

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
    if "accounts" in values:
        values["accounts"] = tuple(accounts_from_config(source, values["accounts"], models))
    if "limits" in values:
        values["limits"] = Limits.from_config(values["limits"])
    if "model_limits" in values:
        values["model_limits"] = {m: Limits.from_config(v) for m, v in values["model_limits"].items()}
    if "prices" in values:
        values["prices"] = {m: Decimal(str(v)) for m, v in values["prices"].items()}
    if "retire" in values:
        values["retire"] = _retirements(values["retire"], source, models)
    if "rate_limit_codes" in values:
        values["rate_limit_codes"] = {metric.upper(): code for metric, code in values["rate_limit_codes"].items()}
    if "default_balance" in values:
        values["default_balance"] = Decimal(str(values["default_balance"]))
    return Settings(**values)


def _retirements(entries: Any, source: str, models: Mapping[str, Any]) -> tuple[Retirement, ...]:
    """``retire:``: a model name, a ``{model, at?, after?}`` mapping, or a list of them."""
    items = entries if isinstance(entries, list) else [entries]
    result = []
    for index, item in enumerate(items):
        where = f"retire[{index}]" if isinstance(entries, list) else "retire"
        model = item if isinstance(item, str) else item["model"]
        if model not in models:
            raise ConfigError(source, where, f"unknown model {model!r}; expected one of {sorted(models)}")
        try:
            result.append(Retirement.coerce(item))
        except ValueError as exc:
            raise ConfigError(source, f"{where}.at", str(exc)) from None
    return tuple(result)
