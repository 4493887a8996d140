"""The collector's HTTP surface, as a Starlette application.

Routes:

* ``POST /v1/batch``: accept a batch (gzip or plain JSON), 200 ``{"success": true}``;
  401 without a valid write key; 415 unless ``Content-Type: application/json``; 400 with
  ``{"success": false, "error": ...}`` otherwise; 500 if the sink could not store it.
* ``POST /batch/`` (PostHog) and ``POST /v3/events`` (Optimizely Data Platform): the
  same, for those protocols (see :mod:`._protocols`).
* ``GET /v1/events``: stored messages, newest first, filtered by ``type``, ``user_id`` and
  ``event`` (case-insensitive substrings), ``after`` and ``before`` (sequence numbers,
  exclusive) and ``limit``.
* ``GET /stats``: the counters and limits of :class:`CollectorStats`.
* ``GET /``: the live event viewer; ``GET /favicon.svg`` (also as ``/favicon.ico``) its icon.
* ``POST /regulations``, ``GET /regulations``, ``DELETE /regulations/{id}``: user
  deletion and suppression (see :mod:`._regulations`).

Every route answers 403 to a ``Host`` header naming something other than this machine
(see :mod:`._guard`).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Iterable, Sequence
from importlib import resources
from typing import Any, Final, Protocol

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from ._guard import HostGuard, HostPolicy, is_json_media_type
from ._ingest import (
    MESSAGE_TYPES,
    IngestError,
    check_write_key,
    decompress,
    key_from_authorization,
    parse_body,
    validate_batch,
)
from ._protocols import PROTOCOL_ROUTES, Ingest
from ._regulations import DatabaseEraser, regulation_routes
from ._store import EventStore, RequestRecord, StoredEvent, utc_now_iso

MAX_BODY_BYTES: Final = 512 * 1024
"""Default cap on a batch body, compressed or not: above the client's 475,000 byte batches."""

DEFAULT_EVENTS_LIMIT: Final = 100
MAX_EVENTS_LIMIT: Final = 1_000

logger = logging.getLogger("htevents_async.collector")


class EventSink(Protocol):
    """Somewhere accepted events are written before they are shown, such as :class:`SqliteLog`."""

    async def append(self, events: Sequence[StoredEvent]) -> None:
        """Durably store one request's events.

        Raising makes the request fail with 500 and leaves the store as it was.
        """


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


class _AsciiJSONResponse(JSONResponse):
    # Starlette writes raw UTF-8, which cannot carry a lone surrogate that a client sent
    # as "\ud800"; escaping everything non-ASCII keeps such strings lossless.
    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, separators=(",", ":")).encode("ascii")


def _error(exc: IngestError) -> JSONResponse:
    return JSONResponse({"success": False, "error": exc.reason}, status_code=exc.status)


def _resource(name: str) -> str:
    return resources.files(__name__.rpartition(".")[0]).joinpath(name).read_text(encoding="utf-8")


