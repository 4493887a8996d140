"""Celery integration: a client in every worker process, closed as the process ends.

Needs the ``celery`` extra (``pip install 'htevents-async[celery]'``). In the module that
makes the Celery app::

    import os

    from celery import Celery

    from htevents_async.integrations.celery import get_client, install

    app = Celery("shop", broker=os.environ["BROKER_URL"])
    install(os.environ["HT_WRITE_KEY"], flush_interval=2.0)


    @app.task
    def charge(order_id: str) -> None:
        # context.task carries this task's name and id.
        get_client().track(user_id="123", event="Order charged", properties={"order": order_id})

:func:`install` makes the client at once (bad options fail at import), connects Celery's
signals, and returns the client:

* ``worker_process_init``: each pool process starts its own delivery thread. Prefork
  children inherit the parent's client through ``fork()``; it starts afresh in each.
* ``worker_process_shutdown`` and ``worker_shutdown``: the client closes, delivering
  what is pending within ``shutdown_timeout``. Prefork children leave through
  ``os._exit``, which runs no ``atexit`` handler, so this signal is the only chance.
* ``task_prerun`` / ``task_postrun``: every event a task records carries
  ``context.task = {"name": ..., "id": ...}`` (turn off with ``task_context=False``).
"""

from __future__ import annotations

import threading
from contextlib import AbstractContextManager
from typing import Any

from celery import signals

from .._context import context_scope
from .._sync import SyncClient

__all__ = ["get_client", "install"]

_client: SyncClient | None = None
# Scopes opened by task_prerun, by task id, closed by task_postrun in the same thread.
_scopes = threading.local()


def install(write_key: str, *, task_context: bool = True, **options: Any) -> SyncClient:
    """Make the process's client from ``write_key`` and Client ``options``; connect signals.

    Call it once, where the Celery app is made. Returns the client (also
    :func:`get_client`).
    """
    global _client
    if _client is not None:
        _client.close()
    _client = SyncClient(write_key, **options)
    signals.worker_process_init.connect(_start, weak=False, dispatch_uid="htevents_async.start")
    for signal in (signals.worker_process_shutdown, signals.worker_shutdown):
        signal.connect(_close, weak=False, dispatch_uid="htevents_async.close")
    if task_context:
        signals.task_prerun.connect(_enter_task, weak=False, dispatch_uid="htevents_async.task")
        signals.task_postrun.connect(_leave_task, weak=False, dispatch_uid="htevents_async.task")
    else:
        signals.task_prerun.disconnect(dispatch_uid="htevents_async.task")
        signals.task_postrun.disconnect(dispatch_uid="htevents_async.task")
    return _client


def get_client() -> SyncClient:
    """The client :func:`install` made."""
    if _client is None:
        raise RuntimeError(
            "htevents_async.integrations.celery.install(write_key, ...) has not been called"
        )
    return _client


def _start(**_: Any) -> None:
    # Starting here, not in the first task, keeps the thread start out of task time.
    if _client is not None:
        _client._start()


def _close(**_: Any) -> None:
    if _client is not None:
        _client.close()


def _enter_task(task_id: str | None = None, task: Any = None, **_: Any) -> None:
    scope = context_scope(task={"name": getattr(task, "name", None), "id": task_id})
    scope.__enter__()
    opened: dict[str | None, AbstractContextManager[None]] = _scopes.__dict__.setdefault(
        "opened", {}
    )
    opened[task_id] = scope


def _leave_task(task_id: str | None = None, **_: Any) -> None:
    opened: dict[str | None, AbstractContextManager[None]] = _scopes.__dict__.get("opened", {})
    scope = opened.pop(task_id, None)
    if scope is not None:
        scope.__exit__(None, None, None)
