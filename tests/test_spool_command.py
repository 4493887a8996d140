"""``htevents-async spool``: status, dead-letters, replay and drain against real servers."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path

import pytest
from faultserver import FaultServer, Respond
from support import FAST, WRITE_KEY, client_for

from htevents_async._cli import spool as _command

ROOT = Path(__file__).resolve().parent.parent
SPOOL_FAST = {**FAST, "max_retry_time": 0.2}


def db_files(directory: Path) -> list[str]:
    return [name for name in os.listdir(directory) if name.endswith(".db")]


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="htevents-async spool")
    _command.add_arguments(parser)
    return parser.parse_args(argv)


async def run(*argv: str) -> int:
    """The command in a worker thread: it runs its own event loop, the servers run on ours."""
    return await asyncio.to_thread(_command.run, parse(*argv))


async def leave_events(url: str, directory: Path, count: int) -> list[str]:
    client = client_for(url, spool=str(directory), **SPOOL_FAST)
    async with client:
        ids = [await client.track(user_id="u", event="e") for _ in range(count)]
        assert await client.commit(timeout=10) == 0
        await client.aclose(timeout=0)
    return ids


async def test_dead_letters_listed_then_replayed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A 400 leaves dead letters; the listing shows them; replay delivers them."""
    async with FaultServer(Respond(400, body=b"unknown write key")) as server:
        client = client_for(server.url, spool=str(tmp_path))
        async with client:
            ids = [await client.track(user_id="u", event="e") for _ in range(5)]
            assert await client.flush(timeout=10) == 0
        assert client.statistics().dead_lettered == 5
        capsys.readouterr()
        assert await run("dead-letters", str(tmp_path)) == 0
        lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert [line["message"]["messageId"] for line in lines] == ids
        assert {line["status"] for line in lines} == {400}
        assert all("unknown write key" in line["reason"] for line in lines)
        assert await run("status", str(tmp_path)) == 0
        assert "dead_letters=5" in capsys.readouterr().out
        code = await run(
            "replay", str(tmp_path), "--host", server.url, "--write-key", WRITE_KEY, "--no-progress"
        )
        assert code == 0
        assert sorted(server.delivered_ids()) == sorted(ids)
    assert await run("dead-letters", str(tmp_path)) == 0
    assert capsys.readouterr().out == ""


async def test_drain_leaves_live_files_alone(tmp_path: Path) -> None:
    """drain takes only files no live process holds: nothing is sent twice."""
    async with FaultServer(start_down=True) as server:
        left = await leave_events(server.url, tmp_path, 20)
        live = client_for(server.url, spool=str(tmp_path), **SPOOL_FAST)
        async with live:
            await live.flush(timeout=0.5)  # its first scan adopts the file left behind
            assert live.statistics().recovered == 20
            kept = [await live.track(user_id="u", event="e") for _ in range(3)]
            assert await live.commit(timeout=10) == 0
            await server.up()
            # Everything is in the live client's file, which drain must not touch.
            code = await run(
                "drain",
                str(tmp_path),
                "--host",
                server.url,
                "--write-key",
                WRITE_KEY,
                "--no-progress",
                "--timeout",
                "5",
            )
            assert await live.flush(timeout=10) == 0
        assert code == 0
        delivered = server.delivered_ids()
    assert sorted(delivered) == sorted(left + kept)  # each exactly once


async def test_status_of_an_empty_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """status on a directory without files says so."""
    assert await run("status", str(tmp_path)) == 0
    assert "0 files, 0 events waiting, 0 dead letters" in capsys.readouterr().out


async def test_drain_as_a_real_process(tmp_path: Path) -> None:
    """``htevents-async spool drain`` in its own process delivers a dead service's spool."""
    async with FaultServer(start_down=True) as server:
        ids = await leave_events(server.url, tmp_path, 50)
        await server.up()
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "htevents_async",
            "spool",
            "drain",
            str(tmp_path),
            "--host",
            server.url,
            "--write-key",
            WRITE_KEY,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        _, err = await asyncio.wait_for(process.communicate(), 60)
        assert process.returncode == 0, err.decode()
        assert sorted(server.delivered_ids()) == sorted(ids)
    assert "50 delivered, 0 dead letters, 0 left" in err.decode()
    assert db_files(tmp_path) == []
