"""aiohttp integration: the client in a cleanup context, and per-request context.

Needs the ``aiohttp`` extra (``pip install 'htevents-async[aiohttp]'``). A complete app
(run it with ``python shop.py``)::

    import asyncio
    import os

    from aiohttp import web

    from htevents_async import Client, Track
    from htevents_async.integrations.aiohttp import (
        client_cleanup_ctx,
        event_context_middleware,
        get_client,
    )


    async def create_order(request: web.Request) -> web.Response:
        # The event carries context.ip, userAgent, locale and page from the request.
        await get_client(request).track(
            user_id="123", event="Order completed", properties={"total": 29.99}
        )
        return web.json_response({"ok": True})


    def export_orders_blocking(events: Client, user_id: str) -> None:
        # Sync code in a worker thread cannot await: it uses the thread-safe enqueue.
        events.enqueue_threadsafe(Track(user_id=user_id, event="Orders exported"))


    async def export_orders(request: web.Request) -> web.Response:
        # asyncio.to_thread copies the request context into the thread;
        # loop.run_in_executor does not.
        await asyncio.to_thread(export_orders_blocking, get_client(request), "123")
        return web.json_response({"ok": True})


    app = web.Application(middlewares=[event_context_middleware()])
    app.cleanup_ctx.append(client_cleanup_ctx(os.environ["HT_WRITE_KEY"]))
    app.router.add_post("/orders", create_order)
    app.router.add_post("/orders/export", export_orders)

    if __name__ == "__main__":
        web.run_app(app)

The client lives under :data:`CLIENT_KEY` (``app[CLIENT_KEY]``); sub-applications added
with ``app.add_subapp()`` find their parent's client through :func:`get_client`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from .._client import Client
from .._config import Config
from .._context import context_scope
from ._request_context import request_context

__all__ = ["CLIENT_KEY", "client_cleanup_ctx", "event_context_middleware", "get_client"]

CLIENT_KEY = web.AppKey("htevents_async.client", Client)
"""The application key under which :func:`client_cleanup_ctx` stores the client."""


def client_cleanup_ctx(
    write_key: str,
    *,
    config: Config | None = None,
    http_client: httpx.AsyncClient | None = None,
    **options: Any,
) -> Callable[[web.Application], AsyncIterator[None]]:
    """A cleanup context that runs a :class:`~htevents_async.Client` for the app's lifetime.

    ``app.cleanup_ctx.append(client_cleanup_ctx(write_key))``: on startup it opens a
    client and stores it as ``app[CLIENT_KEY]``; on cleanup, which aiohttp runs after the
    last request has finished, it closes the client, delivering the pending events within
    ``shutdown_timeout`` seconds. The arguments are those of :class:`~htevents_async.Client`
    and are checked when the app starts. Contexts appended after this one can already
    record events, and their cleanup runs before the client closes.
    """

    async def run(app: web.Application) -> AsyncIterator[None]:
        async with Client(write_key, config=config, http_client=http_client, **options) as client:
            # The key stays set after cleanup: aiohttp has frozen the app by then, and a
            # closed client raises a clear ClientClosedError if anything still uses it.
            app[CLIENT_KEY] = client
            yield

    return run


def get_client(request: web.Request) -> Client:
    """The client of the application (or of a parent application) serving ``request``.

    Raises :class:`RuntimeError` when no application in the chain has
    :func:`client_cleanup_ctx` in its ``cleanup_ctx``.
    """
    try:
        return request.config_dict[CLIENT_KEY]
    except KeyError:
        raise RuntimeError(
            "no htevents_async client on this application: add "
            "htevents_async.integrations.aiohttp.client_cleanup_ctx(write_key) to app.cleanup_ctx"
        ) from None


def event_context_middleware(*, include_ip: bool = True) -> Middleware:
    """A middleware under which events recorded while handling a request carry its context.

    ``web.Application(middlewares=[event_context_middleware()])``. For each request it
    opens a :func:`~htevents_async.context_scope` with ``ip``, ``userAgent``, ``locale``
    (the preferred ``Accept-Language``) and ``page`` (``url``, ``path``, ``search``,
    ``referrer``), for the whole handler, streamed responses included. A ``context``
    passed to a call wins, key by key at the top level: an explicit ``page`` replaces the
    request's ``page``. Worker threads see the scope when started with
    ``asyncio.to_thread`` (``loop.run_in_executor`` does not copy it).

    ``include_ip=False`` leaves the client address out, where recording it needs consent.
    The address is ``request.remote``; behind a proxy, set it from ``X-Forwarded-For``
    in a middleware of your own that knows which proxies to trust (``request.clone(remote=...)``).
    """

    @web.middleware
    async def event_context(request: web.Request, handler: Handler) -> web.StreamResponse:
        rel_url = request.rel_url
        context = request_context(
            ip=request.remote if include_ip else None,
            scheme=request.scheme,
            host=request.host or None,
            path=rel_url.raw_path,
            query=rel_url.raw_query_string,
            user_agent=request.headers.get("User-Agent"),
            accept_language=request.headers.get("Accept-Language"),
            referrer=request.headers.get("Referer"),
        )
        with context_scope(context):
            return await handler(request)

    return event_context
