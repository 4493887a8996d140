"""The plain asyncio worker loop of the async workers guide, run as a real process."""

from __future__ import annotations

import asyncio
import json
import shutil

import pytest
from servers import redis_server
from worker_support import ORDERS, by_order, expected_orders, worker

from htevents_async._collector import LocalCollector

redis_asyncio = pytest.importorskip("redis.asyncio")

pytestmark = pytest.mark.skipif(
    shutil.which("redis-server") is None, reason="needs Debian's redis-server"
)

# The example's work() with the test's client options: one-hour flush interval, so that
# nothing is sent before the signal.
RUN = (
    "import asyncio, os, sys\n"
    "from examples.worker_loop import work\n"
    "asyncio.run(work('test-write-key', os.environ['REDIS_URL'], "
    "host=os.environ['HT_COLLECTOR'], flush_interval=3600))\n"
)


async def test_sigterm_stops_the_loop_and_delivers_every_event(collector: LocalCollector) -> None:
    """Orders taken before SIGTERM are all recorded and delivered as the worker exits."""
    async with redis_server() as broker:
        redis = redis_asyncio.Redis.from_url(broker)
        try:
            env = {"REDIS_URL": broker, "HT_COLLECTOR": collector.url}
            async with worker(["-c", RUN], env) as process:
                for n in range(ORDERS):
                    await redis.rpush("orders", json.dumps({"user_id": "u1", "id": f"o{n}"}))
                # The loop finishes an order it has taken before it notices the signal, so
                # the signal may come once the list is empty.
                while await redis.llen("orders"):
                    assert process.returncode is None
                    await asyncio.sleep(0.02)
                assert collector.messages() == []
            assert process.returncode == 0
        finally:
            await redis.aclose()
    assert by_order(collector.messages()) == expected_orders()
