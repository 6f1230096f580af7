"""The public surface is what ``__all__`` says, and each name is documented."""

from __future__ import annotations

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
