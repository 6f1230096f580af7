"""MkDocs hooks for the documentation site (``mkdocs.yml`` names this file).

The site's home page is the README, the front page of the repository, so the text lives
once. Pages link to the repository's own files (the contract, fixtures, the test
clients) by their relative path, which works where the Markdown is read (GitHub, an
editor); on the site such a link is checked against the checkout, a missing target
failing the build as a broken page link does, and then points at the file under
``repo_url`` (shown as its path where the site has no ``repo_url``).
"""

from __future__ import annotations

import posixpath
import re
from pathlib import Path
from typing import Any

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File, Files
from mkdocs.structure.pages import Page

ROOT = Path(__file__).resolve().parent.parent
LINK = re.compile(r"\[([^\]]*)\]\(([^)\s#]+)(#[^)\s]*)?\)")
FENCE = re.compile(r"^```.*?^```", re.M | re.S)


def on_files(files: Files, config: MkDocsConfig, **_: Any) -> Files:
    """The README becomes the site's ``index.md``."""
    files.append(File.generated(config, "index.md", abs_src_path=str(ROOT / "README.md")))
    return files


def on_page_markdown(markdown: str, page: Page, config: MkDocsConfig, **_: Any) -> str:
    source = "README.md" if page.file.src_uri == "index.md" else f"docs/{page.file.src_uri}"
    return outside_fences(markdown, lambda text: LINK.sub(lambda m: rewrite(m, source, config), text))


def outside_fences(markdown: str, change: Any) -> str:
    """``change`` applied to the text between code blocks only (code stays as written)."""
    parts, last = [], 0
    for block in FENCE.finditer(markdown):
        parts += [change(markdown[last : block.start()]), block.group(0)]
        last = block.end()
    return "".join([*parts, change(markdown[last:])])


def rewrite(match: re.Match[str], source: str, config: MkDocsConfig) -> str:
    label, target, anchor = match.group(1), match.group(2), match.group(3) or ""
    if re.match(r"^[a-z]+:", target):  # http:, https:, mailto:
        return match.group(0)
    path = posixpath.normpath(posixpath.join(posixpath.dirname(source), target))
    if path.startswith("docs/"):  # a page of the site: MkDocs checks it and its anchor
        here = "docs" if source == "README.md" else posixpath.dirname(source)
        return f"[{label}]({posixpath.relpath(path, here)}{anchor})"
    if path.startswith("..") or not (ROOT / path).exists():
        raise PluginError(f"{source}: the link to {target!r} names no file of the repository")
    if not config.repo_url:
        return label
    kind = "tree" if (ROOT / path).is_dir() else "blob"
    return f"[{label}]({config.repo_url.rstrip('/')}/{kind}/main/{path}{anchor})"
