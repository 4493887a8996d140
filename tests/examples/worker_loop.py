"""A plain asyncio worker: takes orders from a Redis list until SIGTERM, records an event
for each, and delivers every event before it exits."""

import asyncio
import json
import os
import signal
from typing import Any

from redis.asyncio import Redis

from htevents_async import Client


async def work(write_key: str, redis_url: str, **options: Any) -> None:
    """Run until SIGTERM or SIGINT; ``options`` are those of ``Client``."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    # The client is opened first and closed last: leaving its block delivers every
    # event the loop recorded, within shutdown_timeout (5 seconds by default).
    async with Client(write_key, **options) as events, Redis.from_url(redis_url) as redis:
        while not stop.is_set():
            # The timeout bounds how long a signal waits for the loop to notice it;
            # a job already taken is finished before the loop stops.
            job = await redis.blpop(["orders"], timeout=1)
            if job is None:
                continue
            order = json.loads(job[1])
            await events.track(
                user_id=order["user_id"], event="Order charged", properties={"order": order["id"]}
            )


if __name__ == "__main__":
    asyncio.run(work(os.environ["HT_WRITE_KEY"], os.environ["REDIS_URL"]))
