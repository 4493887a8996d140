import htevents_async

posthog = htevents_async.SyncClient(
    "phc_YOUR_PROJECT_KEY", host="http://127.0.0.1:8787", protocol="posthog"
)

posthog.identify(user_id="123", traits={"email": "ada@example.com"})
posthog.track(user_id="123", event="Order completed", properties={"total": 29.99})
posthog.flush(timeout=5.0)  # returns the number still pending, 0 when done
posthog.close()
