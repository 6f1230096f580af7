"""Server settings: a frozen dataclass, loaded from YAML and checked against a schema.

Both the config file and the command-line flags go through the same JSON Schema
(``contracts/config.schema.yaml``), so an error always names where the value came
from, the key, and what was expected.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from decimal import Decimal
from pathlib import Path
from typing import Any

from sfmock.chaos.faults import Scenario, looks_like_path
from sfmock.contract.openapi import load_contract
from sfmock.contract.schemas import check
from sfmock.documents import DocumentError, load_document, read_file
from sfmock.errors import ConfigError
from sfmock.fidelity.recording import Exchange, load_recordings
from sfmock.service.accounts import Account, accounts_from_config
from sfmock.service.imagehost import IMAGE_PREFIX
from sfmock.service.lifecycle import Retirement
from sfmock.service.quota import Limits
from sfmock.service.responses import OBSERVED_429_CODES
from sfmock.state.store import money_problem
from sfmock.state.urls import EXPECTED as STORE_EXPECTED
from sfmock.state.urls import shown_url, store_url_problem
from sfmock.untrusted import Untrusted, parse_url
from sfmock.wording import did_you_mean, unknown

__all__ = ["SAME_ORIGIN", "UNLIMITED_BALANCE", "Settings", "load_settings", "settings_from"]

SCENARIO_NOT_CONFIG = (
    "is a scenario file (it has 'rules'), not a config file; pass it with --scenario FILE "
    "(or as 'scenario: FILE' in a config file)"
)
SAME_ORIGIN = "same"  # image_port: the images on the API's own origin


# the open-mode balance of every token's account: large enough that no load test runs
# out of money (at 0.02 per image, fifty billion images), and shown as this figure
UNLIMITED_BALANCE = Decimal("1000000000.00")


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Everything ``sfmock serve`` can be told; the defaults are the safe ones.

    Fields take what a config file takes: ``Settings(limits="realistic",
    prices={"Kwai-Kolors/Kolors": "1.25"}, accounts=[{"keys": ["sk-a"]}])`` goes through
    the same schema and conversion, and a bad value raises :class:`ConfigError` naming
    the key. Already-converted values (``Limits``, ``Decimal``, ``Account``) pass as they are.
    """

    host: str = "127.0.0.1"
    port: int = 8000
    seed: int | None = None
    url_ttl: int = 3600
    public_url: str | None = None
    # the image host (the object store) on an origin of its own: None is port + 1 (a free
    # port when port is 0); "same" serves the images on the API's origin
    image_port: int | str | None = None
    image_public_url: str | None = None
    strict: bool = False
    max_body_bytes: int = 8 * 1024 * 1024
    control_max_body_bytes: int = 256 * 1024
    read_timeout: float = 15.0
    signing_key: str | None = None  # None: a random key per process
    default_balance: Decimal = UNLIMITED_BALANCE
    prices: Mapping[str, Decimal] = field(default_factory=dict)
    limits: Limits = field(default_factory=Limits)
    model_limits: Mapping[str, Limits] = field(default_factory=dict)
    rate_limit_headers: bool = False
    accounts: tuple[Account, ...] | None = None  # None: open mode, any token is an account
    scenario: Scenario | None = None
    control_token: str | None = None  # None: none on loopback, a generated one elsewhere
    journal_size: int = 1000
    journal_max_bytes: int = 16 * 1024 * 1024
    max_open_accounts: int = 10_000
    frozen_clock: bool = False
    # the live service as clients meet it (see the table in docs/fidelity.md)
    dialect: str = "documented"  # or "observed": error bodies as the live service words them
    balance_status: int = 403  # code 30001: 403 on the error-code page; 402 also seen
    image_prefix: str = IMAGE_PREFIX  # /default/outputs/ until 2026
    # models that retire: names (from the start), Retirement or {model, at | after} mappings
    retire: Sequence[Retirement | str | Mapping[str, Any]] = ()
    rate_limit_codes: Mapping[str, int] = field(default_factory=lambda: dict(OBSERVED_429_CODES))
    unknown_fields: str = "accept"  # fields the reference does not list (n, size, user, ...): a guess
    invalid_parameter_code: int = 20012  # 20015 as seen on other endpoints: a guess for images
    # issue 24's facts (siliconflow-api.md, "Observed in 2026, second look"), each its own setting
    range_errors: str = "documented"  # or "observed": 20015 "seed: Must be greater than or equal to 0"
    size_errors: str = "documented"  # or "observed": 20026 "Image size format should be like 512x512."
    image_content_type: str = "image/png"  # or "application/octet-stream", as the live store serves
    url_token: str = "none"  # or "sts": an X-Amz-Security-Token in every image URL (~1.9 KB in all)
    object_names: str = "sfmock"  # or "observed": <id>_<32 hex>_<8 hex>_<8 hex>_00001_.png
    byte_ranges: str = "s3"  # or "ignore": every download whole (200), Range or not
    replay: tuple[Exchange, ...] | None = None  # recordings to answer from (sfmock.fidelity.replay)
    replay_match: str = "prompt"
    replay_miss: str = "fake"
    store: str = "memory"  # or redis://HOST:PORT/DB: state shared by every process using it

    def __post_init__(self) -> None:
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        for name, value in _convert(values, "Settings").items():
            object.__setattr__(self, name, value)

    @property
    def base_url(self) -> str:
        """Where the API is: ``public_url``, else this server's own address."""
        if self.public_url:
            return self.public_url.rstrip("/")
        return self._own(self.port)

    @property
    def single_origin(self) -> bool:
        """Whether the images are served on the API's origin (``image_port: same``)."""
        return self.image_port == SAME_ORIGIN

    @property
    def image_socket_port(self) -> int | None:
        """The image host's port: ``image_port``, else the API's port + 1 (0, a free one,
        when the API's is 0 or the last); ``None`` with one origin."""
        if self.single_origin:
            return None
        if isinstance(self.image_port, int):
            return self.image_port
        return self.port + 1 if 0 < self.port < 65535 else 0

    @property
    def image_base_url(self) -> str:
        """Where image URLs point: ``image_public_url``, else ``public_url`` (behind a proxy
        the API's public address serves them too), else the image host's own address (the
        API's with one origin)."""
        if self.image_public_url:
            return self.image_public_url.rstrip("/")
        port = self.image_socket_port
        if self.public_url or port is None:
            return self.base_url
        return self._own(port)

    def _own(self, port: int) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{port}"


