"""Config files: checked against their schema, with errors naming file, key and expectation."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import assert_config_error
from sfmock import ConfigError, Settings, load_settings


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sfmock.yaml"
    path.write_text(text, "utf-8")
    return path


def test_defaults_are_safe() -> None:
    settings = load_settings()
    assert settings == Settings()
    assert settings.host == "127.0.0.1" and settings.url_ttl == 3600 and not settings.strict
    assert settings.base_url == "http://127.0.0.1:8000"


def test_file_values_and_overrides(tmp_path: Path) -> None:
    path = write(tmp_path, "port: 9000\nurl_ttl: 60\nstrict: true\nseed: 5\n")
    settings = load_settings(path, {"url_ttl": 120, "seed": None})
    assert (settings.port, settings.url_ttl, settings.strict, settings.seed) == (9000, 120, True, 5)


def test_empty_file_is_all_defaults(tmp_path: Path) -> None:
    assert load_settings(write(tmp_path, "")) == Settings()


@pytest.mark.parametrize(
    ("text", "key", "phrase"),
    [
        ("url_ttl: abc\n", "url_ttl", "is not of type 'integer'"),
        ("url_ttl: 0\n", "url_ttl", "less than the minimum of 1"),
        ("url_ttl: 999999999\n", "url_ttl", "maximum"),
        ("port: 70000\n", "port", "maximum"),
        ("strict: maybe\n", "strict", "boolean"),
        ("public_url: ftp://x\n", "public_url", "does not match"),
        ("colour: blue\n", "colour", "unknown key; expected one of the keys accounts"),
        ("- a list\n", "(top level)", "expected a mapping"),
        ("port: [\n", "line 2, column 1", "not valid YAML: did not find expected node content"),
    ],
)
def test_bad_file_names_file_key_and_expectation(tmp_path: Path, text: str, key: str, phrase: str) -> None:
    assert_config_error(load_settings, tmp_path / "sfmock.yaml", text, key, phrase)


def test_expectation_comes_from_the_schema(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="Lifetime of image URLs"):
        load_settings(write(tmp_path, "url_ttl: -5\n"))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot be read"):
        load_settings(tmp_path / "absent.yaml")


def test_bad_override_names_the_flag() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(None, {"url_ttl": 0}, flag_names={"url_ttl": "--url-ttl"})
    assert (info.value.source, info.value.key) == ("command line", "--url-ttl")


def test_ipv6_base_url() -> None:
    assert Settings(host="::1", port=1).base_url == "http://[::1]:1"
