"""taskiq integration: one client per worker process, and the ``Events`` dependency.

Needs the ``taskiq`` extra (``pip install 'htevents-async[taskiq]'``) and the broker of
your choice. In the module that makes the broker (run it with
``taskiq worker shop:broker``)::

    import os

    from taskiq_redis import RedisStreamBroker

    from htevents_async.integrations.taskiq import Events, install

    # socket_timeout=None: with redis-py 8's default read timeout, a worker may never
    # finish stopping on SIGTERM, and the SIGKILL that follows loses what is pending.
    broker = RedisStreamBroker(os.environ["REDIS_URL"], socket_timeout=None)
    install(broker, os.environ["HT_WRITE_KEY"])


    @broker.task
    async def charge(order_id: str, events: Events) -> None:
        await events.track(user_id="123", event="Order charged", properties={"order": order_id})

:func:`install` connects two of the broker's events:

* ``WORKER_STARTUP``: each worker process opens its own client, kept in the broker's
  state as ``state.events``. Processes that only send tasks open none.
* ``WORKER_SHUTDOWN``: the client closes, delivering what is pending within its
  ``shutdown_timeout``. On SIGTERM or SIGINT the worker stops taking tasks and lets the
  running ones finish (up to ``--wait-tasks-timeout``) before this event, so their events
  are delivered too.

taskiq cancels the whole broker shutdown after ``--shutdown-timeout`` seconds (5 by
default). A close cancelled there loses what is pending without reporting it, so the
client's ``shutdown_timeout`` defaults to :data:`SHUTDOWN_TIMEOUT` (4 seconds) here,
rather than ``Client``'s 5: it gives up first, and logs what it dropped. Passing
``shutdown_timeout=`` (or a ``config``) overrides it; keep it below the worker's
``--shutdown-timeout``, or raise that. With a ``spool``, the close may wait up to 5 s
more for the file's last commit on a stalled disk: raise ``--shutdown-timeout`` by that.

Tasks reach the client with the :data:`Events` dependency (a parameter annotated
``events: Events``), or with :func:`get_client` and the state
(``get_client(context.state)``).
"""

from __future__ import annotations

from typing import Annotated, Any

import httpx
from taskiq import AsyncBroker, TaskiqDepends, TaskiqEvents, TaskiqState

from .._client import Client
from .._config import Config

__all__ = ["SHUTDOWN_TIMEOUT", "STATE_ATTRIBUTE", "Events", "get_client", "install"]

STATE_ATTRIBUTE = "events"
"""The attribute of the broker's ``TaskiqState`` that holds the client: ``state.events``."""

SHUTDOWN_TIMEOUT = 4.0
"""The client's ``shutdown_timeout`` when :func:`install` is given neither
``shutdown_timeout`` nor ``config``: below taskiq's default ``--shutdown-timeout`` (5 s),
with room for the close's own last step (closing the connections) and the broker's other
shutdown handlers."""


def install(
    broker: AsyncBroker,
    write_key: str,
    *,
    config: Config | None = None,
    http_client: httpx.AsyncClient | None = None,
    **options: Any,
) -> None:
    """Open a :class:`~htevents_async.Client` in every worker of ``broker``; close it at the end.

    Call it once, where the broker is made. The arguments after ``broker`` are those of
    :class:`~htevents_async.Client`; they are checked when a worker starts. Without
    ``shutdown_timeout`` or ``config``, the client closes within :data:`SHUTDOWN_TIMEOUT`
    seconds, before taskiq's ``--shutdown-timeout`` cancels the close.
    """
    if config is None:
        options.setdefault("shutdown_timeout", SHUTDOWN_TIMEOUT)

    async def open_client(state: TaskiqState) -> None:
        if state.get(STATE_ATTRIBUTE) is not None:
            raise RuntimeError(
                f"state.{STATE_ATTRIBUTE} is already set: call install() once per broker"
            )
        client = Client(write_key, config=config, http_client=http_client, **options)
        state[STATE_ATTRIBUTE] = await client.__aenter__()

    async def close_client(state: TaskiqState) -> None:
        client = state.pop(STATE_ATTRIBUTE, None)
        if isinstance(client, Client):
            await client.aclose()

    broker.add_event_handler(TaskiqEvents.WORKER_STARTUP, open_client)
    broker.add_event_handler(TaskiqEvents.WORKER_SHUTDOWN, close_client)


# TaskiqDepends() as a default is how taskiq declares a dependency.
def get_client(state: TaskiqState = TaskiqDepends()) -> Client:  # noqa: B008
    """The worker's client: a taskiq dependency, or a plain call with the broker's state.

    Raises :class:`RuntimeError` when :func:`install` was not called for the broker, or
    outside a worker process (``broker.state`` of a process that only sends tasks).
    """
    client = state.get(STATE_ATTRIBUTE)
    if not isinstance(client, Client):
        raise RuntimeError(
            f"no htevents_async client on state.{STATE_ATTRIBUTE}: call "
            "htevents_async.integrations.taskiq.install(broker, write_key) where the "
            "broker is made, and record events from tasks run by `taskiq worker`"
        )
    return client


Events = Annotated[Client, TaskiqDepends(get_client)]
"""A task parameter annotated ``events: Events`` receives the worker's client."""
