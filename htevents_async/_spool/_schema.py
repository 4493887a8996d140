"""The spool file's format: tables, version, fingerprint, and how a file is opened.

Each process owns one file. Events are stored one row per commit group:

* ``groups`` has a row for the events accepted between two commits, sequences
  ``first`` to ``last`` (consecutive); ``live`` counts those not yet acknowledged,
  and a group reaching 0 is deleted. Their text is in ``bodies`` under the same
  ``first``: the encoded events back to back (``body``) and their lengths
  (``lengths``, little-endian 32-bit integers). Apart, so that counting down
  ``live`` never rewrites the text.
* ``acks`` holds acknowledged sequence ranges (delivered, or moved to
  ``dead_letters``), only while a group they fall in still exists.

So the writer inserts one row per group, not one per event, and records a
delivered batch as one range. An event is waiting when its group exists and no
``acks`` range covers it. ``dead_letters`` holds events the collector refused
with a final status. ``PRAGMA user_version`` holds the format version; files of
version 1 (one row per event) are upgraded in place by :func:`upgrade`.
"""

from __future__ import annotations

import hashlib
import itertools
import sqlite3
import struct
from collections.abc import Iterable, Iterator, Sequence
from typing import Literal

__all__ = [
    "FORMAT_VERSION",
    "FutureFormatError",
    "append_group",
    "check_version",
    "connect",
    "fingerprint",
    "initialise",
    "pack",
    "read_fingerprint",
    "subtract",
    "unpack",
    "upgrade",
    "waiting_events",
    "waiting_spans",
    "waiting_summary",
]

#: The format this code writes and reads; a file with a larger version is refused.
FORMAT_VERSION = 2

# The group holding a sequence is the one with the largest first at or below it.
_OVERLAPPING = (
    "first BETWEEN COALESCE((SELECT MAX(first) FROM groups WHERE first <= new.lo), new.lo)"
    " AND new.hi AND last >= new.lo"
)

# The writer's work per commit is done by triggers, so that it takes few statements (each
# one hands the GIL back and forth with the event loop): one insert into ``new_groups``
# writes a group, one insert into ``acks`` per range records deliveries.
_TABLES = (
    "CREATE TABLE IF NOT EXISTS {s}.meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS {s}.groups ("
    " first INTEGER PRIMARY KEY, last INTEGER NOT NULL, live INTEGER NOT NULL,"
    " created REAL NOT NULL)",
    "CREATE TABLE IF NOT EXISTS {s}.bodies ("
    " first INTEGER PRIMARY KEY, lengths BLOB NOT NULL, body TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS {s}.acks (lo INTEGER PRIMARY KEY, hi INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS {s}.dead_letters ("
    " id INTEGER PRIMARY KEY, body TEXT NOT NULL, created REAL NOT NULL,"
    " failed_at REAL NOT NULL, status INTEGER, reason TEXT NOT NULL)",
    "CREATE VIEW IF NOT EXISTS {s}.new_groups AS"
    " SELECT first, last, live, created, lengths, body FROM groups JOIN bodies USING (first)",
    "CREATE TRIGGER IF NOT EXISTS {s}.group_added INSTEAD OF INSERT ON new_groups BEGIN"
    " INSERT INTO groups VALUES (new.first, new.last, new.live, new.created);"
    " INSERT INTO bodies VALUES (new.first, new.lengths, new.body);"
    " END",
    # An acknowledged range counts down the groups it falls in (acks copied from another
    # file go in before its groups, so they count nothing twice).
    "CREATE TRIGGER IF NOT EXISTS {s}.acked AFTER INSERT ON acks BEGIN"
    " UPDATE groups SET live = live - (MIN(last, new.hi) - MAX(first, new.lo) + 1)"
    f" WHERE {_OVERLAPPING};"
    " END",
    # A group with nothing left to deliver goes, text and all, with the ranges below
    # every group left.
    "CREATE TRIGGER IF NOT EXISTS {s}.group_done AFTER UPDATE OF live ON groups"
    " WHEN new.live <= 0 BEGIN"
    " DELETE FROM bodies WHERE first = new.first; DELETE FROM groups WHERE first = new.first;"
    " DELETE FROM acks WHERE hi < COALESCE((SELECT MIN(first) FROM groups), 1 << 62);"
    " END",
)

