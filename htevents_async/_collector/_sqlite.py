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

from ._store import StoredEvent, encode_message

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
    if value is None:
        return None
    # These columns are conveniences for the sqlite3 shell; SQLite needs valid UTF-8, so a
    # lone surrogate is written as its escape. The message column keeps it exactly.
    return str(value).encode("utf-8", "backslashreplace").decode("utf-8")


def _row(event: StoredEvent) -> tuple[object, ...]:
    message = event.message
    return (
        event.seq,
        message["receivedAt"],
        message["type"],
        _text(message.get("event")),
        _text(message.get("userId")),
        _text(message.get("anonymousId")),
        encode_message(message),
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

    def load(self, limit: int, max_bytes: int) -> tuple[list[StoredEvent], dict[str, int]]:
        cursor = self._conn.execute(
            "SELECT seq, message FROM messages ORDER BY seq DESC LIMIT ?", (limit,)
        )
        newest: list[StoredEvent] = []
        total = 0
        for seq, text in cursor:
            total += len(text)
            if total > max_bytes:
                break
            newest.append(StoredEvent(seq, json.loads(text), len(text)))
        cursor.close()
        counts = dict(
            self._conn.execute("SELECT type, COUNT(*) FROM messages GROUP BY type").fetchall()
        )
        newest.reverse()
        return newest, counts

    def last_seq(self) -> int:
        row = self._conn.execute("SELECT MAX(seq) FROM messages").fetchone()
        return int(row[0] or 0)

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

    async def load(self, limit: int, max_bytes: int) -> tuple[list[StoredEvent], dict[str, int]]:
        """Return the newest events within ``limit`` and ``max_bytes`` in arrival order,
        and the count of every type."""
        return await self._call(self._database.load, limit, max_bytes)

    async def last_seq(self) -> int:
        """The highest stored sequence number, 0 for an empty file."""
        return await self._call(self._database.last_seq)

    async def append(self, events: Sequence[StoredEvent]) -> None:
        """Store one request's events in a single transaction, in the worker thread."""
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
