"""FastAPI integration: the client's lifespan, the ``Events`` dependency, per-request context.

Needs the ``fastapi`` extra (``pip install 'htevents-async[fastapi]'``). A complete app
(run it with ``uvicorn shop:app``)::

    import os

    from fastapi import FastAPI

    from htevents_async import Track
    from htevents_async.integrations.fastapi import EventContextMiddleware, Events, lifespan

    app = FastAPI(lifespan=lifespan(os.environ["HT_WRITE_KEY"]))
    app.add_middleware(EventContextMiddleware)


    @app.post("/orders")
    async def create_order(events: Events) -> dict[str, bool]:
        # The event carries context.ip, userAgent, locale and page from the request.
        await events.track(user_id="123", event="Order completed", properties={"total": 29.99})
        return {"ok": True}


    @app.post("/orders/export")
    def export_orders(events: Events) -> dict[str, bool]:
        # A `def` endpoint runs in FastAPI's thread pool and cannot await: the
        # thread-safe enqueue validates the event here and hands it to the loop.
        # The request context reaches the thread as well.
        events.enqueue_threadsafe(Track(user_id="123", event="Orders exported"))
        return {"ok": True}

With a lifespan of your own, open the client inside it with :func:`client_lifespan`::

    @contextlib.asynccontextmanager
    async def app_lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with client_lifespan(app, os.environ["HT_WRITE_KEY"]) as events:
            # Resources opened inside the client's block close before it does,
            # so their own shutdown can still record events.
            async with httpx.AsyncClient() as http:
                app.state.http = http
                await events.track(anonymous_id="shop", event="Shop started")
                yield

    app = FastAPI(lifespan=app_lifespan)
    app.add_middleware(EventContextMiddleware)

:func:`client_lifespan`, :func:`lifespan` and :class:`EventContextMiddleware` are those of
:mod:`htevents_async.integrations.starlette`, re-exported here.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from starlette.requests import HTTPConnection

from .._client import Client
from . import starlette as _starlette
from .starlette import STATE_ATTRIBUTE as STATE_ATTRIBUTE
from .starlette import EventContextMiddleware as EventContextMiddleware
from .starlette import client_lifespan as client_lifespan
from .starlette import lifespan as lifespan

__all__ = [
    "STATE_ATTRIBUTE",
    "EventContextMiddleware",
    "Events",
    "client_lifespan",
    "get_client",
    "lifespan",
]


async def get_client(connection: HTTPConnection) -> Client:
    """The FastAPI dependency that returns the app's client (``app.state.events``).

    A coroutine so that FastAPI calls it on the event loop; FastAPI runs plain ``def``
    dependencies in its thread pool, a thread hop per request for a dictionary lookup.
    Raises :class:`RuntimeError` when the app's lifespan opens no client.
    """
    return _starlette.get_client(connection)


Events = Annotated[Client, Depends(get_client)]
"""A handler parameter annotated ``events: Events`` receives the app's client."""
