"""Segment ``context`` fields for one HTTP request, shared by every framework integration.

Framework-free on purpose: the ASGI middleware hands over the raw scope, the aiohttp
middleware the parts of its request, and both get the same fields::

    {"ip": "203.0.113.7", "userAgent": "Mozilla/5.0 ...", "locale": "fr-CH",
     "page": {"url": "https://shop.example/cart?step=2", "path": "/cart",
              "search": "?step=2", "referrer": "https://shop.example/"}}

A field the request does not have (no ``Referer``, no query string) is left out, as the
encoder leaves out ``None`` fields.

Every value but ``ip`` comes from the client, and an event whose context is too large is
refused at the call site with ``MessageTooLargeError``. So that no request, however odd
its headers, can make the application's own ``track()`` calls raise, each value is cut
to a fixed budget of encoded JSON bytes (see ``_clip``); the whole request context stays
well under half of the default 32 KiB message limit.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

__all__ = [
    "asgi_request_context",
    "environ_request_context",
    "preferred_locale",
    "request_context",
]

# Budgets per value; _clip keeps each within twice its budget in encoded JSON bytes,
# about 13 KB for a whole request context.
_MAX_URL = 2048
_MAX_PATH = 1024
_MAX_SEARCH = 1024
_MAX_USER_AGENT = 512
# Parsing a longer Accept-Language header would only cost time: browsers send a few tags.
_MAX_ACCEPT_LANGUAGE = 512

# RFC 5646 language tags, loosely (primary tag plus subtags); 35 characters is the length
# the RFC asks implementations to support.
_LANGUAGE_TAG = re.compile(r"[A-Za-z]{1,8}(?:-[A-Za-z0-9]{1,8}){0,8}")
_MAX_LANGUAGE_TAG = 35

# Characters a request path may hold unescaped (RFC 3986 pchar, plus "/"), so that a path
# decoded by the server is escaped back the way a browser's ``location.pathname`` shows it.
_PATH_SAFE = "/:@!$&'()*+,;="

_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def _clip(value: str, limit: int) -> str:
    """Cut ``value`` so that it encodes to at most ``2 * limit`` JSON bytes."""
    # JSON escapes control and non-ASCII characters as \uXXXX (six bytes, twelve for a
    # surrogate pair), so such values keep a sixth of the characters. Printable ASCII
    # costs at most two bytes a character (escaped ``"`` and ``\``).
    if len(value) <= limit // 6:
        return value
    if not (value.isascii() and value.isprintable()):
        limit //= 6
    return value[:limit]


def preferred_locale(accept_language: str) -> str | None:
    """The language tag an ``Accept-Language`` header prefers most, or ``None``.

    The highest ``q`` wins, the first of equals wins, ``*`` and malformed entries are
    skipped: ``"fr-CH, fr;q=0.9, en;q=0.8"`` gives ``"fr-CH"``.
    """
    best: str | None = None
    best_q = 0.0
    for item in accept_language[:_MAX_ACCEPT_LANGUAGE].split(","):
        tag, _, params = item.partition(";")
        tag = tag.strip()
        if len(tag) > _MAX_LANGUAGE_TAG or not _LANGUAGE_TAG.fullmatch(tag):
            continue
        q = 1.0
        name, _, value = params.partition("=")
        if name.strip().lower() == "q":
            try:
                q = float(value)
            except ValueError:
                continue
        if not 0.0 < q <= 1.0:  # also rejects NaN; q=0 means "not acceptable"
            continue
        if q > best_q:
            best, best_q = tag, q
    return best


def request_context(
    *,
    ip: str | None,
    scheme: str,
    host: str | None,
    path: str,
    query: str,
    user_agent: str | None,
    accept_language: str | None,
    referrer: str | None,
) -> dict[str, Any]:
    """Build the context of one request from its parts.

    ``path`` and ``query`` are as sent on the wire (percent-encoded, no ``?``); ``host`` is
    the ``Host`` header or the server address, ``None`` when neither is known.
    """
    context: dict[str, Any] = {}
    if ip:
        context["ip"] = ip
    if user_agent:
        context["userAgent"] = _clip(user_agent, _MAX_USER_AGENT)
    if accept_language:
        locale = preferred_locale(accept_language)
        if locale is not None:
            context["locale"] = locale
    search = f"?{query}" if query else ""
    url = f"{scheme}://{host}{path}{search}" if host else f"{path}{search}"
    page: dict[str, str] = {"url": _clip(url, _MAX_URL), "path": _clip(path, _MAX_PATH)}
    if search:
        page["search"] = _clip(search, _MAX_SEARCH)
    if referrer:
        page["referrer"] = _clip(referrer, _MAX_URL)
    context["page"] = page
    return context


def asgi_request_context(scope: Mapping[str, Any], *, include_ip: bool = True) -> dict[str, Any]:
    """Build the context of an ASGI ``http`` scope (see :func:`request_context`).

    The client address is the one the server reports: behind a proxy, let the server
    rewrite it from ``X-Forwarded-For`` (uvicorn ``--proxy-headers``), never this code,
    since only the deployment knows which proxies to trust.
    """
    user_agent = accept_language = referrer = host = None
    # One pass over the raw headers; the first of repeated headers wins, as in Starlette.
    for name, value in scope.get("headers", ()):
        if name == b"user-agent":
            user_agent = user_agent or value.decode("latin-1")
        elif name == b"accept-language":
            accept_language = accept_language or value.decode("latin-1")
        elif name == b"referer":
            referrer = referrer or value.decode("latin-1")
        elif name == b"host":
            host = host or value.decode("latin-1")
    scheme = scope.get("scheme") or "http"
    if host is None:
        server = scope.get("server")
        if server:
            server_host, port = server[0], server[1]
            if ":" in server_host:
                server_host = f"[{server_host}]"
            default = _DEFAULT_PORTS.get(scheme)
            host = server_host if port is None or port == default else f"{server_host}:{port}"
    client = scope.get("client")
    return request_context(
        ip=client[0] if include_ip and client else None,
        scheme=scheme,
        host=host,
        # Servers hand over the path percent-decoded; page.path is the encoded form.
        path=quote(scope.get("path") or "/", safe=_PATH_SAFE),
        query=scope.get("query_string", b"").decode("latin-1"),
        user_agent=user_agent,
        accept_language=accept_language,
        referrer=referrer,
    )


def environ_request_context(
    environ: Mapping[str, Any], *, scheme: str, path: str, include_ip: bool = True
) -> dict[str, Any]:
    """Build the context of a request from its WSGI environ (Django's ``request.META``).

    ``path`` is the decoded path the framework reports (``request.path``); ``scheme`` is
    the framework's view of it, which honours its own proxy settings. The client address
    is ``REMOTE_ADDR``, as the server set it.
    """
    host = environ.get("HTTP_HOST")
    if not host:
        server, port = environ.get("SERVER_NAME"), environ.get("SERVER_PORT")
        if server:
            default = _DEFAULT_PORTS.get(scheme)
            host = server if not port or str(port) == str(default) else f"{server}:{port}"
    return request_context(
        ip=environ.get("REMOTE_ADDR") if include_ip else None,
        scheme=scheme,
        host=host,
        path=quote(path or "/", safe=_PATH_SAFE),
        query=environ.get("QUERY_STRING") or "",
        user_agent=environ.get("HTTP_USER_AGENT"),
        accept_language=environ.get("HTTP_ACCEPT_LANGUAGE"),
        referrer=environ.get("HTTP_REFERER"),
    )
