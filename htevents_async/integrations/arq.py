"""arq integration: one client per worker, opened at startup and closed, flushed, at shutdown.

Needs the ``arq`` extra (``pip install 'htevents-async[arq]'``). A worker settings module
(run it with ``arq shop.WorkerSettings``)::

    import os
    from typing import Any

    from arq.connections import RedisSettings

    from htevents_async.integrations.arq import get_client, shutdown, startup


    async def charge(ctx: dict[str, Any], order_id: str) -> None:
        await get_client(ctx).track(
            user_id="123", event="Order charged", properties={"order": order_id}
        )


    class WorkerSettings:
        functions = [charge]
        redis_settings = RedisSettings.from_dsn(os.environ["REDIS_URL"])
        on_startup = startup(os.environ["HT_WRITE_KEY"])
        on_shutdown = shutdown

The client lives in the worker's ``ctx`` dict under :data:`CTX_KEY`, next to arq's own
``ctx["redis"]``. A worker with startup and shutdown hooks of its own calls
:func:`open_client` and :func:`shutdown` from them.

On SIGTERM or SIGINT arq cancels the jobs still running (after ``job_completion_wait``
seconds, when the settings give one), then runs ``on_shutdown``: :func:`shutdown`
delivers every event recorded until then, within the client's ``shutdown_timeout``
(5 seconds by default).

arq runs ``on_shutdown`` only if Redis still answers: ``Worker.close()`` first deletes the
worker's health-check key, and an error there ends the close before ``on_shutdown`` runs
(arq 0.28). When Redis may be down as the worker stops, give the client a spool
(``startup(write_key, spool=DIR)``): what the spool has committed is delivered by the
next client on that directory instead of being lost.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import httpx

from .._client import Client
from .._config import Config

__all__ = ["CTX_KEY", "get_client", "open_client", "shutdown", "startup"]

CTX_KEY = "events"
"""The key of arq's job context under which the client lives: ``ctx["events"]``."""

# arq hands every hook and job the same dict (typed dict[Any, Any] by arq).
_Ctx = MutableMapping[str, Any]


async def open_client(
    ctx: _Ctx,
    write_key: str,
    *,
    config: Config | None = None,
    http_client: httpx.AsyncClient | None = None,
    **options: Any,
) -> Client:
    """Open a :class:`~htevents_async.Client` as ``ctx["events"]``, from an ``on_startup`` hook.

    The arguments after ``ctx`` are those of :class:`~htevents_async.Client`. Returns the
    client. Raises :class:`RuntimeError` when ``ctx`` already holds one.
    """
    if ctx.get(CTX_KEY) is not None:
        raise RuntimeError(f'ctx["{CTX_KEY}"] is already set: open one client per worker')
    client = Client(write_key, config=config, http_client=http_client, **options)
    ctx[CTX_KEY] = await client.__aenter__()
    return client


def startup(
    write_key: str,
    *,
    config: Config | None = None,
    http_client: httpx.AsyncClient | None = None,
    **options: Any,
) -> Callable[[_Ctx], Awaitable[None]]:
    """A ready-made ``on_startup`` hook that runs :func:`open_client` with these arguments.

    The arguments are those of :class:`~htevents_async.Client`; they are checked when the
    worker starts.
    """

    async def on_startup(ctx: _Ctx) -> None:
        await open_client(ctx, write_key, config=config, http_client=http_client, **options)

    return on_startup


async def shutdown(ctx: _Ctx) -> None:
    """The ``on_shutdown`` hook: close the worker's client, delivering what is pending.

    Waits at most the client's ``shutdown_timeout``. Does nothing when ``ctx`` holds no
    client, so it is safe after a startup that failed before opening one.
    """
    client = ctx.pop(CTX_KEY, None)
    if isinstance(client, Client):
        await client.aclose()


def get_client(ctx: _Ctx) -> Client:
    """The worker's client, from the ``ctx`` a job function receives.

    Raises :class:`RuntimeError` when the worker's ``on_startup`` opened none.
    """
    client = ctx.get(CTX_KEY)
    if not isinstance(client, Client):
        raise RuntimeError(
            f'no htevents_async client in ctx["{CTX_KEY}"]: set on_startup = '
            "htevents_async.integrations.arq.startup(write_key) in the WorkerSettings, "
            "or call open_client(ctx, write_key) from your own on_startup"
        )
    return client
