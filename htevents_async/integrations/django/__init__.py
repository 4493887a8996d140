"""Django integration: one :class:`~htevents_async.SyncClient` per process, and request context.

Needs the ``django`` extra (``pip install 'htevents-async[django]'``). In ``settings.py``::

    INSTALLED_APPS = [
        # ...
        "htevents_async.integrations.django",
    ]
    MIDDLEWARE = [
        "htevents_async.integrations.django.EventContextMiddleware",
        # ...
    ]
    HTEVENTS = {
        "WRITE_KEY": os.environ["HT_WRITE_KEY"],
        # Any Client option, as keywords (see htevents_async.Config).
        "OPTIONS": {"flush_interval": 2.0},
    }

In a view (sync or async; the call never waits on the network)::

    from htevents_async.integrations.django import get_client

    def checkout(request):
        # The event carries context.ip, userAgent, locale and page from the request.
        get_client().track(user_id=str(request.user.pk), event="Order completed")
        return JsonResponse({"ok": True})

The client is created when Django starts (so a bad setting fails at startup), starts its
delivery thread in each worker process on first use (gunicorn ``--preload`` and the
autoreloader's parent process stay thread-free), and is closed when the process exits,
delivering what is pending within ``shutdown_timeout``: a gunicorn or uvicorn worker
stopped with SIGTERM exits normally, and the close runs then.

Under ASGI, serve :func:`get_asgi_application` instead of Django's own (``asgi.py``)::

    from htevents_async.integrations.django import get_asgi_application

    application = get_asgi_application()

Django's ASGI handler has no lifespan, and uvicorn ends its process by re-raising the
SIGTERM it handled, which skips the exit close; this application adds the lifespan, whose
shutdown closes the client while the server stops. Set ``"INCLUDE_IP": False``
to leave the client address out of the context.
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import anyio.to_thread
from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django import conf as _conf  # never the lazy settings object itself, at import
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest, HttpResponseBase

from ..._context import context_scope
from ..._sync import SyncClient
from .._request_context import environ_request_context

__all__ = ["EventContextMiddleware", "get_asgi_application", "get_client", "request_context"]

_ASGIApp = Callable[[Any, Any, Any], Awaitable[None]]

_lock = threading.Lock()
_client: SyncClient | None = None


def _settings() -> Mapping[str, Any]:
    value = getattr(_conf.settings, "HTEVENTS", None)
    if not isinstance(value, Mapping) or not isinstance(value.get("WRITE_KEY"), str):
        raise ImproperlyConfigured(
            "htevents_async: settings.HTEVENTS must be a dict with a WRITE_KEY string "
            '(and optionally OPTIONS, a dict of Client options), such as {"WRITE_KEY": "..."}'
        )
    return value


def get_client() -> SyncClient:
    """The process's client, made from ``settings.HTEVENTS`` on first use."""
    client = _client
    if client is None:
        client = _create()
    return client


def _create() -> SyncClient:
    global _client
    with _lock:
        if _client is None:
            config = _settings()
            _client = SyncClient(config["WRITE_KEY"], **dict(config.get("OPTIONS") or {}))
        return _client


def request_context(request: HttpRequest) -> dict[str, Any]:
    """The ``context`` fields of one request: ip, userAgent, locale and page."""
    include_ip = bool(getattr(_conf.settings, "HTEVENTS", {}).get("INCLUDE_IP", True))
    return environ_request_context(
        request.META, scheme=request.scheme or "http", path=request.path, include_ip=include_ip
    )


class EventContextMiddleware:
    """Puts the request's context in scope for every event recorded while handling it.

    Works under WSGI and ASGI alike: Django hands context variables on to the threads
    that run sync views under ASGI, so those views see the scope too.
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        self._async = iscoroutinefunction(get_response)
        if self._async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if self._async:
            return self._acall(request)
        with context_scope(request_context(request)):
            return self.get_response(request)

    async def _acall(self, request: HttpRequest) -> HttpResponseBase:
        handler: Callable[[HttpRequest], Awaitable[HttpResponseBase]] = self.get_response
        with context_scope(request_context(request)):
            return await handler(request)


def get_asgi_application() -> _ASGIApp:
    """Django's ASGI application, plus a lifespan whose shutdown closes the client.

    Use it in ``asgi.py`` in place of ``django.core.asgi.get_asgi_application``.
    """
    from django.core.asgi import get_asgi_application as django_application

    return _with_lifespan(django_application())


def _with_lifespan(app: _ASGIApp) -> _ASGIApp:
    async def application(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "lifespan":
            await app(scope, receive, send)
            return
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                client = _client
                if client is not None:
                    # close() waits up to shutdown_timeout: never on the server's loop.
                    await anyio.to_thread.run_sync(client.close)
                await send({"type": "lifespan.shutdown.complete"})
                return

    return application
