import asyncio

from posthog import AsyncPosthog


async def main() -> None:
    async with AsyncPosthog("phc_YOUR_PROJECT_KEY", host="http://127.0.0.1:8787") as posthog:
        posthog.set(distinct_id="123", properties={"email": "ada@example.com"})
        posthog.capture("Order completed", distinct_id="123", properties={"total": 29.99})
        await posthog.flush()
    # Leaving the block ran shutdown(), which drains the queue with no time limit.


asyncio.run(main())
