"""An arq worker whose jobs record events: run it with ``arq arq_worker.WorkerSettings``."""

import os
from typing import Any

from arq.connections import RedisSettings

from htevents_async.integrations.arq import get_client, shutdown, startup


async def charge(ctx: dict[str, Any], user_id: str, order_id: str) -> None:
    """Charge an order, and record that it was charged."""
    await get_client(ctx).track(
        user_id=user_id, event="Order charged", properties={"order": order_id}
    )


class WorkerSettings:
    """What ``arq`` reads: the job functions, the broker, and the lifecycle hooks."""

    functions = (charge,)
    redis_settings = RedisSettings.from_dsn(os.environ["REDIS_URL"])
    # Opens the worker's client, as ctx["events"]; the arguments are those of Client.
    on_startup = startup(os.environ["HT_WRITE_KEY"])
    # Closes it after the last job: what is pending is delivered before the worker exits.
    on_shutdown = shutdown
