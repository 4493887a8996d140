"""The floor to compare against: the least an asyncio sender can do and still deliver.

Each call serialises its message with ``json.dumps`` into a list; every 100 messages the
list is joined into one batch body and handed to a single sender task that POSTs it with
one ``httpx.AsyncClient``. No validation, no size limits, no retries, no backpressure:
whatever fails is lost. Real SDKs must do more, so this bounds what they could reach.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import uuid
from datetime import datetime, timezone
from typing import Any

import httpx

LIBRARY = {"name": "naive-asyncio-sender", "version": "0"}


class NaiveSender:
    """Batches of ``batch_size`` JSON-encoded messages, POSTed one at a time."""

    def __init__(
        self, host: str, write_key: str, *, batch_size: int = 100, compress: bool = False
    ) -> None:
        self._url = host.rstrip("/") + "/v1/batch"
        self._write_key = write_key
        self._batch_size = batch_size
        self._compress = compress
        self._items: list[str] = []
        self._bodies: asyncio.Queue[bytes] = asyncio.Queue()
        self._http = httpx.AsyncClient(timeout=10.0, auth=(write_key, ""))
        self._sender: asyncio.Task[None] | None = None
        self.sent_batches = 0
        self.failed_batches = 0

    async def track(
        self, *, user_id: str, event: str, properties: dict[str, Any] | None = None
    ) -> str:
        """Encode one track message and queue it; returns its message id."""
        message_id = str(uuid.uuid4())
        message = {
            "type": "track",
            "messageId": message_id,
            "timestamp": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
            "userId": user_id,
            "event": event,
            "properties": properties or {},
            "context": {"library": LIBRARY},
        }
        self._items.append(json.dumps(message))
        if len(self._items) >= self._batch_size:
            self._hand_over()
        return message_id

    def _hand_over(self) -> None:
        items, self._items = self._items, []
        sent_at = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
        tail = f'],"sentAt":"{sent_at}","writeKey":{json.dumps(self._write_key)}}}'
        body = ('{"batch":[' + ",".join(items) + tail).encode()
        self._bodies.put_nowait(body)
        if self._sender is None:
            self._sender = asyncio.get_running_loop().create_task(self._send_forever())

    async def _send_forever(self) -> None:
        headers = {"Content-Type": "application/json"}
        if self._compress:
            headers["Content-Encoding"] = "gzip"
        while True:
            body = await self._bodies.get()
            try:
                if self._compress:
                    body = gzip.compress(body, compresslevel=6)
                response = await self._http.post(self._url, content=body, headers=headers)
                if response.is_success:
                    self.sent_batches += 1
                else:
                    self.failed_batches += 1
            except httpx.HTTPError:
                self.failed_batches += 1
            finally:
                self._bodies.task_done()

    async def flush(self) -> None:
        """Hand over the partial batch and wait until every batch got an answer."""
        if self._items:
            self._hand_over()
        await self._bodies.join()

    async def aclose(self) -> None:
        """Flush, stop the sender task, close the HTTP client."""
        await self.flush()
        if self._sender is not None:
            self._sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sender
        await self._http.aclose()
