"""Shared fixtures: every async test runs on asyncio in debug mode, through the anyio plugin."""

from __future__ import annotations

import inspect
from typing import Any

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Coroutine tests need the anyio marker; adding it here keeps test modules free of boilerplate.
    for item in items:
        func = getattr(item, "function", None)
        if func is not None and inspect.iscoroutinefunction(func):
            item.add_marker(pytest.mark.anyio)


@pytest.fixture
def anyio_backend() -> tuple[str, dict[str, Any]]:
    """Run on asyncio only (the SDK is asyncio-native), with the loop's debug checks on."""
    return ("asyncio", {"debug": True})
