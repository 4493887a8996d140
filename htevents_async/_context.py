"""Scoped event context: ``context`` that every event recorded inside a scope carries.

Framework middleware opens a scope per request (ip, user agent, page…) so that
handlers need not pass it to every call. Scopes nest; inner keys win, and a
call's explicit ``context`` wins over every scope.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from typing import Any

__all__ = ["context_scope", "current_context"]

_scope: ContextVar[Mapping[str, Any] | None] = ContextVar("htevents_async_context", default=None)

#: Read the innermost scope's merged context (``None`` outside any scope).
current_context = _scope.get


@contextlib.contextmanager
def context_scope(context: Mapping[str, Any] | None = None, /, **keys: Any) -> Iterator[None]:
    """Add ``context`` (and ``keys``) to every event recorded inside the ``with`` block.

    It follows the task: ``contextvars`` carry it into tasks created inside the
    block, and the thread-safe enqueue reads the calling thread's own context.

    >>> with context_scope({"ip": "203.0.113.7"}, locale="en-GB"):
    ...     pass  # events recorded here carry context.ip and context.locale
    """
    merged: dict[str, Any] = dict(_scope.get() or {})
    if context:
        merged.update(context)
    merged.update(keys)
    token = _scope.set(merged)
    try:
        yield
    finally:
        _scope.reset(token)
