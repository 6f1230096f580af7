"""The documentation as the tests read it: the README (the front page) and the pages of
``docs/`` (the reference), in that order."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGES = (ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")))


def page(name: str) -> str:
    """The text of ``docs/<name>.md``."""
    return (ROOT / "docs" / f"{name}.md").read_text("utf-8")


def everything() -> str:
    """Every page, the README first, as one text."""
    return "\n".join(path.read_text("utf-8") for path in PAGES)
