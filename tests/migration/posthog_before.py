from posthog import Posthog

posthog = Posthog("phc_YOUR_PROJECT_KEY", host="http://127.0.0.1:8787")  # default: PostHog US

posthog.set(distinct_id="123", properties={"email": "ada@example.com"})
posthog.capture("Order completed", distinct_id="123", properties={"total": 29.99})
posthog.flush()  # waits up to 10 s by default
posthog.shutdown()
