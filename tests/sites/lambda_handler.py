"""The AWS Lambda pattern: a module-level client, and a handler that flushes before returning.

Run as a script, it plays the Lambda runtime: one invocation per line of stdin, answering
each with a line on stdout; between invocations the test freezes the process (SIGSTOP).
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import htevents_async

# Made once per execution environment, reused by every warm invocation.
events = htevents_async.SyncClient(
    "test-write-key", host=os.environ.get("HT_COLLECTOR", ""), flush_interval=3600
)


def handler(event: dict[str, Any], context: object) -> dict[str, Any]:
    """Record the invocation's events, then flush: the process may be frozen right after."""
    for i in range(event["count"]):
        events.track(user_id="u1", event="Invoked", properties={"call": event["call"], "i": i})
    pending = events.flush(timeout=5.0)
    return {"pending": pending}


if __name__ == "__main__":
    for line in sys.stdin:
        print(json.dumps(handler(json.loads(line), None)), flush=True)
