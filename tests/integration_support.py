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


# Visitors of the sync framework tests (Django, Flask), taking turns over REQUESTS requests.
VISITORS = [
    {"User-Agent": "Firefox/128.0", "Referer": "https://ads.example/a", "Accept-Language": "de"},
    {"User-Agent": "Safari/17.4", "Accept-Language": "pt-BR, pt;q=0.8"},
    {"User-Agent": "curl/8.5.0", "Referer": "https://mail.example/"},
]
REQUESTS = 12


def expected_context(n: int, port: int) -> dict[str, Any]:
    """The context a sync framework's middleware gives ``GET /orders/{n}?src=t{n}``."""
    visitor = VISITORS[n % len(VISITORS)]
    page = {
        "url": f"http://127.0.0.1:{port}/orders/{n}?src=t{n}",
        "path": f"/orders/{n}",
        "search": f"?src=t{n}",
    }
    if "Referer" in visitor:
        page["referrer"] = visitor["Referer"]
    context: dict[str, Any] = {"ip": "127.0.0.1", "userAgent": visitor["User-Agent"]}
    if "Accept-Language" in visitor:
        context["locale"] = visitor["Accept-Language"].split(",")[0]
    context["page"] = page
    return context
