"""The collector's HTTP surface, as a Starlette application.

Routes:

* ``POST /v1/batch``: accept a batch (gzip or plain JSON), 200 ``{"success": true}``;
  401 without a valid write key; 400 with ``{"success": false, "error": ...}`` otherwise.
* ``GET /v1/events``: stored messages, newest first, filtered by ``type``, ``user_id``,
  ``event``, ``after`` (a sequence number) and ``limit``.
* ``GET /stats``: the counters of :class:`CollectorStats`.
* ``POST /regulations``, ``GET /regulations``, ``DELETE /regulations/{id}``: user
  deletion and suppression (see ``_regulations``).
* ``GET /``: the live event viewer.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from importlib import resources
from typing import Any, Final, Protocol

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from ._ingest import (
    MESSAGE_TYPES,
    IngestError,
    check_write_key,
    decompress,
    key_from_authorization,
    parse_body,
    validate_batch,
)
from ._regulations import DatabaseEraser, regulation_routes
from ._store import EventStore, RequestRecord, StoredEvent, utc_now_iso

MAX_BODY_BYTES: Final = 512 * 1024
"""Default cap on a batch body, compressed or not: above the client's 475,000 byte batches."""

DEFAULT_EVENTS_LIMIT: Final = 100
MAX_EVENTS_LIMIT: Final = 1_000

logger = logging.getLogger("htevents_async.collector")


class EventSink(Protocol):
    """Somewhere accepted events are also written, such as :class:`SqliteLog`."""

    async def append(self, events: Sequence[StoredEvent]) -> None:
        """Durably store one request's events; raising makes the request fail with 500."""


def _headers(request: Request) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name, value in request.headers.items():
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return headers


def _int_param(request: Request, name: str, default: int, maximum: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise IngestError(400, f"{name} must be an integer, got {raw!r}") from None
    if not 0 <= value <= maximum:
        raise IngestError(400, f"{name} must be between 0 and {maximum}, got {value}")
    return value


def _error(exc: IngestError) -> JSONResponse:
    return JSONResponse({"success": False, "error": exc.reason}, status_code=exc.status)


def _viewer_html() -> str:
    return (
        resources.files(__name__.rpartition(".")[0])
        .joinpath("viewer.html")
        .read_text(encoding="utf-8")
    )


def create_app(
    store: EventStore,
    *,
    write_key: str | None = None,
    sink: EventSink | None = None,
    max_body_bytes: int = MAX_BODY_BYTES,
    regulations_token: str | None = None,
    database: DatabaseEraser | None = None,
) -> Starlette:
    """Build the collector application around ``store``.

    ``write_key``, when given, is the only key accepted; otherwise any non-empty key is.
    ``sink`` receives every accepted batch before the client gets its 200.
    ``regulations_token``, when given, is the only bearer token ``/regulations`` accepts;
    a deletion also removes the user's rows from ``database``.
    """
    viewer = _viewer_html()

    async def post_batch(request: Request) -> Response:
        received_at = utc_now_iso()
        headers = _headers(request)
        raw = bytearray()
        size = 0
        body: dict[str, Any] | None = None
        was_gzip = False
        try:
            # Keep reading past the cap, discarding, so that the client sees the 400
            # instead of a connection reset in the middle of its upload.
            async for chunk in request.stream():
                size += len(chunk)
                if size <= max_body_bytes:
                    raw += chunk
            if size > max_body_bytes:
                raise IngestError(
                    400, f"body is {size} bytes, over the {max_body_bytes} byte limit"
                )
            header_key = key_from_authorization(headers.get("authorization"))
            decoded, was_gzip = decompress(
                bytes(raw), headers.get("content-encoding"), max_bytes=max_body_bytes
            )
            body = parse_body(decoded)
            check_write_key(header_key, body, write_key)
            messages = validate_batch(body)
        except IngestError as exc:
            store.add_request(
                RequestRecord(received_at, headers, was_gzip, size, body, exc.status, exc.reason)
            )
            return _error(exc)

        accepted = store.add_messages(messages, received_at)
        status, error = 200, None
        if sink is not None:
            try:
                await sink.append(accepted)
            except Exception:
                logger.exception("could not persist %d messages", len(accepted))
                status, error = 500, "could not persist the batch"
        store.add_request(
            RequestRecord(received_at, headers, was_gzip, size, body, status, error),
            accepted if status == 200 else (),
        )
        if error is not None:
            return JSONResponse({"success": False, "error": error}, status_code=status)
        return JSONResponse({"success": True})

    async def get_events(request: Request) -> Response:
        params = request.query_params
        try:
            kind = params.get("type") or None
            if kind is not None and kind not in MESSAGE_TYPES:
                raise IngestError(400, f"type must be one of {', '.join(sorted(MESSAGE_TYPES))}")
            after = _int_param(request, "after", 0, 2**63 - 1)
            limit = _int_param(request, "limit", DEFAULT_EVENTS_LIMIT, MAX_EVENTS_LIMIT)
        except IngestError as exc:
            return _error(exc)
        found = store.events(
            type=kind,
            user_id=params.get("user_id") or None,
            event=params.get("event") or None,
            after=after,
            limit=limit,
            newest_first=True,
        )
        return JSONResponse(
            {
                "events": [{"seq": e.seq, "message": e.message} for e in found],
                # The viewer polls with after=cursor: everything up to it has been seen,
                # whether or not it matched the filters.
                "cursor": store.last_seq,
            }
        )

    async def get_stats(request: Request) -> Response:
        return JSONResponse(store.stats().as_dict())

    async def get_viewer(request: Request) -> Response:
        return HTMLResponse(viewer, headers={"Cache-Control": "no-store"})

    return Starlette(
        routes=[
            Route("/v1/batch", post_batch, methods=["POST"]),
            Route("/v1/events", get_events, methods=["GET"]),
            Route("/stats", get_stats, methods=["GET"]),
            Route("/", get_viewer, methods=["GET"]),
            *regulation_routes(store.regulations, store, database, token=regulations_token),
        ]
    )
