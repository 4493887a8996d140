"""The taskiq example's task on a broker whose client points at the test's collector.

Run with ``taskiq worker sites.taskiqsite:broker``. ``REDIS_URL`` is the broker and the
result backend, ``HT_COLLECTOR`` the collector's URL, ``HT_FLUSH_INTERVAL`` the client's
flush interval.
"""

from __future__ import annotations

import os

from examples.taskiq_worker import charge
from taskiq_redis import RedisAsyncResultBackend, RedisStreamBroker

from htevents_async.integrations.taskiq import install

broker = RedisStreamBroker(os.environ["REDIS_URL"], socket_timeout=None).with_result_backend(
    RedisAsyncResultBackend(os.environ["REDIS_URL"])
)
install(
    broker,
    "test-write-key",
    host=os.environ["HT_COLLECTOR"],
    flush_interval=float(os.environ["HT_FLUSH_INTERVAL"]),
)
broker.register_task(charge.original_func, task_name="charge")
