"""What the framework integration tests share: client options and message helpers."""

from __future__ import annotations

from typing import Any

WRITE_KEY = "test-write-key"
# Nothing is sent while the app runs: every event arrives through the shutdown flush.
CLIENT_OPTIONS: dict[str, Any] = {"flush_interval": 3600, "max_batch_size": 1000}


def context_of(message: dict[str, Any]) -> dict[str, Any]:
    """A message's context minus the library's own entry."""
    return {key: value for key, value in message["context"].items() if key != "library"}


def by_number(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Messages ordered by their ``n`` property."""
    return sorted(messages, key=lambda message: message["properties"]["n"])
