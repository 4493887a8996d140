"""Helpers for the command-line tests: run the CLI as a subprocess, write NDJSON, read summaries."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import attrs

from htevents_async._collector import LocalCollector

REPO = Path(__file__).resolve().parents[1]
WRITE_KEY = "cli-test-key"


@attrs.frozen
class Result:
    """What a finished CLI run returned and printed."""

    returncode: int
    stdout: str
    stderr: str


def cli_env(**extra: str) -> dict[str, str]:
    """The test process's environment without the CLI's variables, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if k not in ("HT_WRITE_KEY", "HT_HOST")}
    return {**env, "PYTHONUNBUFFERED": "1", **extra}


async def run(
    *args: str, stdin: bytes | None = None, env: Mapping[str, str] | None = None, code: str = ""
) -> Result:
    """Run ``python -m htevents_async ARGS`` (or ``python -c CODE ARGS``) off the event loop."""
    command = ("-c", code) if code else ("-m", "htevents_async")
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *command,
        *args,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=dict(env) if env is not None else cli_env(),
        cwd=REPO,
    )
    out, err = await process.communicate(stdin)
    assert process.returncode is not None
    return Result(process.returncode, out.decode(), err.decode())


TYPES = ("identify", "track", "page", "screen", "group", "alias")


def good_line(number: int) -> dict[str, Any]:
    """A valid message in wire form, of a type that depends on its line number, backdated."""
    kind = TYPES[number % len(TYPES)]
    message: dict[str, Any] = {
        "type": kind,
        "userId": f"user-{number % 1000}",
        "messageId": f"line-{number}",
        "timestamp": f"2023-{number % 12 + 1:02d}-15T08:30:00Z",
    }
    extra: dict[str, dict[str, Any]] = {
        "identify": {"traits": {"email": f"u{number}@example.com"}},
        "track": {"event": "Order completed", "properties": {"total": number / 100}},
        "page": {"name": "Home", "properties": {"path": "/"}},
        "screen": {"name": "Cart", "category": "App"},
        "group": {"groupId": f"acct-{number % 40}", "traits": {"name": "Acme"}},
        "alias": {"previousId": f"anon-{number}"},
    }
    return {**message, **extra[kind]}


def write_ndjson(path: Path, lines: int, bad: Mapping[int, tuple[bytes, str]]) -> set[str]:
    """Write ``lines`` lines with ``bad`` ones at their numbers; return the good message ids."""
    good: set[str] = set()
    with path.open("wb") as file:
        for number in range(1, lines + 1):
            if number in bad:
                file.write(bad[number][0] + b"\n")
                continue
            message = good_line(number)
            good.add(message["messageId"])
            file.write(json.dumps(message).encode() + b"\n")
    return good


def summary_rows(stdout: str) -> dict[str, str]:
    """The ``label: first value`` rows of an import summary."""
    rows = {}
    for line in stdout.splitlines():
        if line.startswith("  ") and not line.lstrip()[0].isdigit():
            rows[line[2:14].strip()] = line[14:].split()[0]
    return rows


def _url(target: LocalCollector | str) -> str:
    return target if isinstance(target, str) else target.url


@contextlib.asynccontextmanager
async def import_from_pipe(
    collector: LocalCollector | str, report: Path, *extra: str
) -> AsyncIterator[asyncio.subprocess.Process]:
    """``import -`` to ``collector`` (or a URL) from a pipe the test keeps open, with ``extra``
    options; killed if the test fails early."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "htevents_async", "import", "-", "--report", str(report)),
        *("--write-key", WRITE_KEY, "--host", _url(collector), *extra),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=cli_env(),
        cwd=REPO,
    )
    try:
        yield process
    finally:
        if process.returncode is None:
            process.kill()
            await process.communicate()


def ndjson(first: int, count: int) -> bytes:
    """``count`` valid lines starting at line number ``first``."""
    return b"".join(json.dumps(good_line(n)).encode() + b"\n" for n in range(first, first + count))
