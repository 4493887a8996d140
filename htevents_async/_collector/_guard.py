"""Keeping web pages the developer has open away from the collector.

Two attacks reach a collector on 127.0.0.1 from a browser:

* **Cross-site POSTs.** Any page may send a "simple" request (``text/plain``,
  ``application/x-www-form-urlencoded``) to any address without asking first. Requiring
  ``Content-Type: application/json`` makes the browser send a CORS preflight, which the
  collector never answers, so the POST never leaves the browser.
* **DNS rebinding.** A page on ``attacker.example`` re-points its own name at 127.0.0.1 and
  then reads ``/v1/events`` as same-origin. The browser still sends ``Host:
  attacker.example``, so only requests naming a loopback host, an IP address the collector
  may be reached by, or a name it was told about are served.

Starlette's ``TrustedHostMiddleware`` matches names only and splits ``[::1]:8787`` at the
first colon, so the check is written here.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterable
from typing import Final

from starlette.types import ASGIApp, Receive, Scope, Send

LOOPBACK_NAMES: Final = frozenset({"localhost"})
_WILDCARDS: Final = frozenset({"0.0.0.0", "::", ""})


def host_name(header: str) -> str:
    """The host part of a ``Host`` header, lower-case, without port, brackets or final dot."""
    value = header.strip().lower()
    if value.startswith("["):
        name, _, _ = value[1:].partition("]")
    elif value.count(":") == 1:
        name = value.partition(":")[0]
    else:
        name = value  # a bare IPv6 address, or a name without port
    return name.rstrip(".")


class HostPolicy:
    """Which ``Host`` headers the collector answers, given the address it is bound to.

    Always allowed: ``localhost`` and ``*.localhost``, loopback addresses, the bound host and
    the ``allowed_hosts`` names. Bound to a wildcard address (``0.0.0.0``, ``::``), any IP
    address is allowed too: DNS rebinding needs a name, and a page served from an IP address
    is simply that address's own origin.
    """

    def __init__(self, bound_host: str, allowed_hosts: Iterable[str] = ()) -> None:
        """Allow the loopback names, ``bound_host`` and ``allowed_hosts``."""
        bound = host_name(bound_host)
        self._names = frozenset({bound, *(host_name(h) for h in allowed_hosts)}) - {""}
        self._any_ip = bound in _WILDCARDS

    def allows(self, header: str | None) -> bool:
        """Whether a request with this ``Host`` header (None when absent) is served.

        A request without ``Host`` (HTTP/1.0) cannot come from a browser and is allowed.
        """
        if header is None:
            return True
        name = host_name(header)
        if name in self._names or name in LOOPBACK_NAMES or name.endswith(".localhost"):
            return True
        try:
            address = ipaddress.ip_address(name)
        except ValueError:
            return False
        return self._any_ip or address.is_loopback


class HostGuard:
    """ASGI middleware answering 403 to HTTP requests whose ``Host`` the policy refuses."""

    def __init__(self, app: ASGIApp, policy: HostPolicy) -> None:
        """Wrap ``app``."""
        self._app = app
        self._policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve the request, or refuse it before the application sees it."""
        if scope["type"] == "http":
            host = None
            for name, value in scope["headers"]:
                if name == b"host":
                    host = value.decode("latin-1")
                    break
            if not self._policy.allows(host):
                await _refuse(send, f"Host {host!r} is not allowed (DNS rebinding protection)")
                return
        await self._app(scope, receive, send)


async def _refuse(send: Send, reason: str) -> None:
    body = json.dumps({"success": False, "error": reason}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 403,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def is_json_media_type(content_type: str | None) -> bool:
    """Whether a ``Content-Type`` header says ``application/json`` (parameters allowed)."""
    if content_type is None:
        return False
    return content_type.partition(";")[0].strip().lower() == "application/json"