_dataclass_init = Settings.__init__


@functools.wraps(_dataclass_init)
def _checked_init(self: Settings, **values: Any) -> None:
    """``Settings(...)``: an unknown key is a :class:`ConfigError` listing the allowed ones,
    as in a config file (not the ``TypeError`` of a dataclass)."""
    allowed = sorted(f.name for f in fields(Settings))
    for name in values:
        if name not in allowed:
            expected = did_you_mean(name, allowed) or f"expected one of the keys {', '.join(allowed)}"
            raise ConfigError("Settings", name, f"unknown key; {expected}")
    _dataclass_init(self, **values)


Settings.__init__ = _checked_init  # type: ignore[method-assign]


def settings_from(values: Mapping[str, Any], source: str, base: Settings | None = None) -> Settings:
    """``base`` (default: the defaults) with config-file ``values`` on top, checked as a
    config file is; errors name ``source`` and the key (the pytest marker uses this)."""
    converted = _convert(dict(values), source)
    return dataclasses.replace(base or Settings(), **{**values, **converted})


def _for_schema(values: dict[str, Any]) -> dict[str, Any]:
    """The values a schema can check: converted ones shown as the config text they stand for."""
    shown: dict[str, Any] = {}
    for name, value in values.items():
        if value is None or (name == "scenario" and not isinstance(value, str)):
            continue  # None is every optional key's default; scenarios are checked when loaded
        if isinstance(value, Decimal):
            value = _money(value)
        elif isinstance(value, Limits):
            value = dataclasses.asdict(value)
        elif name in ("prices", "model_limits") and isinstance(value, Mapping):
            value = {k: _money(v) if isinstance(v, Decimal) else v for k, v in value.items()}
            value = {k: dataclasses.asdict(v) if isinstance(v, Limits) else v for k, v in value.items()}
        elif name == "retire" and isinstance(value, tuple | list) and all(isinstance(r, Retirement) for r in value):
            continue  # retirements already converted (and checked)
        elif name == "replay" and isinstance(value, tuple):
            continue  # recordings already loaded (and checked) from their folder
        elif name == "accounts" and isinstance(value, tuple | list):
            if all(isinstance(a, Account) for a in value):
                continue
            value = list(value)
        shown[name] = list(value) if isinstance(value, tuple) else value  # a schema's arrays are lists
    return shown


