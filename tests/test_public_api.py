"""The public surface is what ``__all__`` says, and each name is documented."""

from __future__ import annotations

import subprocess
import sys

import sfmock


def test_all_names_exist_and_are_documented() -> None:
    for name in sfmock.__all__:
        obj = getattr(sfmock, name)
        if name != "__version__":
            assert obj.__doc__, f"{name} has no docstring"


def test_nothing_public_is_left_out_of_all() -> None:
    public = {
        name
        for name in vars(sfmock)
        if not name.startswith("_") and not isinstance(getattr(sfmock, name), type(sfmock))
    }
    assert public - {"annotations"} <= set(sfmock.__all__)


def test_version() -> None:
    assert sfmock.__version__.count(".") == 2


def test_every_public_name_is_imported_when_asked_for_and_not_before() -> None:
    assert set(sfmock._LAZY) | {"__version__"} == set(sfmock.__all__)
    assert set(dir(sfmock)) >= set(sfmock.__all__)
    # a process that serves pays for what serving needs: not the proxy's HTTP client (httpx
    # pulls in rich and click where they are installed) nor Faker (an account with no name)
    code = (
        "import sys, sfmock.cli, sfmock.server, sfmock.app; "
        "print(sorted(m for m in ('httpx', 'faker', 'rich') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]", done.stdout + done.stderr
