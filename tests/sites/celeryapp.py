"""A Celery app with the integration installed; the worker runs it with ``-A sites.celeryapp``.

``HT_BROKER`` is the Redis URL (broker and result backend), ``HT_COLLECTOR`` the collector's.
"""

from __future__ import annotations

import os

from celery import Celery

from htevents_async.integrations.celery import get_client, install

app = Celery("celeryapp", broker=os.environ["HT_BROKER"], backend=os.environ["HT_BROKER"])
# Nothing is sent while the worker runs: every event arrives through the shutdown close.
install("test-write-key", host=os.environ.get("HT_COLLECTOR", ""), flush_interval=3600)


@app.task(name="record")
def record(n: int) -> int:
    """Record one event numbered ``n``; returns the worker process id."""
    get_client().track(user_id="u1", event="Task ran", properties={"n": n})
    return os.getpid()
