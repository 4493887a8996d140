"""``htevents-async spool``: look into a spool directory, drain it, list and replay dead letters.

Every subcommand honours the ownership locks: ``status`` and ``dead-letters`` only
read (files held by live processes included), while ``drain`` and ``replay`` touch
only files no live process holds, and leave files of another protocol, collector or write key
alone (``replay`` re-targets the files it replays to ``--host``/``--write-key``).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import importlib
import json
import os
import sqlite3
import sys
from typing import Any

from .._config import DEFAULT_HOST
from .._spool._adopt import ASIDE, spool_files
from .._spool._locks import lock_path, try_lock
from .._spool._schema import (
    append_group,
    check_version,
    connect,
    fingerprint,
    read_fingerprint,
    upgrade,
    waiting_summary,
)

__all__ = ["DESCRIPTION", "add_arguments", "run"]

DESCRIPTION = (
    "Look into a spool directory (Client(spool=DIR)), deliver what dead processes left "
    "there, list dead letters and send them again."
)

#: Exit statuses: everything done; something left (undelivered, unreadable or skipped).
OK, INCOMPLETE = 0, 1


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``status | drain | dead-letters | replay`` subcommands to ``parser``."""
    commands = parser.add_subparsers(dest="spool_command", required=True, metavar="COMMAND")
    status = commands.add_parser(
        "status", help="files, events waiting, oldest event, size and dead letters"
    )
    status.add_argument("directory", help="the spool directory (Config.spool)")
    for name, summary in (
        ("drain", "deliver the events of files no live process holds, with a progress bar"),
        ("replay", "send the dead letters of files no live process holds again"),
    ):
        command = commands.add_parser(name, help=summary)
        command.add_argument("directory", help="the spool directory (Config.spool)")
        command.add_argument(
            "--host",
            default=os.environ.get("HT_HOST") or DEFAULT_HOST,
            help="collector scheme and authority (default: $HT_HOST, else Hightouch US)",
        )
        command.add_argument(
            "--protocol",
            choices=("segment", "posthog", "odp"),
            default="segment",
            help="the wire protocol the spooled events were encoded for (default: segment)",
        )
        command.add_argument(
            "--path", default=None, help="batch endpoint path (default: the protocol's)"
        )
        command.add_argument(
            "--write-key",
            default=os.environ.get("HT_WRITE_KEY"),
            help="the write key (default: $HT_WRITE_KEY)",
        )
        command.add_argument(
            "--timeout", type=float, default=300.0, help="seconds to keep trying (default 300)"
        )
        command.add_argument("--no-progress", action="store_true", help="no progress bar")
    letters = commands.add_parser("dead-letters", help="list dead letters as NDJSON")
    letters.add_argument("directory", help="the spool directory (Config.spool)")


def run(args: argparse.Namespace) -> int:
    """Run the subcommand ``args`` names; returns the exit status."""
    command = args.spool_command
    if command == "status":
        return _status(args.directory)
    if command == "dead-letters":
        return _dead_letters(args.directory)
    if not args.write_key:
        print("htevents-async spool: --write-key (or $HT_WRITE_KEY) is required", file=sys.stderr)
        return 2
    if command == "replay":
        moved, skipped = _requeue_dead_letters(args)
        print(f"{moved} dead letters queued again", file=sys.stderr)
        status = asyncio.run(_drain(args))
        return INCOMPLETE if skipped else status
    return asyncio.run(_drain(args))