#: Events per group when a version 1 file is regrouped.
_UPGRADE_GROUP = 1_000


class FutureFormatError(Exception):
    """The file was written by a newer format version than this code reads."""


def fingerprint(protocol: str, url: str, write_key: str) -> dict[str, str]:
    """What the stored text is for: the wire protocol it was encoded for, the URL and a hash
    of the write key (never the key). Only a client with the same three adopts a file."""
    return {
        "protocol": protocol,
        "url": url,
        "key_sha256": hashlib.sha256(write_key.encode()).hexdigest()[:16],
    }


def connect(path: str, *, create: bool, read_only: bool = False) -> sqlite3.Connection:
    """Open ``path`` in autocommit mode (transactions are explicit); never creates it
    unless ``create``."""
    mode = "ro" if read_only else ("rwc" if create else "rw")
    conn = sqlite3.connect(
        f"file:{path}?mode={mode}", uri=True, isolation_level=None, check_same_thread=False
    )
    conn.execute("PRAGMA busy_timeout=5000")
    return conn


def check_version(version: int, path: str) -> None:
    """Raise :class:`FutureFormatError` if ``version`` is newer than this code reads."""
    if version > FORMAT_VERSION:
        raise FutureFormatError(
            f"{path} was written in spool format version {version}; this version of "
            f"htevents-async reads versions up to {FORMAT_VERSION}: upgrade to drain it"
        )


def initialise(
    conn: sqlite3.Connection,
    path: str,
    prints: dict[str, str],
    synchronous: Literal["normal", "full"],
) -> None:
    """Set the pragmas and create the tables of a new file of ours."""
    check_version(conn.execute("PRAGMA user_version").fetchone()[0], path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous.upper()}")
    # Some builds (Debian's) zero every freed page: for a spool, where each group is
    # deleted once delivered, that doubled the bytes written and the writer's CPU time.
    # Delivered text may then linger in free pages until they are reused.
    conn.execute("PRAGMA secure_delete=OFF")
    conn.execute("BEGIN IMMEDIATE")
    for statement in _TABLES:
        conn.execute(statement.format(s="main"))
    conn.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", prints.items())
    conn.execute(f"PRAGMA user_version={FORMAT_VERSION}")
    conn.execute("COMMIT")


def read_fingerprint(conn: sqlite3.Connection) -> dict[str, str]:
    """The fingerprint stored in a spool file (empty if it has none)."""
    try:
        rows = conn.execute("SELECT key, value FROM meta").fetchall()
    except sqlite3.OperationalError:
        return {}
    return {str(key): str(value) for key, value in rows}


# -- groups --------------------------------------------------------------------------


def pack(texts: Sequence[str]) -> tuple[bytes, str]:
    """``(lengths, body)`` of a group: the texts back to back, and each one's length."""
    return struct.pack(f"<{len(texts)}i", *map(len, texts)), "".join(texts)


def unpack(lengths: bytes, body: str) -> list[str]:
    """The texts of a group, in sequence order."""
    ends = itertools.accumulate(struct.unpack(f"<{len(lengths) // 4}i", lengths))
    texts = []
    start = 0
    for end in ends:
        texts.append(body[start:end])
        start = end
    return texts


