import rudderstack.analytics as rudder_analytics

rudder_analytics.write_key = "YOUR_WRITE_KEY"
rudder_analytics.dataPlaneUrl = "http://127.0.0.1:8787"  # the local collector; your data plane
rudder_analytics.on_error = lambda error, batch: print("failed:", error)

rudder_analytics.identify("123", {"email": "ada@example.com"})
rudder_analytics.track("123", "Order completed", {"total": 29.99})
rudder_analytics.flush()  # waits until the queue is empty, with no time limit
rudder_analytics.shutdown()
