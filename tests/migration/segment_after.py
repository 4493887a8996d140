import asyncio

import htevents_async


async def main() -> None:
    async with htevents_async.Client(
        "YOUR_WRITE_KEY",
        host="http://127.0.0.1:8787",  # the local collector; for Segment: https://api.segment.io
        on_failure=lambda batch, error: print("failed:", error),
    ) as analytics:
        await analytics.identify(user_id="123", traits={"email": "ada@example.com"})
        await analytics.track(user_id="123", event="Order completed", properties={"total": 29.99})
        pending = await analytics.flush(timeout=5.0)  # bounded; 0 once all have an outcome
        print("still pending:", pending)
    # Leaving the block flushed what was left and closed, within shutdown_timeout.


asyncio.run(main())
