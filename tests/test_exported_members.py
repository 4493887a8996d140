"""The public surface is exactly what __all__ lists."""

from __future__ import annotations

import htevents_async


def test_all_is_exactly_the_public_names() -> None:
    """Every public attribute is in __all__, and every name in __all__ exists."""
    public = {name for name in dir(htevents_async) if not name.startswith("_")}
    public -= {"integrations", "plugins", "testing"}  # public submodules, imported on demand
    assert set(htevents_async.__all__) == public | {"__version__"}


def test_all_is_sorted() -> None:
    """__all__ is kept sorted so additions are easy to review."""
    names = [name for name in htevents_async.__all__ if name != "__version__"]
    assert names == sorted(names, key=str.lower) or names == sorted(names)


def test_classes_present_as_package_members() -> None:
    """Reprs and docs name htevents_async.Client, not the private module."""
    assert htevents_async.Client.__module__ == "htevents_async"
    assert htevents_async.Track.__module__ == "htevents_async"