def _iso(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    return dt.datetime.fromtimestamp(seconds, dt.timezone.utc).isoformat(timespec="seconds")


def _size(path: str) -> int:
    return sum(os.path.getsize(path + s) for s in ("", "-wal") if os.path.exists(path + s))


def _is_live(path: str) -> bool:
    lock = try_lock(lock_path(path))
    if lock is None:
        return True
    lock.release()
    return False


def _status(directory: str) -> int:
    files = spool_files(directory)
    total_events = total_dead = 0
    status = OK
    for path in files:
        owner = "live" if _is_live(path) else "unowned"
        try:
            conn = connect(path, create=False, read_only=True)
            try:
                check_version(conn.execute("PRAGMA user_version").fetchone()[0], path)
                events, oldest = waiting_summary(conn)
                dead = conn.execute("SELECT COUNT(*) FROM dead_letters").fetchone()[0]
            finally:
                conn.close()
        except Exception as exc:  # corrupt, truncated, or a newer format
            print(f"{os.path.basename(path)}  {owner}  unreadable: {exc}")
            status = INCOMPLETE
            continue
        total_events += events
        total_dead += dead
        print(
            f"{os.path.basename(path)}  {owner}  events={events}  oldest={_iso(oldest) or '-'}  "
            f"dead_letters={dead}  bytes={_size(path)}"
        )
    aside = os.path.join(directory, ASIDE)
    moved = len(spool_files(aside)) if os.path.isdir(aside) else 0
    if moved:
        print(f"{moved} files moved aside in {aside} (unreadable or another format version)")
    print(f"{len(files)} files, {total_events} events waiting, {total_dead} dead letters")
    return status


def _dead_letters(directory: str) -> int:
    status = OK
    out = sys.stdout
    for path in spool_files(directory):
        try:
            conn = connect(path, create=False, read_only=True)
            try:
                rows = conn.execute(
                    "SELECT status, reason, failed_at, created, body FROM dead_letters ORDER BY id"
                ).fetchall()
            finally:
                conn.close()
        except sqlite3.Error as exc:
            print(f"{path}: unreadable: {exc}", file=sys.stderr)
            status = INCOMPLETE
            continue
        for code, reason, failed_at, created, body in rows:
            record: dict[str, Any] = {
                "file": os.path.basename(path),
                "status": code,
                "reason": reason,
                "failed_at": _iso(failed_at),
                "accepted_at": _iso(created),
                "message": json.loads(body),
            }
            out.write(json.dumps(record, separators=(",", ":")) + "\n")
    return status


def _client_for(args: argparse.Namespace, **options: Any) -> Any:
    """The client the command delivers with: the protocol, host and path given."""
    from .._client import Client

    if args.path is not None:
        options["path"] = args.path
    return Client(args.write_key, host=args.host, protocol=args.protocol, **options)


def _requeue_dead_letters(args: argparse.Namespace) -> tuple[int, int]:
    """Move the dead letters of unowned files back to their events, re-targeted to the
    given collector and key; returns (moved, files skipped)."""
    url = _client_for(args).config.url
    prints = fingerprint(args.protocol, url, args.write_key)
    moved = skipped = 0
    for path in spool_files(args.directory):
        lock = try_lock(lock_path(path))
        if lock is None:
            print(f"{path}: held by a live process; skipped", file=sys.stderr)
            skipped += 1
            continue
        try:
            conn = connect(path, create=False)
            try:
                check_version(conn.execute("PRAGMA user_version").fetchone()[0], path)
                stored = read_fingerprint(conn).get("protocol", "segment")
                if stored != args.protocol:
                    # Its rows are encoded for another API: re-targeting cannot fix that.
                    print(f"{path}: events for protocol {stored!r}; skipped", file=sys.stderr)
                    skipped += 1
                    continue
                conn.execute("BEGIN IMMEDIATE")
                upgrade(conn)
                letters = conn.execute(
                    "SELECT body, created FROM dead_letters ORDER BY id"
                ).fetchall()
                if letters:
                    append_group(conn, [body for body, _ in letters], min(c for _, c in letters))
                moved += len(letters)
                conn.execute("DELETE FROM dead_letters")
                conn.executemany(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", prints.items()
                )
                conn.execute("COMMIT")
            finally:
                conn.close()
        except Exception as exc:
            print(f"{path}: {exc}", file=sys.stderr)
            skipped += 1
        finally:
            lock.release()
    return moved, skipped


async def _drain(args: argparse.Namespace) -> int:
    from .._spool._store import SqliteStore

    client = _client_for(args, spool=args.directory)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + args.timeout
    async with client:
        store = client._store
        assert isinstance(store, SqliteStore)
        await store.wait_scanned()
        total = client.statistics().recovered
        bar = _bar(total, disable=args.no_progress)
        shown = 0
        try:
            while True:
                left = await client.flush(timeout=min(1.0, max(deadline - loop.time(), 0.0)))
                stats = client.statistics()
                done = stats.delivered + stats.dead_lettered + stats.failed
                if bar is not None:
                    bar.update(done - shown)
                shown = done
                if (not left and not stats.spooled) or loop.time() >= deadline:
                    break
        finally:
            if bar is not None:
                bar.close()
        await client.aclose(timeout=0)
    stats = client.statistics()
    print(
        f"{stats.delivered} delivered, {stats.dead_lettered} dead letters, "
        f"{stats.spooled} left in the spool",
        file=sys.stderr,
    )
    return OK if not stats.spooled and not stats.dead_lettered and not stats.failed else INCOMPLETE


def _bar(total: int, *, disable: bool) -> Any:
    if disable:
        return None
    try:
        tqdm = importlib.import_module("tqdm")
    except ImportError:  # the cli extra is not installed: no bar
        return None
    return tqdm.tqdm(total=total, unit="events", desc="drain", file=sys.stderr)
