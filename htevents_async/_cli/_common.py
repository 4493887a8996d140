"""What the commands share: exit codes, usage errors, target options, and the signal runner.

Light on purpose: every command module imports this at parse time, so the
client, httpx and the collector are imported inside the functions that need them.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import logging
import os
import signal
import sys
from collections.abc import Coroutine
from types import ModuleType
from typing import Any, Final

__all__ = [
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_TERMINATED",
    "EXIT_USAGE",
    "PROG",
    "UsageError",
    "add_target_options",
    "fail",
    "json_object",
    "load_optional",
    "one_line",
    "quiet_client_logs",
    "run_until_signal",
    "target_host",
    "write_key",
]

PROG: Final = "htevents-async"
EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_USAGE: Final = 2
EXIT_INTERRUPTED: Final = 130  # 128 + SIGINT, as shells report Ctrl+C
EXIT_TERMINATED: Final = 143  # 128 + SIGTERM

INSTALL_HINT: Final = "pip install 'htevents-async[cli]'"
# Kept in sync with _config.DEFAULT_HOST; not imported, to keep parsing light.
DEFAULT_HOST_HELP: Final = "https://us-east-1.hightouch-events.com"


class UsageError(Exception):
    """Bad input from the command line: reported on stderr with exit code 2."""


def fail(command: str, message: object) -> None:
    """Print ``htevents-async COMMAND: error: MESSAGE`` on stderr."""
    print(f"{PROG} {command}: error: {one_line(message)}", file=sys.stderr)


def one_line(text: object) -> str:
    """``text`` with every run of whitespace, newlines included, made one space."""
    return " ".join(str(text).split())


def load_optional(module: str, command: str) -> ModuleType | None:
    """Import a module that needs an optional extra, or explain how to install it."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        missing = exc.name or "a dependency"
        if missing.partition(".")[0] == "htevents_async":
            raise  # a broken install of this package, not a missing extra
        fail(
            command,
            f"this command needs the local collector's dependencies (Starlette, uvicorn); "
            f"{missing!r} is not installed. Install them with: {INSTALL_HINT}",
        )
        return None


def json_object(text: str, option: str) -> dict[str, Any]:
    """``text`` parsed as a JSON object, or a :class:`UsageError` naming ``option``."""
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise UsageError(f"{option} is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise UsageError(f"{option} must be a JSON object, got {type(value).__name__}")
    return value


def write_key(args: argparse.Namespace) -> str:
    """``--write-key``, else ``$HT_WRITE_KEY``, else a usage error."""
    key = args.write_key or os.environ.get("HT_WRITE_KEY")
    if not key:
        raise UsageError("no write key: pass --write-key or set HT_WRITE_KEY")
    return str(key)


def target_host(args: argparse.Namespace) -> str:
    """``--host``, else ``$HT_HOST``, else the default; a usage error if it is not a URL.

    Checked here, before any client exists, so that a typo is one line and exit
    code 2 rather than a minute of failed deliveries to an address that cannot be.
    """
    import httpx

    from .._config import DEFAULT_HOST

    given = args.host or os.environ.get("HT_HOST")
    if not given:
        return DEFAULT_HOST
    option = "--host" if args.host else "HT_HOST"
    text = str(given)
    try:
        url = httpx.URL(text)
        port = url.port  # parsed lazily by some httpx versions
    except (httpx.InvalidURL, ValueError) as exc:
        raise UsageError(f"{option} {text!r} is not a URL: {exc}") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise UsageError(
            f"{option} must be an http:// or https:// URL with a host, such as "
            f"http://127.0.0.1:8787; got {text!r}"
        )
    if port is not None and not 0 < port < 65536:
        raise UsageError(f"{option} {text!r} has port {port}, outside 1-65535")
    return text


def add_target_options(parser: argparse.ArgumentParser) -> None:
    """``--write-key``, ``--host`` and ``--no-gzip``: where and how events are sent."""
    parser.add_argument(
        "--write-key", metavar="KEY", help="the source's write key (default: $HT_WRITE_KEY)"
    )
    parser.add_argument(
        "--host",
        metavar="URL",
        help=f"collector base URL (default: $HT_HOST, else {DEFAULT_HOST_HELP})",
    )
    parser.add_argument("--no-gzip", action="store_true", help="send request bodies uncompressed")


def add_give_up_options(parser: argparse.ArgumentParser) -> None:
    """``--max-failures`` and ``--give-up-after``: stop early while the collector is down."""
    parser.add_argument(
        "--max-failures",
        type=int,
        metavar="N",
        help="give up after N failed attempts in a row (refused, timed out, or a "
        "retryable status such as 503); default: keep retrying",
    )
    parser.add_argument(
        "--give-up-after",
        type=float,
        metavar="SECONDS",
        help="give up once the collector has failed every attempt for this long; "
        "default: keep retrying",
    )


def check_give_up_options(args: argparse.Namespace) -> None:
    """A usage error for a ``--max-failures`` below 1 or a ``--give-up-after`` below 0."""
    if args.max_failures is not None and args.max_failures < 1:
        raise UsageError("--max-failures must be at least 1")
    if args.give_up_after is not None and not args.give_up_after >= 0:
        raise UsageError("--give-up-after must be 0 or more seconds")


def quiet_client_logs(args: argparse.Namespace) -> None:
    """Silence the client's own log lines unless ``--verbose``.

    ``send`` and ``import`` report every outcome themselves; the client's lines
    would repeat them and break the progress bar.
    """
    if not args.verbose:
        logging.getLogger("htevents_async").setLevel(logging.CRITICAL)


def run_until_signal(main: Coroutine[Any, Any, None]) -> signal.Signals | None:
    """``asyncio.run(main)``; SIGINT or SIGTERM cancels ``main`` and is returned.

    ``main`` sees a cancellation, so its ``async with client`` still delivers
    what is in flight within its shutdown timeout, and its ``finally`` blocks
    record what got through. Python 3.10's own Ctrl+C handling would instead
    raise wherever the loop happens to be and cancel every task at once, and
    SIGTERM would kill the process without a summary. On Windows, which has no
    loop signal handlers, Ctrl+C raises ``KeyboardInterrupt`` as usual.
    """
    if sys.platform == "win32":  # pragma: no cover
        asyncio.run(main)
        return None
    received: list[signal.Signals] = []

    async def runner() -> None:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None

        def stop(signum: signal.Signals) -> None:
            received.append(signum)
            task.cancel()

        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop, signum)
        try:
            await main
        except asyncio.CancelledError:
            if not received:
                raise
        finally:
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(signum)

    asyncio.run(runner())
    return received[0] if received else None
