"""The durable spool: accepted events kept in SQLite until delivered (``Config.spool``)."""

from ._store import SqliteStore as SqliteStore

__all__ = ["SqliteStore"]