def _money(value: Decimal) -> Any:
    return format(value, "f") if value.is_finite() else str(value)


def _convert(values: dict[str, Any], source: str) -> dict[str, Any]:
    """Schema-checked config values converted to the types of :class:`Settings`' fields.

    Checks what the schema cannot (known model names); values already converted stay.
    """
    check("config", _for_schema(values), source)
    image_port = values.get("image_port")
    if isinstance(image_port, int) and image_port != 0 and image_port == values.get("port"):
        raise ConfigError(
            source, "image_port", f"{image_port} is the API's port too; expected another, or 'same' for one origin"
        )
    for name in ("public_url", "image_public_url"):
        if isinstance(values.get(name), str):
            try:
                parse_url(values[name], name)
            except Untrusted as exc:
                raise ConfigError(source, name, exc.problem) from None
    store = values.get("store")
    problem = store_url_problem(store) if isinstance(store, str) else None
    if problem is not None:
        raise ConfigError(source, "store", f"{shown_url(str(store))}: {problem}; {STORE_EXPECTED}")
    models = load_contract().models
    out: dict[str, Any] = {}
    scenario = values.get("scenario")
    if isinstance(scenario, str | Path):
        try:
            out["scenario"] = Scenario.find(scenario)
        except ConfigError as exc:
            if exc.source != "scenario" and exc.key != "(file)":
                raise  # a scenario file's own error names that file
            expected = exc.expected if exc.source == "scenario" else f"{exc.expected}; expected a scenario file"
            raise ConfigError(source, "scenario", f"{scenario!r}: {expected}") from None
    elif isinstance(scenario, Mapping):
        out["scenario"] = Scenario.from_document(scenario, f"{source}: scenario")
    for section in ("prices", "model_limits"):
        for model in values.get(section) or {}:
            if model not in models:
                hint = did_you_mean(model, models)
                expected = f"unknown model; {hint + ' ' if hint else ''}expected one of {', '.join(sorted(models))}"
                raise ConfigError(source, f"{section}.{model}", expected)
    accounts = values.get("accounts")
    if accounts is not None and not all(isinstance(a, Account) for a in accounts):
        out["accounts"] = tuple(accounts_from_config(source, accounts, models))
    elif isinstance(accounts, list):
        out["accounts"] = tuple(accounts)
    if values.get("limits") is not None and not isinstance(values["limits"], Limits):
        out["limits"] = Limits.from_config(values["limits"])
    if values.get("model_limits"):
        out["model_limits"] = {
            m: v if isinstance(v, Limits) else Limits.from_config(v) for m, v in values["model_limits"].items()
        }
    if values.get("prices"):
        out["prices"] = {m: Decimal(str(v)) for m, v in values["prices"].items()}
    if values.get("default_balance") is not None:
        out["default_balance"] = Decimal(str(values["default_balance"]))
    accounts = out.get("accounts") or values.get("accounts") or ()
    _check_money(source, out.get("default_balance"), out.get("prices") or {}, accounts)
    retire = values.get("retire")
    if retire and not (isinstance(retire, tuple | list) and all(isinstance(r, Retirement) for r in retire)):
        out["retire"] = _retirements(list(retire) if isinstance(retire, tuple) else retire, source, models)
    if values.get("rate_limit_codes") is not None:
        out["rate_limit_codes"] = {metric.upper(): code for metric, code in values["rate_limit_codes"].items()}
    if isinstance(values.get("replay"), str | Path):
        try:
            out["replay"] = tuple(load_recordings(values["replay"]))
        except ConfigError as exc:
            raise ConfigError(source, "replay", f"expected a folder of recordings: {exc}") from None
    return out


