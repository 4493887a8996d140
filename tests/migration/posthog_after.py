import asyncio

import htevents_async


async def main() -> None:
    # host: the local collector here; for PostHog US, https://us.i.posthog.com
    async with htevents_async.Client(
        "phc_YOUR_PROJECT_KEY", host="http://127.0.0.1:8787", protocol="posthog"
    ) as posthog:
        await posthog.identify(user_id="123", traits={"email": "ada@example.com"})
        await posthog.track(user_id="123", event="Order completed", properties={"total": 29.99})
        pending = await posthog.flush(timeout=5.0)  # bounded; 0 once all have an outcome
        print("still pending:", pending)


asyncio.run(main())
