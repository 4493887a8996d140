"""The spool file's format: tables, version, fingerprint, and how a file is opened.

Each process owns one file. ``events`` holds accepted events not yet delivered,
keyed by acceptance sequence; ``lease`` is 1 while the event is also in the
owner's memory, 0 while it waits on disk only (the only rows the partial index
holds, so the common case, an event queued in memory, costs no index update).
``dead_letters`` holds events the collector refused with a final status.
``PRAGMA user_version`` holds the format version.
"""

from __future__ import annotations

import hashlib
import sqlite3
from typing import Literal

__all__ = [
    "FORMAT_VERSION",
    "FutureFormatError",
    "check_version",
    "connect",
    "fingerprint",
    "initialise",
    "read_fingerprint",
]

#: The format this code writes and reads; a file with a larger version is refused.
FORMAT_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    seq        INTEGER PRIMARY KEY,
    body       TEXT NOT NULL,
    created    REAL NOT NULL DEFAULT ((julianday('now') - 2440587.5) * 86400.0),
    attempts   INTEGER NOT NULL DEFAULT 0,
    not_before REAL NOT NULL DEFAULT 0,
    lease      INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS events_waiting ON events (not_before, seq) WHERE lease = 0;
CREATE TABLE IF NOT EXISTS dead_letters (
    id        INTEGER PRIMARY KEY,
    body      TEXT NOT NULL,
    created   REAL NOT NULL,
    failed_at REAL NOT NULL,
    status    INTEGER,
    reason    TEXT NOT NULL
);
"""


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
    conn.execute("BEGIN IMMEDIATE")
    for statement in _SCHEMA.split(";"):
        if statement.strip():
            conn.execute(statement)
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