def _check_money(
    source: str, balance: Decimal | None, prices: Mapping[str, Decimal], accounts: Sequence[Account]
) -> None:
    """Every amount within what each store keeps exactly, so both stores take the same configs."""
    amounts: list[tuple[str, Decimal | None]] = [("default_balance", balance)]
    amounts += [(f"prices.{model}", price) for model, price in prices.items()]
    for n, account in enumerate(accounts):
        amounts += [
            (f"accounts[{n}].balance", account.balance),
            (f"accounts[{n}].charge_balance", account.charge_balance),
        ]
    for key, amount in amounts:
        problem = None if amount is None else money_problem(amount)
        if problem is not None:
            raise ConfigError(source, key, problem)


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The settings in a YAML file, checked; errors name the file and the key."""
    source = str(path)
    try:
        text = read_file(path).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(source, "(file)", f"cannot be read: {exc}") from None
    try:
        data = load_document(text)
    except DocumentError as exc:
        raise exc.as_config_error(source) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(source, "(top level)", "expected a mapping of settings")
    if "rules" in data:  # the likeliest mix-up: a scenario given where a config goes
        raise ConfigError(source, "(top level)", SCENARIO_NOT_CONFIG)
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
    try:  # what the schema cannot check (a scenario's name, a replay folder), blamed on the flag
        extra.update(_convert(extra, "command line"))
    except ConfigError as exc:
        if exc.source != "command line":
            raise  # a scenario file's own error names that file
        raise ConfigError(exc.source, (flag_names or {}).get(exc.key, exc.key), exc.expected) from None
    base = Path(path).parent if path is not None else Path()
    if "scenario" in values and looks_like_path(values["scenario"]):
        values["scenario"] = str(base / values["scenario"])  # relative to the config file
    if isinstance(values.get("replay"), str):
        values["replay"] = str(base / values["replay"])
    values.update(extra)
    try:
        return _settings(values, str(path) if path is not None else "command line")
    except ConfigError as exc:
        if exc.key in extra and flag_names and exc.key in flag_names:  # a flag's value: name the flag
            raise ConfigError("command line", flag_names[exc.key], exc.expected) from None
        raise


def _settings(values: dict[str, Any], source: str) -> Settings:
    """Checked values to :class:`Settings`, with the checks a schema cannot make."""
    return Settings(**{**values, **_convert(values, source)})


def _retirements(entries: Any, source: str, models: Mapping[str, Any]) -> tuple[Retirement, ...]:
    """``retire:``: a model name, a ``{model, at?, after?}`` mapping, or a list of them."""
    items = entries if isinstance(entries, list) else [entries]
    result = []
    for index, item in enumerate(items):
        where = f"retire[{index}]" if isinstance(entries, list) else "retire"
        model = item if isinstance(item, str) else item["model"]
        if model not in models:
            raise ConfigError(source, where, unknown("model", model, sorted(models)))
        try:
            result.append(Retirement.coerce(item))
        except ValueError as exc:
            raise ConfigError(source, f"{where}.at", str(exc)) from None
    return tuple(result)
