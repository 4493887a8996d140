"""User deletion and suppression: the collector's side of ``Client.delete``.

Shaped like Segment's public regulations API:

* ``POST /regulations`` with ``Authorization: Bearer <token>`` and
  ``{"regulationType": ..., "subjectType": "USER_ID", "subjectIds": [...]}`` answers
  ``{"data": {"regulateId": ...}}``. ``SUPPRESS_WITH_DELETE`` removes the users'
  stored messages (memory and database) and drops their later ones;
  ``SUPPRESS_ONLY`` only drops later ones; ``DELETE_ONLY`` only removes.
* ``GET /regulations`` lists the regulations in force.
* ``DELETE /regulations/{regulateId}`` cancels one, which lifts its suppression.

Suppressed messages are answered 200 like any other (the sender did nothing wrong),
counted, and never stored. Regulations live in memory only: a restarted collector
has none, although what they deleted from its database stays deleted.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Final, Protocol

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


def _utc_now_iso() -> str:
    # Not the store's helper: the store imports this module.
    now = datetime.now(timezone.utc)
    return now.isoformat(timespec="milliseconds").replace("+00:00", "Z")


REGULATION_TYPES: Final = frozenset({"SUPPRESS_WITH_DELETE", "SUPPRESS_ONLY", "DELETE_ONLY"})
"""The ``regulationType`` values the collector carries out."""

_SUPPRESSING: Final = frozenset({"SUPPRESS_WITH_DELETE", "SUPPRESS_ONLY"})
_DELETING: Final = frozenset({"SUPPRESS_WITH_DELETE", "DELETE_ONLY"})
_MAX_SUBJECTS: Final = 5_000  # Segment's public API takes up to 5,000 ids per call


@dataclass(frozen=True, slots=True)
class Regulation:
    """One regulation the collector received."""

    regulate_id: str
    """Its id, as answered to the request."""
    regulation_type: str
    """``SUPPRESS_WITH_DELETE``, ``SUPPRESS_ONLY`` or ``DELETE_ONLY``."""
    user_ids: tuple[str, ...]
    """The users it names."""
    created_at: str
    """When it arrived (ISO-8601, UTC)."""
    deleted: int
    """Stored messages it removed."""

    def as_dict(self) -> dict[str, Any]:
        """The regulation as ``GET /regulations`` shows it."""
        return {
            "id": self.regulate_id,
            "regulationType": self.regulation_type,
            "subjectType": "USER_ID",
            "subjectIds": list(self.user_ids),
            "createdAt": self.created_at,
            "deleted": self.deleted,
        }


class Regulations:
    """The regulations in force, and the count of the messages they suppressed."""

    def __init__(self) -> None:
        """Start with no regulation."""
        self._by_id: dict[str, Regulation] = {}
        # user id -> ids of the suppressing regulations naming them; lifted at zero.
        self._suppressing: dict[str, set[str]] = {}
        self.suppressed = 0
        """Messages dropped because their user is suppressed, since start."""

    def __len__(self) -> int:
        return len(self._by_id)

    def all(self) -> list[Regulation]:
        """The regulations in force, oldest first."""
        return list(self._by_id.values())

    def get(self, regulate_id: str) -> Regulation | None:
        """The regulation with this id, if it is in force."""
        return self._by_id.get(regulate_id)

    def is_suppressed(self, user_id: str) -> bool:
        """Whether messages with this ``userId`` are dropped."""
        return user_id in self._suppressing

    def admit(self, messages: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
        """The messages whose user is not suppressed; the others are counted."""
        if not self._suppressing:
            return list(messages)
        kept = []
        for message in messages:
            user_id = message.get("userId")
            if user_id is not None and str(user_id) in self._suppressing:
                self.suppressed += 1
            else:
                kept.append(message)
        return kept

    def add(self, regulation: Regulation) -> None:
        """Put a regulation in force."""
        self._by_id[regulation.regulate_id] = regulation
        if regulation.regulation_type in _SUPPRESSING:
            for user_id in regulation.user_ids:
                self._suppressing.setdefault(user_id, set()).add(regulation.regulate_id)

    def lift(self, regulate_id: str) -> Regulation | None:
        """Cancel a regulation; its users are admitted again unless another one names them."""
        regulation = self._by_id.pop(regulate_id, None)
        if regulation is not None:
            for user_id in regulation.user_ids:
                holders = self._suppressing.get(user_id)
                if holders is not None:
                    holders.discard(regulate_id)
                    if not holders:
                        del self._suppressing[user_id]
        return regulation


class UserEraser(Protocol):
    """Somewhere stored messages can be removed by user, such as the collector's store."""

    def remove_user(self, user_id: str) -> int:
        """Remove the user's messages from memory; return how many."""


