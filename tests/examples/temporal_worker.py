import asyncio
import os
import sys

from temporalio.client import Client
from temporalio.worker import Worker

from htevents_async import Track
from htevents_async.integrations import temporal


async def main() -> None:
    # The data converter carries Track and the other message classes as JSON.
    client = await Client.connect("127.0.0.1:7233", data_converter=temporal.data_converter)
    # worker_options(): the workflows, the activities, and a sandbox that passes
    # htevents_async through. The client opens before the worker and is flushed and
    # closed after it stops.
    async with (
        temporal.Analytics(
            "YOUR_WRITE_KEY", task_queue="analytics", host="http://127.0.0.1:8787"
        ) as analytics,
        Worker(client, task_queue="analytics", **analytics.worker_options()),
    ):
        output = await client.execute_workflow(
            temporal.WorkflowTrack.run,
            temporal.InputTrack(track=Track(user_id="123", event="Order completed")),
            id="order-123-completed",
            task_queue="analytics",
        )
        print("delivered", output.message_id)


asyncio.run(main())
# A short-lived script that used Temporal's client can abort while the interpreter
# finalizes (temporalio/sdk-python#300). Everything of ours is flushed and closed
# by now, so leave without finalizing.
sys.stdout.flush()
os._exit(0)
