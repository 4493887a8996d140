"""The command line when the collector is down, comes back, fails, or the import gets SIGTERM.

Every test runs the real command as a subprocess against a real server on
127.0.0.1: the local collector, or a port that refuses connections (reserved,
not listening), or the scripted fault server for statuses.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from cli_support import (
    REPO,
    WRITE_KEY,
    cli_env,
    import_from_pipe,
    ndjson,
    run,
    summary_rows,
    write_ndjson,
)
from faultserver import FaultServer, Respond

from htevents_async._collector import LocalCollector

TRACK_ARGS = ("--type", "track", "--user-id", "123", "--event", "Order completed")


@contextlib.contextmanager
def refused_port() -> Iterator[int]:
    """A port of 127.0.0.1 that refuses connections: bound, never listening."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


@contextlib.asynccontextmanager
async def cli(*args: str) -> AsyncIterator[asyncio.subprocess.Process]:
    """``python -m htevents_async ARGS`` with piped output; killed if the test fails early."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "htevents_async", *args),
        stdin=asyncio.subprocess.DEVNULL,
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


async def stderr_line_with(process: asyncio.subprocess.Process, text: str) -> str:
    """The first line of the process's stderr containing ``text`` (a generous guard only)."""
    assert process.stderr is not None
    while True:
        line = (await asyncio.wait_for(process.stderr.readline(), 60)).decode()
        assert line, f"stderr ended without {text!r}"
        if text in line:
            return line


# -- import ------------------------------------------------------------------------------------


async def test_import_says_the_collector_is_down_then_delivers_when_it_comes_back(
    tmp_path: Path,
) -> None:
    """A down collector is reported while the import runs; when it comes up, all arrives."""
    source = tmp_path / "backfill.ndjson"
    good = write_ndjson(source, 1_000, {})
    reserved = socket.socket()
    reserved.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    reserved.bind(("127.0.0.1", 0))
    port = reserved.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    try:
        async with cli("import", str(source), "--write-key", WRITE_KEY, "--host", url) as process:
            line = await stderr_line_with(process, "collector unreachable")
            assert process.returncode is None  # said while still retrying, not at the end
            assert "ConnectError" in line
            assert "retrying; 1,000 events waiting" in line

            reserved.close()
            async with LocalCollector(port=port) as collector:
                back = await stderr_line_with(process, "collector reachable again")
                out, _ = await process.communicate()
                received = {m["messageId"] for m in collector.messages()}
    finally:
        reserved.close()

    assert received == good
    assert "events waiting" in back
    assert process.returncode == 0
    assert summary_rows(out.decode())["delivered"] == "1,000"


async def test_import_gives_up_after_max_failures(tmp_path: Path) -> None:
    """``--max-failures`` stops an import against a down collector, with a summary and exit 1."""
    source = tmp_path / "backfill.ndjson"
    write_ndjson(source, 300, {})
    with refused_port() as port:
        result = await run(
            "import", str(source), "--write-key", WRITE_KEY, "--max-failures", "3",
            "--host", f"http://127.0.0.1:{port}", "--progress",
        )  # fmt: skip

    assert result.returncode == 1
    rows = summary_rows(result.stdout)
    assert (rows["delivered"], rows["failed"]) == ("0", rows["accepted"])
    assert int(rows["lines read"]) == int(rows["accepted"]) + int(rows["rejected"])
    assert "failed attempts in a row (--max-failures 3)" in result.stdout
    assert "last error: ConnectError" in result.stdout
    # Nothing was delivered, so the bar never claimed otherwise.
    assert "100%" not in result.stderr


async def test_import_gives_up_after_seconds_unreachable(tmp_path: Path) -> None:
    """``--give-up-after`` stops an import once every attempt has failed for that long."""
    source = tmp_path / "backfill.ndjson"
    write_ndjson(source, 100, {})
    with refused_port() as port:
        result = await run(
            "import", str(source), "--write-key", WRITE_KEY, "--give-up-after", "0.5",
            "--host", f"http://127.0.0.1:{port}",
        )  # fmt: skip

    assert result.returncode == 1
    assert "every attempt failed for" in result.stdout
    assert "(--give-up-after 0.5)" in result.stdout
    assert summary_rows(result.stdout)["delivered"] == "0"


async def test_sigterm_stops_an_import_like_ctrl_c(tmp_path: Path) -> None:
    """SIGTERM stops reading, delivers what was read, prints the summary, and exits 143."""
    async with (
        LocalCollector() as collector,
        import_from_pipe(collector, tmp_path / "report.txt") as process,
    ):
        assert process.stdin is not None
        assert process.stdout is not None
        process.stdin.write(ndjson(1, 500))
        await process.stdin.drain()
        await collector.wait_for(500, timeout=60)

        process.send_signal(signal.SIGTERM)
        # The pipe stays open: the import must not wait for its writer to stop.
        out = (await asyncio.wait_for(process.stdout.read(), 60)).decode()
        await asyncio.wait_for(process.wait(), 60)

    assert process.returncode == 143
    assert summary_rows(out)["delivered"] == "500"
    assert "Stopped by SIGTERM after line 500." in out


async def test_sigterm_during_an_outage_ends_within_the_shutdown_bound(tmp_path: Path) -> None:
    """SIGTERM while the collector is down gives up on what is pending and still summarises."""
    with refused_port() as port:
        async with import_from_pipe(f"http://127.0.0.1:{port}", tmp_path / "r.txt") as process:
            assert process.stdin is not None
            process.stdin.write(ndjson(1, 200))
            await process.stdin.drain()
            await stderr_line_with(process, "collector unreachable")

            process.send_signal(signal.SIGTERM)
            out, _ = await process.communicate()

    assert process.returncode == 143
    rows = summary_rows(out.decode())
    assert (rows["lines read"], rows["delivered"], rows["failed"]) == ("200", "0", "200")
    stopped = "200 events not delivered: dropped (still pending when the import stopped)"
    assert stopped in out.decode()


