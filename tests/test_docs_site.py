"""The documentation site builds, strict, and a broken link or anchor fails the build
(``mkdocs build --strict``, as ``mkdocs.yml`` asks; mkdocs comes with the test extras)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from documentation import ROOT


def build(root: Path, site: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )


def test_the_site_builds_with_the_readme_as_its_home(tmp_path: Path) -> None:
    run = build(ROOT, tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "WARNING" not in run.stderr, run.stderr
    home = (tmp_path / "index.html").read_text("utf-8")
    assert "A first client check" in home and 'href="images/"' in home  # the README, its links into the site
    pages = sorted(path.stem for path in (ROOT / "docs").glob("*.md"))
    assert all((tmp_path / name / "index.html").is_file() for name in pages), pages
    # a link between pages keeps its anchor, and the anchor is on the page
    chaos = (tmp_path / "chaos" / "index.html").read_text("utf-8")
    assert 'href="../testing/#verifying-what-the-client-did"' in chaos
    assert 'id="verifying-what-the-client-did"' in (tmp_path / "testing" / "index.html").read_text("utf-8")


def copy_of_the_docs(tmp_path: Path) -> Path:
    """The repository with its own copy of the documentation, the rest linked."""
    root = tmp_path / "repo"
    root.mkdir()
    for entry in ROOT.iterdir():
        if entry.name in ("docs", "README.md", "mkdocs.yml"):
            (shutil.copytree if entry.is_dir() else shutil.copy)(entry, root / entry.name)
        elif entry.name not in (".git", ".venv", "site"):
            (root / entry.name).symlink_to(entry)
    return root


BROKEN = {  # a link of each kind, and what the build says of it
    "docs/limits.md": [
        ("[gone](no-such-page.md)", r"limits\.md.*no-such-page\.md"),
        ("[gone](chaos.md#no-such-heading)", r"limits\.md.*no-such-heading"),
        ("[gone](../contracts/no-such.yaml)", r"limits\.md: the link to '\.\./contracts/no-such\.yaml' names no file"),
    ],
    "README.md": [("[gone](docs/no-such-page.md)", r"(index|README)\.md.*no-such-page\.md")],
}


def test_a_broken_link_fails_the_build(tmp_path: Path) -> None:
    """A link to a missing page, a missing heading or a missing repository file, from a page
    or from the README: each is named, and the build fails (one build for all of them)."""
    root = copy_of_the_docs(tmp_path)
    for page, links in BROKEN.items():
        with (root / page).open("a", encoding="utf-8") as text:
            text.writelines(f"\nSee {link}.\n" for link, _ in links)
    run = build(root, tmp_path / "site")
    assert run.returncode == 1, run.stdout + run.stderr
    assert run.stderr.count("WARNING") == 4, run.stderr  # those four, nothing else
    for links in BROKEN.values():
        for _, says in links:
            assert re.search(says, run.stderr), (says, run.stderr)
