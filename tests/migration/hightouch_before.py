import hightouch.htevents as htevents

htevents.write_key = "YOUR_WRITE_KEY"
htevents.host = "http://127.0.0.1:8787"  # the local collector; by default Hightouch US
htevents.on_error = lambda error, batch: print("failed:", error)

htevents.identify("123", {"email": "ada@example.com"})
htevents.track("123", "Order completed", {"total": 29.99})
htevents.flush()  # waits until the queue is empty, with no time limit
htevents.shutdown()