class DatabaseEraser(Protocol):
    """A database of messages that can be removed by user, such as ``SqliteLog``."""

    async def delete_user(self, user_id: str) -> int:
        """Delete the user's rows; return how many."""


class _BadRequest(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def _check_token(request: Request, expected: str | None) -> None:
    scheme, _, token = request.headers.get("authorization", "").strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise _BadRequest(401, "missing bearer token")
    if expected is not None and token.strip() != expected:
        raise _BadRequest(401, "invalid token")  # never echo the token


def _parse(raw: bytes) -> tuple[str, tuple[str, ...]]:
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _BadRequest(400, f"body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise _BadRequest(400, "body must be a JSON object")
    kind = body.get("regulationType")
    if kind not in REGULATION_TYPES:
        allowed = ", ".join(sorted(REGULATION_TYPES))
        raise _BadRequest(400, f"regulationType must be one of {allowed}, got {kind!r}")
    if body.get("subjectType") != "USER_ID":
        raise _BadRequest(400, f"subjectType must be USER_ID, got {body.get('subjectType')!r}")
    ids = body.get("subjectIds")
    if (
        not isinstance(ids, list)
        or not 1 <= len(ids) <= _MAX_SUBJECTS
        or not all(isinstance(i, str) and i for i in ids)
    ):
        raise _BadRequest(
            400, f"subjectIds must be a list of 1 to {_MAX_SUBJECTS} non-empty strings"
        )
    return kind, tuple(dict.fromkeys(ids))


def regulation_routes(
    regulations: Regulations,
    store: UserEraser,
    database: DatabaseEraser | None,
    *,
    token: str | None = None,
    lock: asyncio.Lock | None = None,
) -> list[Route]:
    """The ``/regulations`` routes; ``token``, when given, is the only bearer token accepted.

    ``lock`` is the one batches are stored under: a deletion waits for a batch being
    stored, so that none of the user's events lands after it.
    """
    storing = lock or asyncio.Lock()

    def _error(exc: _BadRequest) -> JSONResponse:
        return JSONResponse({"errors": [{"message": exc.reason}]}, status_code=exc.status)

    async def create(request: Request) -> Response:
        try:
            _check_token(request, token)
            kind, user_ids = _parse(await request.body())
        except _BadRequest as exc:
            return _error(exc)
        regulate_id = uuid.uuid4().hex
        created_at = _utc_now_iso()
        deleted = 0
        async with storing:
            if kind in _SUPPRESSING:
                regulations.add(Regulation(regulate_id, kind, user_ids, created_at, 0))
            if kind in _DELETING:
                for user_id in user_ids:
                    removed = store.remove_user(user_id)
                    if database is not None:
                        # The database holds every message, memory only the newest.
                        removed = max(removed, await database.delete_user(user_id))
                    deleted += removed
        # Unless it was cancelled meanwhile, record it again with what it removed.
        if kind not in _SUPPRESSING or regulations.get(regulate_id) is not None:
            regulations.add(Regulation(regulate_id, kind, user_ids, created_at, deleted))
        return JSONResponse({"data": {"regulateId": regulate_id}})

    async def list_all(request: Request) -> Response:
        try:
            _check_token(request, token)
        except _BadRequest as exc:
            return _error(exc)
        return JSONResponse({"data": {"regulations": [r.as_dict() for r in regulations.all()]}})

    async def cancel(request: Request) -> Response:
        try:
            _check_token(request, token)
        except _BadRequest as exc:
            return _error(exc)
        if regulations.lift(request.path_params["regulate_id"]) is None:
            return _error(_BadRequest(404, "no such regulation"))
        return JSONResponse({"data": {"status": "SUCCESS"}})

    return [
        Route("/regulations", create, methods=["POST"]),
        Route("/regulations", list_all, methods=["GET"]),
        Route("/regulations/{regulate_id}", cancel, methods=["DELETE"]),
    ]