def subtract(
    spans: Iterable[tuple[int, int]], acked: Iterable[tuple[int, int]]
) -> Iterator[tuple[int, int]]:
    """The parts of sorted, disjoint ``spans`` that no sorted, disjoint ``acked`` range covers."""
    pending = iter(acked)
    ack = next(pending, None)
    for lo, hi in spans:
        while lo <= hi:
            while ack is not None and ack[1] < lo:
                ack = next(pending, None)
            if ack is None or ack[0] > hi:
                yield lo, hi
                break
            if ack[0] > lo:
                yield lo, ack[0] - 1
            lo = ack[1] + 1


def waiting_spans(conn: sqlite3.Connection, schema: str = "main") -> list[tuple[int, int]]:
    """The sequence ranges of a file's events not yet acknowledged, in order."""
    spans = conn.execute(f"SELECT first, last FROM {schema}.groups ORDER BY first").fetchall()
    acked = conn.execute(f"SELECT lo, hi FROM {schema}.acks ORDER BY lo").fetchall()
    return list(subtract(spans, acked))


def waiting_events(conn: sqlite3.Connection) -> Iterator[tuple[int, str, float]]:
    """``(seq, text, created)`` of every event of a (format 2) file not yet acknowledged."""
    acked = conn.execute("SELECT lo, hi FROM acks ORDER BY lo").fetchall()
    for first, last, created, lengths, body in conn.execute(
        "SELECT first, last, created, lengths, body FROM groups JOIN bodies USING (first) "
        "ORDER BY first"
    ).fetchall():
        texts = unpack(lengths, body)
        for lo, hi in subtract([(first, last)], acked):
            for seq in range(lo, hi + 1):
                yield seq, texts[seq - first], created


def waiting_summary(conn: sqlite3.Connection) -> tuple[int, float | None]:
    """How many events a file of this or an older format holds, and the oldest one's
    acceptance time."""
    if conn.execute("PRAGMA user_version").fetchone()[0] < 2:
        count, oldest = conn.execute("SELECT COUNT(*), MIN(created) FROM events").fetchone()
        return int(count), oldest
    count, oldest = conn.execute("SELECT TOTAL(live), MIN(created) FROM groups").fetchone()
    return int(count), oldest


def append_group(
    conn: sqlite3.Connection, texts: Sequence[str], created: float, schema: str = "main"
) -> tuple[int, int]:
    """Add ``texts`` as a group after every sequence in use; returns its range."""
    if not texts:
        return 0, -1
    top = conn.execute(
        f"SELECT MAX(COALESCE((SELECT MAX(last) FROM {schema}.groups), 0),"
        f" COALESCE((SELECT MAX(hi) FROM {schema}.acks), 0))"
    ).fetchone()[0]
    first, last = top + 1, top + len(texts)
    lengths, body = pack(texts)
    conn.execute(
        f"INSERT INTO {schema}.groups (first, last, live, created) VALUES (?, ?, ?, ?)",
        (first, last, len(texts), created),
    )
    conn.execute(
        f"INSERT INTO {schema}.bodies (first, lengths, body) VALUES (?, ?, ?)",
        (first, lengths, body),
    )
    return first, last


def upgrade(conn: sqlite3.Connection, schema: str = "main") -> None:
    """Rewrite a format 1 file (one row per event) to this format, inside the caller's
    transaction; the events keep their order."""
    version = conn.execute(f"PRAGMA {schema}.user_version").fetchone()[0]
    if version >= FORMAT_VERSION:
        return
    for statement in _TABLES:
        conn.execute(statement.format(s=schema))
    tables = {row[0] for row in conn.execute(f"SELECT name FROM {schema}.sqlite_master")}
    if "events" in tables:
        rows = conn.execute(f"SELECT body, created FROM {schema}.events ORDER BY seq")
        while True:
            chunk = rows.fetchmany(_UPGRADE_GROUP)
            if not chunk:
                break
            append_group(conn, [body for body, _ in chunk], min(c for _, c in chunk), schema)
        conn.execute(f"DROP TABLE {schema}.events")
    conn.execute(f"PRAGMA {schema}.user_version={FORMAT_VERSION}")
