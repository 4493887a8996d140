import segment.analytics as analytics

analytics.write_key = "YOUR_WRITE_KEY"
analytics.host = "http://127.0.0.1:8787"  # the local collector; by default https://api.segment.io
analytics.on_error = lambda error, batch: print("failed:", error)

analytics.identify("123", {"email": "ada@example.com"})
analytics.track("123", "Order completed", {"total": 29.99})
analytics.flush()  # waits until the queue is empty, with no time limit
analytics.shutdown()
