"""Serve an ASGI app with uvicorn on 127.0.0.1, inside the test's own event loop.

::

    async with serve_asgi(app) as http:
        await http.post("/orders")  # an httpx client pointed at the server
    # leaving the block closes the HTTP client, then stops the server: lifespan shutdown ran

The socket is bound before uvicorn starts, so the port is known without parsing logs
and connections made right away wait in the backlog instead of being refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator

import httpx
import uvicorn
from starlette.types import ASGIApp

from htevents_async._collector._server import _Server


@contextlib.asynccontextmanager
async def serve_asgi(app: ASGIApp) -> AsyncIterator[httpx.AsyncClient]:
    """Run ``app`` (lifespan included) until the block ends; yields an HTTP client for it."""
    sock = socket.create_server(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app, lifespan="on", log_config=None, log_level="warning", access_log=False, ws="none"
    )
    server = _Server(config, handle_signals=False)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    ready = asyncio.create_task(server.ready.wait())
    await asyncio.wait({ready, task}, return_when=asyncio.FIRST_COMPLETED)
    ready.cancel()
    if task.done():
        sock.close()
        task.result()  # re-raises a startup failure
        raise RuntimeError("uvicorn stopped during startup (see the lifespan error above)")
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            yield http
    finally:
        server.should_exit = True
        await task
