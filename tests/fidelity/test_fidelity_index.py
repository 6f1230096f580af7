"""The fidelity tests and the README's "Fidelity" table keep their promises: each test
names its fact, each [guess] the fake models is a setting."""

from __future__ import annotations

import ast
import dataclasses
import re
from pathlib import Path

from documentation import page

from sfmock import Settings

HERE = Path(__file__).resolve().parent
# the sections of the facts file (siliconflow-api.md) a test may name
SECTIONS = (
    "POST /v1/images/generations",
    "Other image models listed over time",
    "200 response",
    "Image URLs",
    "Errors",
    "Rate limits",
    "Endpoints clients call besides generation",
    "Observed 2025-2026",
)
TAG = re.compile(r"\[(doc|seen|guess)")
SETTINGS = {field.name for field in dataclasses.fields(Settings)}


def fidelity_tests() -> list[tuple[str, str]]:
    found = []
    for path in sorted(HERE.glob("test_fidelity_*.py")):
        if path.name == Path(__file__).name:
            continue
        for node in ast.parse(path.read_text("utf-8")).body:
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
                found.append((f"{path.name}::{node.name}", ast.get_docstring(node) or ""))
    return found


def test_each_fidelity_test_names_its_fact() -> None:
    tests = fidelity_tests()
    assert len(tests) >= 40
    for name, doc in tests:
        assert doc.startswith("Fact"), f"{name}: the docstring must start with the fact it tests"
        assert any(f'"{section}"' in doc for section in SECTIONS), f"{name}: name a section of the facts file"
        assert TAG.search(doc), f"{name}: give the fact's tag, [doc], [seen] or [guess]"


def fidelity_rows() -> list[tuple[str, str, str]]:
    section = page("fidelity")
    rows = []
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split(" | ")]
        if line.startswith("| ") and len(cells) == 3 and cells[0] != "behaviour":
            rows.append((cells[0], cells[1], cells[2]))
    return rows


def test_the_readme_table_names_real_settings_and_every_guess_has_one() -> None:
    rows = fidelity_rows()
    assert len(rows) >= 20
    for behaviour, tag, setting in rows:
        assert set(tag.split(", ")) <= {"doc", "seen", "guess"}, (behaviour, tag)
        named = {m.split(":")[0] for m in re.findall(r"`([a-z_]+(?::[^`]*)?)`", setting)}
        unknown = named - SETTINGS
        assert not unknown, f"{behaviour}: {sorted(unknown)} are not Settings fields"
        if "guess" in tag:
            assert named & SETTINGS, f"{behaviour}: a guess must be a setting, not hard-wired"
        assert setting, behaviour
