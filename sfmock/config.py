"""Server settings: a frozen dataclass, loaded from YAML and checked against a schema.

Both the config file and the command-line flags go through the same JSON Schema
(``contracts/config.schema.yaml``), so an error always names where the value came
from, the key, and what was expected.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

from .errors import ConfigError

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

    @property
    def base_url(self) -> str:
        """Where image URLs point: ``public_url``, else this server's own address."""
        if self.public_url:
            return self.public_url.rstrip("/")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


@functools.cache
def _validator() -> Draft202012Validator:
    text = resources.files("sfmock.contracts").joinpath("config.schema.yaml").read_text("utf-8")
    return Draft202012Validator(yaml.safe_load(text))


def check(values: Mapping[str, Any], source: str, key_names: Mapping[str, str] | None = None) -> None:
    """Raise :class:`ConfigError` for the first value the schema rejects."""
    error = best_match(_validator().iter_errors(dict(values)))
    if error is None:
        return
    path = [str(p) for p in error.absolute_path]
    key = ".".join(path) or "(top level)"
    if key_names and path and path[0] in key_names:
        key = key_names[path[0]]
    expected = error.schema.get("description") if isinstance(error.schema, dict) else None
    detail = error.message if not expected else f"{error.message}; expected: {expected}"
    raise ConfigError(source, key, detail)


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The settings in a YAML file, checked; errors name the file and the key."""
    source = str(path)
    try:
        text = Path(path).read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(source, "(file)", f"cannot be read: {exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(source, "(syntax)", f"is not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(source, "(top level)", "expected a mapping of settings")
    check(data, source)
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
    check(extra, "command line", flag_names)
    values.update(extra)
    known = {f.name for f in dataclasses.fields(Settings)}
    return Settings(**{k: v for k, v in values.items() if k in known})
