"""The collector's PostHog (``POST /batch/``) and ODP (``POST /v3/events``) endpoints.

Each checks its API's authentication and body shape, then stores every event as a
message the viewer and ``GET /v1/events`` understand: the event's own fields, plus
``protocol``, a Segment-style ``type`` (``$identify`` is ``identify``, an ODP
``identified`` action too, anything else ``track``…), ``messageId`` (PostHog's
``uuid``, ODP's ``data.idempotence_id``, the deduplication key), ``userId`` and ``event``.
The request record keeps the body exactly as it came.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Final

from starlette.responses import JSONResponse, Response

from ._ingest import IngestError
from ._store import utc_now_iso

__all__ = ["PROTOCOL_ROUTES", "Ingest"]

#: Parses a decoded body and returns it with the messages to store, or raises IngestError.
Ingest = Callable[[dict[str, str], bytes], tuple[Any, list[dict[str, Any]]]]

_POSTHOG_TYPES: Final = {
    "$identify": "identify",
    "$create_alias": "alias",
    "$groupidentify": "group",
    "$pageview": "page",
    "$screen": "screen",
}
_ODP_TYPES: Final = {"identified": "identify", "pageview": "page", "screenview": "screen"}


def _json(decoded: bytes) -> Any:
    try:
        return json.loads(decoded)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise IngestError(400, f"body is not valid JSON: {exc}") from None


def _refuse(status: int, reason: str, body: Any) -> IngestError:
    error = IngestError(status, reason)
    error.body = body
    return error


def _check_key(presented: object, expected: str | None, body: Any) -> None:
    if not isinstance(presented, str) or not presented:
        raise _refuse(401, "missing API key", body)
    if expected is not None and presented != expected:
        raise _refuse(401, "invalid API key", body)


def posthog_ingest(write_key: str | None) -> Ingest:
    """``{"api_key": …, "batch": [{"event", "distinct_id", "properties", …}], …}``."""

    def ingest(headers: dict[str, str], decoded: bytes) -> tuple[Any, list[dict[str, Any]]]:
        body = _json(decoded)
        if not isinstance(body, dict):
            raise _refuse(400, "body must be a JSON object", body)
        _check_key(body.get("api_key"), write_key, body)
        batch = body.get("batch")
        if not isinstance(batch, list):
            raise _refuse(400, f"batch must be a list, got {type(batch).__name__}", body)
        messages = []
        for index, event in enumerate(batch):
            where = f"batch[{index}]"
            if not isinstance(event, dict):
                raise _refuse(400, f"{where} must be an object", body)
            name, distinct_id = event.get("event"), event.get("distinct_id")
            if not isinstance(name, str) or not name:
                raise _refuse(400, f"{where}.event must be a non-empty string", body)
            if not isinstance(distinct_id, (str, int)) or distinct_id == "":
                raise _refuse(400, f"{where}.distinct_id is required", body)
            messages.append(
                {
                    **event,
                    "protocol": "posthog",
                    "type": _POSTHOG_TYPES.get(name, "track"),
                    "messageId": event.get("uuid"),
                    "userId": str(distinct_id),
                }
            )
        return body, messages

    return ingest


def odp_ingest(write_key: str | None) -> Ingest:
    """``[{"type", "action", "identifiers": {…}, "data": {…}}]`` with ``x-api-key``."""

    def ingest(headers: dict[str, str], decoded: bytes) -> tuple[Any, list[dict[str, Any]]]:
        body = _json(decoded)
        _check_key(headers.get("x-api-key"), write_key, body)
        if not isinstance(body, list):
            raise _refuse(400, "body must be a JSON array of events", body)
        messages = []
        for index, event in enumerate(body):
            where = f"[{index}]"
            if not isinstance(event, dict):
                raise _refuse(400, f"{where} must be an object", body)
            action, identifiers = event.get("action"), event.get("identifiers")
            data = event.get("data", {})
            if not isinstance(event.get("type"), str) or not event["type"]:
                raise _refuse(400, f"{where}.type must be a non-empty string", body)
            if not isinstance(action, str) or not action:
                raise _refuse(400, f"{where}.action must be a non-empty string", body)
            if (
                not isinstance(identifiers, dict)
                or not identifiers
                or not all(isinstance(v, str) for v in identifiers.values())
            ):
                raise _refuse(400, f"{where}.identifiers must map names to strings", body)
            if not isinstance(data, dict) or any(
                isinstance(v, (dict, list)) for v in data.values()
            ):
                reason = f"{where}.data values must be strings, numbers or booleans"
                raise _refuse(400, reason, body)
            user = identifiers.get("fs_user_id") or next(iter(identifiers.values()))
            messages.append(
                {
                    "protocol": "odp",
                    "type": _ODP_TYPES.get(action, "track"),
                    "messageId": data.get("idempotence_id"),
                    "userId": user,
                    "event": action,
                    "odpType": event["type"],
                    "identifiers": identifiers,
                    "data": data,
                }
            )
        return body, messages

    return ingest


def _posthog_answer() -> Response:
    return JSONResponse({"status": 1})


def _odp_answer() -> Response:
    return JSONResponse(
        {"title": "Accepted", "status": 202, "timestamp": utc_now_iso()}, status_code=202
    )


#: ``(path, ingest factory taking the expected key, accepted answer)`` per protocol.
PROTOCOL_ROUTES: Final[
    tuple[tuple[str, Callable[[str | None], Ingest], Callable[[], Response]], ...]
] = (
    ("/batch/", posthog_ingest, _posthog_answer),
    ("/v3/events", odp_ingest, _odp_answer),
)
