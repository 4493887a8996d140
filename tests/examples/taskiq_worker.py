"""A taskiq broker whose tasks record events: run ``taskiq worker taskiq_worker:broker``."""

import os

from taskiq_redis import RedisStreamBroker

from htevents_async.integrations.taskiq import Events, install

# socket_timeout=None: with redis-py 8's default read timeout, a worker may never
# finish stopping on SIGTERM, and the SIGKILL that follows loses what is pending.
broker = RedisStreamBroker(os.environ["REDIS_URL"], socket_timeout=None)
# Every worker process opens its client at startup and closes it, delivering what is
# pending, at shutdown; the arguments after the broker are those of Client.
install(broker, os.environ["HT_WRITE_KEY"])


@broker.task
async def charge(user_id: str, order_id: str, events: Events) -> None:
    """Charge an order, and record that it was charged."""
    await events.track(user_id=user_id, event="Order charged", properties={"order": order_id})
