"""Optional persistence of received messages in an SQLite file, off the event loop.

Every database call runs on one dedicated worker thread. One thread keeps SQLite's
"a connection belongs to its thread" rule and, because the executor is FIFO, makes commits
happen in the order requests were accepted, the same order as the sequence numbers.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from os import PathLike
from typing import Any, TypeVar

from ._store import StoredEvent

_T = TypeVar("_T")

_SCHEMA_VERSION = 1
# The message JSON is the source of truth; the other columns exist so that the file is easy
# to query with the sqlite3 shell.
_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    seq          INTEGER PRIMARY KEY,
    received_at  TEXT NOT NULL,
    type         TEXT NOT NULL,
    event        TEXT,
    user_id      TEXT,
    anonymous_id TEXT,
    message      TEXT NOT NULL
)
"""
_INSERT = (
    "INSERT INTO messages (seq, received_at, type, event, user_id, anonymous_id, message)"
    " VALUES (?, ?, ?, ?, ?, ?, ?)"
)


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def _row(event: StoredEvent) -> tuple[object, ...]:
    message = event.message
    return (
        event.seq,
        message["receivedAt"],
        message["type"],
        _text(message.get("event")),
        _text(message.get("userId")),
        _text(message.get("anonymousId")),
        json.dumps(message, ensure_ascii=False, separators=(",", ":")),
    )


class _Database:
    """The synchronous half: only ever touched from the worker thread."""

    def __init__(self, path: str | PathLike[str]) -> None:
        self._conn = sqlite3.connect(path, isolation_level=None)
        try:
            # WAL and synchronous=NORMAL: a commit per request stays cheap, and a crash loses at
            # most the last transactions, never the file.
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            version = self._conn.execute("PRAGMA user_version").fetchone()[0]
            if version not in (0, _SCHEMA_VERSION):
                raise sqlite3.DatabaseError(
                    f"{path}: schema version {version} is not {_SCHEMA_VERSION}"
                )
            self._conn.execute(_SCHEMA)
            self._conn.execute(f"PRAGMA user_version={_SCHEMA_VERSION}")
        except BaseException:
            self._conn.close()
            raise

    def load(self, limit: int) -> tuple[list[StoredEvent], dict[str, int]]:
        rows = self._conn.execute(
            "SELECT seq, message FROM messages ORDER BY seq DESC LIMIT ?", (limit,)
        ).fetchall()
        events = [StoredEvent(seq, json.loads(text)) for seq, text in reversed(rows)]
        counts = dict(
            self._conn.execute("SELECT type, COUNT(*) FROM messages GROUP BY type").fetchall()
        )
        return events, counts

    def append(self, events: Sequence[StoredEvent]) -> None:
        rows = [_row(event) for event in events]
        # One transaction per request: a batch is stored entirely or not at all.
        with self._conn:
            self._conn.execute("BEGIN")
            self._conn.executemany(_INSERT, rows)

    def delete_user(self, user_id: str) -> int:
        with self._conn:
            self._conn.execute("BEGIN")
            cursor = self._conn.execute("DELETE FROM messages WHERE user_id = ?", (user_id,))
        return cursor.rowcount

    def close(self) -> None:
        self._conn.close()


class SqliteLog:
    """An append-only log of stored events in an SQLite file, with an async interface.

    Open it with ``await SqliteLog.open(path)``; close it with ``await log.aclose()``.
    """

    def __init__(self, database: _Database, executor: ThreadPoolExecutor) -> None:
        """Use :meth:`open` instead; this wraps an already opened database."""
        self._database = database
        self._executor = executor

    @classmethod
    async def open(cls, path: str | PathLike[str]) -> SqliteLog:
        """Open (creating if needed) the database at ``path``."""
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="htevents-collector-db")
        loop = asyncio.get_running_loop()
        try:
            database = await loop.run_in_executor(executor, _Database, path)
        except BaseException:
            executor.shutdown(wait=False)
            raise
        return cls(database, executor)

    async def _call(self, func: Callable[..., _T], *args: Any) -> _T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, func, *args)

    async def load(self, limit: int) -> tuple[list[StoredEvent], dict[str, int]]:
        """Return the newest ``limit`` events in arrival order, and the count of every type."""
        return await self._call(self._database.load, limit)

    async def append(self, events: Sequence[StoredEvent]) -> None:
        """Store one request's events in a single transaction."""
        if events:
            await self._call(self._database.append, events)

    async def delete_user(self, user_id: str) -> int:
        """Delete every message whose ``userId`` is ``user_id``; return how many."""
        return await self._call(self._database.delete_user, user_id)

    async def aclose(self) -> None:
        """Close the database once pending writes are done, then let the worker thread end."""
        try:
            await self._call(self._database.close)
        finally:
            self._executor.shutdown(wait=False)
