"""The npm packages the Node tests run (``tests/node/package-lock.json``), installed by the
tests themselves when they are missing: a fresh clone needs node and npm, no extra step.
``npm ci`` runs once, under a lock, however many xdist workers ask at the same time."""

from __future__ import annotations

import fcntl
import shutil
import subprocess
from pathlib import Path

NODE_DIR = Path(__file__).resolve().parent / "node"
INSTALL = "npm ci --prefix tests/node --no-audit --no-fund"


def node_packages_missing(package: str) -> str | None:
    """None once ``tests/node/node_modules`` holds ``package`` (after ``npm ci`` if it was
    missing), or why it cannot, naming the command to run."""
    if (NODE_DIR / "node_modules" / package).is_dir():
        return None
    npm = shutil.which("npm")
    if npm is None:
        return "npm is not installed (Debian: apt-get install nodejs npm; see docs/development.md)"
    with (NODE_DIR / "package-lock.json").open("rb") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another worker may be installing: wait for it
        if not (NODE_DIR / "node_modules" / package).is_dir():
            command = [npm, "ci", "--no-audit", "--no-fund", "--silent"]
            done = subprocess.run(command, cwd=NODE_DIR, capture_output=True, text=True, timeout=600, check=False)
            if done.returncode != 0:
                return f"`{INSTALL}` failed (exit {done.returncode}): {done.stderr.strip()[-500:]}"
    if not (NODE_DIR / "node_modules" / package).is_dir():
        return f"`{INSTALL}` did not install {package}"
    return None