async def test_import_rejects_lines_without_an_identity_unless_allowed(tmp_path: Path) -> None:
    """A line with neither userId nor anonymousId is rejected; ``--allow-anonymous`` sends it."""
    source = tmp_path / "orphans.ndjson"
    source.write_text(
        '{"type": "track", "userId": "u1", "event": "Kept"}\n{"type": "track", "event": "Orphan"}\n'
    )
    async with LocalCollector() as collector:
        strict = await run("import", str(source), "--write-key", WRITE_KEY, "--host", collector.url)
        report = (tmp_path / "orphans.ndjson.rejected.txt").read_text()
        lenient = await run(
            "import", str(source), "--allow-anonymous", "--write-key", WRITE_KEY,
            "--host", collector.url,
        )  # fmt: skip
        orphans = [m for m in collector.messages() if m["event"] == "Orphan"]

    assert strict.returncode == 1
    assert report.startswith("line 2: Track has neither userId nor anonymousId")
    assert lenient.returncode == 0, lenient.stdout
    (orphan,) = orphans
    assert orphan["anonymousId"]
    assert "userId" not in orphan


# -- send --------------------------------------------------------------------------------------


async def test_send_to_a_down_collector_shows_the_real_error() -> None:
    """``send`` says the collector is unreachable and why, not that the client closed."""
    with refused_port() as port:
        async with cli(
            "send", *TRACK_ARGS, "--write-key", WRITE_KEY, "--timeout", "3",
            "--host", f"http://127.0.0.1:{port}",
        ) as process:  # fmt: skip
            line = await stderr_line_with(process, "collector unreachable (ConnectError")
            assert process.returncode is None
            out, _ = await process.communicate()

    assert "retrying; 1 event waiting" in line
    assert process.returncode == 1
    text = out.decode()
    assert "not delivered:" in text
    assert "ConnectError" in text
    assert "the client closed before delivery finished" not in text


async def test_send_gives_up_after_max_failures() -> None:
    """``--max-failures`` ends ``send`` early with the last error and exit 1."""
    with refused_port() as port:
        result = await run(
            "send", *TRACK_ARGS, "--write-key", WRITE_KEY, "--max-failures", "2",
            "--host", f"http://127.0.0.1:{port}",
        )  # fmt: skip

    assert result.returncode == 1
    assert "not delivered: gave up:" in result.stdout
    assert "last error: ConnectError" in result.stdout


async def test_send_reports_a_name_that_does_not_resolve() -> None:
    """A host whose name cannot resolve (``.invalid`` never does) is named as a ConnectError."""
    result = await run(
        "send", *TRACK_ARGS, "--write-key", WRITE_KEY, "--max-failures", "2",
        "--host", "http://no-such-host.invalid",
    )  # fmt: skip

    assert result.returncode == 1
    assert "collector unreachable (ConnectError" in result.stderr
    assert "last error: ConnectError" in result.stdout


async def test_send_reports_a_failing_status() -> None:
    """A collector answering 503 is reported as such while retrying, and in the outcome."""
    async with FaultServer(then=Respond(503)) as server:
        result = await run(
            "send", *TRACK_ARGS, "--write-key", WRITE_KEY, "--max-failures", "3",
            "--host", server.url,
        )  # fmt: skip

    assert result.returncode == 1
    assert "collector answered HTTP 503, retrying" in result.stderr
    assert "last error: HTTP 503" in result.stdout


async def test_send_without_an_identity_is_a_usage_error_unless_allowed() -> None:
    """No user or anonymous id exits 2 with a hint; ``--allow-anonymous`` sends a random one."""
    async with LocalCollector() as collector:
        refused = await run(
            "send", "--type", "track", "--event", "E", "--write-key", WRITE_KEY,
            "--host", collector.url,
        )  # fmt: skip
        allowed = await run(
            "send", "--type", "track", "--event", "E", "--allow-anonymous",
            "--write-key", WRITE_KEY, "--host", collector.url,
        )  # fmt: skip
        (message,) = collector.messages()

    assert refused.returncode == 2
    assert "--allow-anonymous" in refused.stderr
    assert allowed.returncode == 0, allowed.stdout
    assert message["anonymousId"]


# -- usage errors ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "host", ["http://[::1", "localhost:8787", "http://:80", "http://127.0.0.1:99999", "ftp://x"]
)
@pytest.mark.parametrize("command", ["send", "import"])
async def test_an_unparsable_host_is_one_line_and_exit_2(
    command: str, host: str, tmp_path: Path
) -> None:
    """A ``--host`` that is not an http(s) URL with a host exits 2 with one line, no traceback."""
    source = tmp_path / "one.ndjson"
    write_ndjson(source, 1, {})
    target = TRACK_ARGS if command == "send" else (str(source),)
    result = await run(command, *target, "--write-key", WRITE_KEY, "--host", host)

    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"htevents-async {command}: error: --host")


@pytest.mark.parametrize(
    "option", [("--max-failures", "0"), ("--give-up-after", "-1"), ("--give-up-after", "nan")]
)
async def test_a_bad_give_up_option_exits_2(option: tuple[str, str]) -> None:
    """``--max-failures`` below 1 or a negative ``--give-up-after`` is a usage error."""
    result = await run("send", *TRACK_ARGS, "--write-key", WRITE_KEY, *option)

    assert result.returncode == 2
    assert option[0] in result.stderr