def create_app(
    store: EventStore,
    *,
    write_key: str | None = None,
    sink: EventSink | None = None,
    max_body_bytes: int = MAX_BODY_BYTES,
    bound_host: str = "127.0.0.1",
    allowed_hosts: Iterable[str] = (),
    regulations_token: str | None = None,
    database: DatabaseEraser | None = None,
) -> Starlette:
    """Build the collector application around ``store``.

    ``write_key``, when given, is the only key accepted; otherwise any non-empty key is.
    ``sink`` receives every accepted batch before it is shown and before the client gets
    its 200. Retention and deduplication are the ``store``'s settings. Requests are served
    only for a loopback ``Host``, ``bound_host`` (the address the server listens on) and
    ``allowed_hosts``. ``regulations_token``, when given, is the only bearer token
    ``/regulations`` accepts; a deletion also removes the user's rows from ``database``.
    """
    viewer = _resource("viewer.html")
    favicon = _resource("favicon.svg")
    # Numbering, the sink's write and showing happen under one lock, so that batches become
    # visible in sequence order and a failed write can give its numbers back.
    storing = asyncio.Lock()

    def segment_ingest(headers: dict[str, str], decoded: bytes) -> tuple[Any, list[dict[str, Any]]]:
        body = parse_body(decoded)
        try:
            check_write_key(key_from_authorization(headers.get("authorization")), body, write_key)
            return body, validate_batch(body)
        except IngestError as exc:
            exc.body = body
            raise

    def make_post(ingest: Ingest, accepted_answer: Callable[[], Response]) -> Any:
        async def post(request: Request) -> Response:
            return await post_batch(request, ingest, accepted_answer)

        return post

    async def post_batch(
        request: Request, ingest: Ingest, accepted_answer: Callable[[], Response]
    ) -> Response:
        received_at = utc_now_iso()
        headers = _headers(request)
        raw = bytearray()
        size = 0
        body: Any = None
        was_gzip = False
        try:
            # Keep reading past the cap, discarding, so that the client sees the 400
            # instead of a connection reset in the middle of its upload.
            async for chunk in request.stream():
                size += len(chunk)
                if size <= max_body_bytes:
                    raw += chunk
            if not is_json_media_type(headers.get("content-type")):
                # Anything else is what a web page may POST cross-site without a preflight.
                raise IngestError(
                    415,
                    f"Content-Type must be application/json, got {headers.get('content-type')!r}",
                )
            if size > max_body_bytes:
                raise IngestError(
                    400, f"body is {size} bytes, over the {max_body_bytes} byte limit"
                )
            decoded, was_gzip = decompress(
                bytes(raw), headers.get("content-encoding"), max_bytes=max_body_bytes
            )
            body, messages = ingest(headers, decoded)
        except IngestError as exc:
            body = exc.body if body is None else body
            store.add_request(
                RequestRecord(received_at, headers, was_gzip, size, body, exc.status, exc.reason)
            )
            return _error(exc)

        answer = accepted_answer()
        status, error = answer.status_code, None
        accepted: list[StoredEvent] = []
        async with storing:
            prepared = store.prepare(messages, received_at, len(decoded))
            try:
                if sink is not None:
                    await sink.append(prepared.events)
            except Exception:
                logger.exception("could not persist %d messages", len(prepared.events))
                status, error = 500, "could not persist the batch"
            else:
                accepted = store.commit(prepared)
        store.add_request(
            RequestRecord(received_at, headers, was_gzip, size, body, status, error), accepted
        )
        if error is not None:
            return JSONResponse({"success": False, "error": error}, status_code=status)
        return answer

    async def get_events(request: Request) -> Response:
        params = request.query_params
        try:
            kind = params.get("type") or None
            if kind is not None and kind not in MESSAGE_TYPES:
                raise IngestError(400, f"type must be one of {', '.join(sorted(MESSAGE_TYPES))}")
            after = _int_param(request, "after", 0, 2**63 - 1)
            before = _int_param(request, "before", 0, 2**63 - 1) or None
            limit = _int_param(request, "limit", DEFAULT_EVENTS_LIMIT, MAX_EVENTS_LIMIT)
        except IngestError as exc:
            return _error(exc)
        found = store.events(
            type=kind,
            user_id=params.get("user_id") or None,
            event=params.get("event") or None,
            after=after,
            before=before,
            limit=limit,
            newest_first=True,
            contains=True,
        )
        return _AsciiJSONResponse(
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

    async def get_favicon(request: Request) -> Response:
        return Response(
            favicon, media_type="image/svg+xml", headers={"Cache-Control": "max-age=86400"}
        )

    return Starlette(
        routes=[
            Route(
                "/v1/batch",
                make_post(segment_ingest, lambda: JSONResponse({"success": True})),
                methods=["POST"],
            ),
            *(
                Route(path, make_post(factory(write_key), answer), methods=["POST"])
                for path, factory, answer in PROTOCOL_ROUTES
            ),
            Route("/v1/events", get_events, methods=["GET"]),
            Route("/stats", get_stats, methods=["GET"]),
            Route("/", get_viewer, methods=["GET"]),
            Route("/favicon.svg", get_favicon, methods=["GET"]),
            Route("/favicon.ico", get_favicon, methods=["GET"]),
            *regulation_routes(
                store.regulations, store, database, token=regulations_token, lock=storing
            ),
        ],
        middleware=[Middleware(HostGuard, policy=HostPolicy(bound_host, allowed_hosts))],
    )
