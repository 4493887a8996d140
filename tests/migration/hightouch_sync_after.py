import htevents_async

events = htevents_async.SyncClient("YOUR_WRITE_KEY", host="http://127.0.0.1:8787")

events.identify(user_id="123", traits={"email": "ada@example.com"})
events.track(user_id="123", event="Order completed", properties={"total": 29.99})
events.flush(timeout=5.0)  # returns the number still pending, 0 when done
events.close()
