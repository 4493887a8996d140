"""Starlette integration: the client's lifespan, a way to reach it, and per-request context.

Needs the ``starlette`` extra (``pip install 'htevents-async[starlette]'``). A complete
app (run it with ``uvicorn shop:app``)::

    import os

    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from htevents_async import Track
    from htevents_async.integrations.starlette import (
        EventContextMiddleware,
        get_client,
        lifespan,
    )


    async def create_order(request: Request) -> JSONResponse:
        # The event carries context.ip, userAgent, locale and page from the request.
        await get_client(request).track(
            user_id="123", event="Order completed", properties={"total": 29.99}
        )
        return JSONResponse({"ok": True})


    def export_orders(request: Request) -> JSONResponse:
        # Sync endpoints run in a worker thread: they cannot await, so they use the
        # thread-safe enqueue. The request context reaches the thread too.
        get_client(request).enqueue_threadsafe(Track(user_id="123", event="Orders exported"))
        return JSONResponse({"ok": True})


    routes = [
        Route("/orders", create_order, methods=["POST"]),
        Route("/orders/export", export_orders, methods=["POST"]),
    ]
    middleware = [Middleware(EventContextMiddleware)]
    app = Starlette(
        routes=routes, middleware=middleware, lifespan=lifespan(os.environ["HT_WRITE_KEY"])
    )

With a lifespan of your own, open the client inside it with :func:`client_lifespan`;
whatever you start after it can record events, and it is closed last::

    @contextlib.asynccontextmanager
    async def app_lifespan(app: Starlette) -> AsyncIterator[None]:
        async with client_lifespan(app, os.environ["HT_WRITE_KEY"]) as events:
            # Resources opened inside the client's block close before it does,
            # so their own shutdown can still record events.
            async with httpx.AsyncClient() as http:
                app.state.http = http
                await events.track(anonymous_id="shop", event="Shop started")
                yield

    app = Starlette(routes=routes, middleware=middleware, lifespan=app_lifespan)

:class:`EventContextMiddleware` is plain ASGI, so it also works in front of any other
ASGI application.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, final

import httpx
from starlette.applications import Starlette
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Receive, Scope, Send

from .._client import Client
from .._config import Config
from .._context import context_scope
from ._request_context import asgi_request_context

__all__ = ["STATE_ATTRIBUTE", "EventContextMiddleware", "client_lifespan", "get_client", "lifespan"]

STATE_ATTRIBUTE = "events"
"""The ``app.state`` attribute that holds the client: ``request.app.state.events``."""


@contextlib.asynccontextmanager
async def client_lifespan(
    app: Starlette,
    write_key: str,
    *,
    config: Config | None = None,
    http_client: httpx.AsyncClient | None = None,
    **options: Any,
) -> AsyncIterator[Client]:
    """Run a :class:`~htevents_async.Client` for as long as the block, as ``app.state.events``.

    For use inside an application's own lifespan. The arguments are those of
    :class:`~htevents_async.Client`. Leaving the block closes the client, which delivers
    the pending events within ``shutdown_timeout`` seconds; since servers run the lifespan's
    shutdown after the last request has finished, that includes every request's events.
    """
    if getattr(app.state, STATE_ATTRIBUTE, None) is not None:
        raise RuntimeError(
            f"app.state.{STATE_ATTRIBUTE} is already set: open one client_lifespan() per app"
        )
    async with Client(write_key, config=config, http_client=http_client, **options) as client:
        setattr(app.state, STATE_ATTRIBUTE, client)
        try:
            yield client
        finally:
            # A later run of the same app (tests often start one twice) needs a fresh client.
            delattr(app.state, STATE_ATTRIBUTE)


def lifespan(
    write_key: str,
    *,
    config: Config | None = None,
    http_client: httpx.AsyncClient | None = None,
    **options: Any,
) -> Callable[[Starlette], AbstractAsyncContextManager[None]]:
    """A ready-made lifespan for an app that has none of its own: ``Starlette(lifespan=...)``.

    Each start of the app opens a new client with :func:`client_lifespan`; the arguments
    are those of :class:`~htevents_async.Client` and are checked when the app starts.
    """

    @contextlib.asynccontextmanager
    async def run(app: Starlette) -> AsyncIterator[None]:
        async with client_lifespan(
            app, write_key, config=config, http_client=http_client, **options
        ):
            yield

    return run


def get_client(connection: HTTPConnection) -> Client:
    """The client of the app serving ``connection`` (a request or a websocket).

    Raises :class:`RuntimeError` when the app has no client, that is when neither
    :func:`lifespan` nor :func:`client_lifespan` runs in its lifespan. A mounted
    sub-application has its own ``app.state``: pass the client to it explicitly.
    """
    client = getattr(connection.app.state, STATE_ATTRIBUTE, None)
    if not isinstance(client, Client):
        raise RuntimeError(
            f"no htevents_async client on app.state.{STATE_ATTRIBUTE}: open one with "
            "htevents_async.integrations.starlette.lifespan() or client_lifespan() "
            "in the app's lifespan"
        )
    return client


@final
class EventContextMiddleware:
    """Pure ASGI middleware: events recorded while handling a request carry its context.

    For each HTTP request it opens a :func:`~htevents_async.context_scope` with
    ``ip``, ``userAgent``, ``locale`` (the preferred ``Accept-Language``) and
    ``page`` (``url``, ``path``, ``search``, ``referrer``). The scope covers the whole
    handling of the request, streamed response bodies and background tasks included, and
    follows it into worker threads (sync endpoints). A ``context`` passed to a call wins,
    key by key at the top level: an explicit ``page`` replaces the request's ``page``.

    Websocket and lifespan messages pass through untouched. ``include_ip=False`` leaves
    the client address out, where recording it needs consent. The address is the one the
    server reports; behind a proxy, have the server take it from ``X-Forwarded-For``
    (uvicorn's ``--proxy-headers`` and ``--forwarded-allow-ips``).

    Add it with ``app.add_middleware(EventContextMiddleware)`` or
    ``Middleware(EventContextMiddleware)``.
    """

    def __init__(self, app: ASGIApp, *, include_ip: bool = True) -> None:
        """Wrap ``app``."""
        self.app = app
        self.include_ip = include_ip

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one ASGI connection, inside a context scope when it is an HTTP request."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        with context_scope(asgi_request_context(scope, include_ip=self.include_ip)):
            await self.app(scope, receive, send)
