"""What the framework integrations share: their public names and the request-to-context rules."""

from __future__ import annotations

import importlib
import inspect
import json
import subprocess
import sys
from typing import Any

import pytest

from htevents_async import Client, context_scope
from htevents_async.integrations._request_context import (
    asgi_request_context,
    preferred_locale,
    request_context,
)

PUBLIC_NAMES = {
    "fastapi": {
        "STATE_ATTRIBUTE",
        "EventContextMiddleware",
        "Events",
        "client_lifespan",
        "get_client",
        "lifespan",
    },
    "starlette": {
        "STATE_ATTRIBUTE",
        "EventContextMiddleware",
        "client_lifespan",
        "get_client",
        "lifespan",
    },
    "aiohttp": {"CLIENT_KEY", "client_cleanup_ctx", "event_context_middleware", "get_client"},
    "django": {"EventContextMiddleware", "get_asgi_application", "get_client", "request_context"},
    "flask": {"Events", "get_client"},
    "celery": {"get_client", "install"},
    "arq": {"CTX_KEY", "get_client", "open_client", "shutdown", "startup"},
    "taskiq": {"SHUTDOWN_TIMEOUT", "STATE_ATTRIBUTE", "Events", "get_client", "install"},
}


def http_scope(**fields: Any) -> dict[str, Any]:
    """An ASGI http scope as uvicorn builds it, with ``fields`` replacing its defaults."""
    scope: dict[str, Any] = {
        "type": "http",
        "scheme": "http",
        "server": ("127.0.0.1", 8000),
        "client": ("203.0.113.7", 51234),
        "path": "/",
        "query_string": b"",
        "headers": [(b"host", b"shop.example")],
    }
    scope.update(fields)
    return scope


@pytest.mark.parametrize("framework", sorted(PUBLIC_NAMES))
def test_each_integration_exports_exactly_its_public_names(framework: str) -> None:
    """__all__ lists the public names, each exists, and no public def or class is left out."""
    # arq's tests run in an environment of their own (see noxfile.py), without the others.
    pytest.importorskip(framework)
    module = importlib.import_module(f"htevents_async.integrations.{framework}")
    defined_here = {
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and (inspect.isfunction(value) or inspect.isclass(value))
        and value.__module__ == module.__name__
    }
    assert set(module.__all__) == PUBLIC_NAMES[framework]
    assert all(hasattr(module, name) for name in module.__all__)
    assert defined_here <= set(module.__all__)


@pytest.mark.parametrize("framework", sorted(PUBLIC_NAMES))
def test_public_functions_and_classes_have_docstrings(framework: str) -> None:
    """Every public function and class of an integration says what it does."""
    pytest.importorskip(framework)
    module = importlib.import_module(f"htevents_async.integrations.{framework}")
    for name in module.__all__:
        value = getattr(module, name)
        if inspect.isfunction(value) or inspect.isclass(value):
            assert inspect.getdoc(value), f"{framework}.{name} has no docstring"


def test_core_and_integrations_package_import_no_framework() -> None:
    """Importing htevents_async and its integrations package loads no web framework."""
    code = (
        "import sys, htevents_async, htevents_async.integrations; "
        "print(sorted({'aiohttp', 'fastapi', 'starlette', 'uvicorn', 'django', 'flask', 'celery',"
        " 'arq', 'taskiq'}"
        " & set(sys.modules)))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_preferred_locale_takes_the_highest_quality() -> None:
    """The tag with the highest q wins, and the first of equal tags."""
    assert preferred_locale("fr-CH, fr;q=0.9, en;q=0.8") == "fr-CH"
    assert preferred_locale("en;q=0.5, de;q=0.9, nl;q=0.9") == "de"


def test_preferred_locale_skips_wildcards_and_malformed_entries() -> None:
    """'*', q=0, q out of range and tags that are not language tags are never chosen."""
    assert preferred_locale("*, en;q=0, x y, es;q=2, it;q=abc, pt;q=0.1") == "pt"
    assert preferred_locale("*;q=1, en;q=0") is None
    assert preferred_locale("") is None


def test_asgi_context_reads_ip_agent_locale_and_page() -> None:
    """Every field is read from the scope, the page url from the Host header."""
    scope = http_scope(
        scheme="https",
        path="/cart",
        query_string=b"step=2&utm_source=mail",
        headers=[
            (b"host", b"shop.example"),
            (b"user-agent", b"Firefox/128.0"),
            (b"accept-language", b"de-AT, de;q=0.8"),
            (b"referer", b"https://shop.example/"),
        ],
    )

    assert asgi_request_context(scope) == {
        "ip": "203.0.113.7",
        "userAgent": "Firefox/128.0",
        "locale": "de-AT",
        "page": {
            "url": "https://shop.example/cart?step=2&utm_source=mail",
            "path": "/cart",
            "search": "?step=2&utm_source=mail",
            "referrer": "https://shop.example/",
        },
    }


def test_asgi_context_leaves_out_what_the_request_lacks() -> None:
    """No client, no headers and no query string give a context with only the page."""
    scope = http_scope(client=None, headers=[])

    assert asgi_request_context(scope) == {
        "page": {"url": "http://127.0.0.1:8000/", "path": "/"},
    }


def test_asgi_context_without_host_header_uses_the_server_address() -> None:
    """The server address stands in for Host: IPv6 in brackets, the default port left out."""
    scope = http_scope(scheme="https", server=("::1", 443), headers=[])

    assert asgi_request_context(scope)["page"]["url"] == "https://[::1]/"


def test_asgi_context_escapes_the_decoded_path_again() -> None:
    """The server's percent-decoded path is escaped back, as a browser shows it."""
    scope = http_scope(path="/shoes/größe 42/100%")

    page = asgi_request_context(scope)["page"]
    assert page["path"] == "/shoes/gr%C3%B6%C3%9Fe%2042/100%25"
    assert page["url"] == "http://shop.example/shoes/gr%C3%B6%C3%9Fe%2042/100%25"


def test_asgi_context_include_ip_false_leaves_the_address_out() -> None:
    """include_ip=False drops the client address and nothing else."""
    assert "ip" not in asgi_request_context(http_scope(), include_ip=False)


def test_first_of_repeated_headers_wins() -> None:
    """A header sent twice is read from its first occurrence."""
    scope = http_scope(headers=[(b"user-agent", b"first"), (b"user-agent", b"second")])

    assert asgi_request_context(scope)["userAgent"] == "first"


async def test_hostile_request_values_cannot_push_an_event_over_the_size_limit() -> None:
    """However long and non-ASCII the headers, events recorded under them still encode."""
    context = request_context(
        ip="203.0.113.7",
        scheme="http",
        host="h" * 100_000,
        path="/" + "\u00e9" * 100_000,
        query="q=" + "\U0001f600" * 100_000,
        user_agent="\x00" * 100_000,
        accept_language="en, " * 100_000,
        referrer='"' * 100_000,
    )
    async with Client("key", disable=True) as client:
        with context_scope(context):
            await client.track(user_id="u1", event="Order completed")
        assert client.statistics().dropped == {"disabled": 1}


def test_request_context_stays_under_half_the_message_limit() -> None:
    """The worst request context encodes to well under half of the 32 KiB message limit."""
    context = request_context(
        ip="203.0.113.7",
        scheme="https",
        host="h" * 100_000,
        path="/" + '"' * 100_000,
        query="\x01" * 100_000,
        user_agent="\\" * 100_000,
        accept_language="en",
        referrer="\u00e9" * 100_000,
    )

    assert len(json.dumps(context)) < 16 * 1024
