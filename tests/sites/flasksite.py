"""A Flask app with the extension, served by gunicorn (``sites.flasksite:app``)."""

from __future__ import annotations

import os

from flask import Flask

from htevents_async.integrations.flask import Events, get_client

app = Flask(__name__)
app.config["HTEVENTS_WRITE_KEY"] = "test-write-key"
# Nothing is sent while the app runs: every event arrives through the exit close.
app.config["HTEVENTS_OPTIONS"] = {
    "host": os.environ.get("HT_COLLECTOR", ""),
    "flush_interval": 3600,
}
Events(app)


@app.get("/orders/<int:n>")
def order(n: int) -> dict[str, int]:
    """Record one event numbered by the path."""
    get_client().track(user_id="u1", event="Order completed", properties={"n": n})
    return {"pid": os.getpid()}
