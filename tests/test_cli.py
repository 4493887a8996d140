"""The command line, run for real as a subprocess against a local collector on 127.0.0.1."""

from __future__ import annotations

import asyncio
import io
import json
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from cli_support import (
    REPO,
    TYPES,
    WRITE_KEY,
    Result,
    cli_env,
    import_from_pipe,
    ndjson,
    run,
    summary_rows,
    write_ndjson,
)

import htevents_async
from htevents_async._cli import COMMANDS, main
from htevents_async._cli._progress import _BAR_FORMAT, _floored
from htevents_async._collector import LocalCollector

TRACK_ARGS = ("--type", "track", "--user-id", "123", "--event", "Order completed")


async def send(collector: LocalCollector, *args: str) -> Result:
    """``htevents-async send ARGS`` aimed at ``collector``."""
    return await run("send", "--write-key", WRITE_KEY, "--host", collector.url, *args)


@pytest.fixture
async def collector() -> AsyncIterator[LocalCollector]:
    """A collector that accepts any write key and keeps every message of a large import."""
    async with LocalCollector(max_messages=200_000) as running:
        yield running


# -- help and missing extras ------------------------------------------------------------------


async def test_help_lists_every_subcommand() -> None:
    """``--help`` exits 0 and names collect, demo, send and import."""
    result = await run("--help")

    assert result.returncode == 0
    for command in ("collect", "demo", "send", "import"):
        assert command in result.stdout


def test_a_command_is_one_registry_entry(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A module with ``add_arguments`` and ``run``, named in ``COMMANDS``, is a command."""
    (tmp_path / "echo_command.py").write_text(
        "DESCRIPTION = 'Print the words.'\n"
        "def add_arguments(parser):\n"
        "    parser.add_argument('words', nargs='+')\n"
        "def run(args):\n"
        "    print(' '.join(args.words))\n"
        "    return 3\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(COMMANDS, "echo", ("echo_command", "print the words"))

    assert main(["echo", "hello", "there"]) == 3
    assert capsys.readouterr().out == "hello there\n"


async def test_missing_collector_extra_names_the_install_command() -> None:
    """Without uvicorn, ``collect`` exits 1 and says which extra to install."""
    code = (
        "import sys; sys.modules['uvicorn'] = None\n"
        "from htevents_async._cli import main; raise SystemExit(main(sys.argv[1:]))"
    )
    result = await run("collect", "--port", "0", code=code)

    assert result.returncode == 1
    assert "pip install 'htevents-async[cli]'" in result.stderr
    assert "'uvicorn'" in result.stderr


# -- collect ---------------------------------------------------------------------------------


async def test_collect_serves_until_interrupted() -> None:
    """``collect`` serves batches on the given port and exits 0 on Ctrl+C."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "htevents_async", "collect", "--port", "0", "--write-key", WRITE_KEY),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=cli_env(),
        cwd=REPO,
    )
    assert process.stdout is not None
    try:
        first = (await asyncio.wait_for(process.stdout.readline(), 60)).decode()
        url = first.rsplit(" ", 1)[1].strip()
        async with htevents_async.Client(WRITE_KEY, host=url) as client:
            await client.track(user_id="1", event="Through collect")
        stats = client.statistics()
    finally:
        process.send_signal(signal.SIGINT)
        rest, _ = await process.communicate()

    assert first.startswith("htevents-async collector listening on http://127.0.0.1:")
    assert "write key: required" in rest.decode()
    assert stats.delivered == 1
    assert process.returncode == 0


# -- send --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ("--type", "identify", "--user-id", "123", "--traits", '{"plan": "pro"}'),
            {"type": "identify", "userId": "123", "traits": {"plan": "pro"}},
        ),
        (
            (*TRACK_ARGS, "--properties", '{"total": 29.99}'),
            {"type": "track", "userId": "123", "event": "Order completed"},
        ),
        (
            ("--type", "page", "--anonymous-id", "a1", "--name", "Home", "--category", "Docs"),
            {"type": "page", "anonymousId": "a1", "name": "Home", "category": "Docs"},
        ),
        (
            ("--type", "screen", "--user-id", "7", "--name", "Cart", "--properties", "{}"),
            {"type": "screen", "userId": "7", "name": "Cart", "properties": {}},
        ),
        (
            ("--type", "group", "--user-id", "7", "--group-id", "acct-1", "--traits", '{"n": 1}'),
            {"type": "group", "userId": "7", "groupId": "acct-1", "traits": {"n": 1}},
        ),
        (
            ("--type", "alias", "--previous-id", "anon-9", "--user-id", "7"),
            {"type": "alias", "previousId": "anon-9", "userId": "7"},
        ),
    ],
    ids=["identify", "track", "page", "screen", "group", "alias"],
)
async def test_send_delivers_each_type(
    collector: LocalCollector, args: tuple[str, ...], expected: dict[str, Any]
) -> None:
    """``send`` of each type exits 0, prints the message id, and the message arrives."""
    result = await send(collector, *args)

    assert result.returncode == 0, result.stderr
    (message,) = collector.messages()
    assert expected.items() <= message.items()
    assert f"message id: {message['messageId']}" in result.stdout
    assert "delivered" in result.stdout


async def test_send_takes_options_common_to_every_type(collector: LocalCollector) -> None:
    """``--timestamp``, ``--context``, ``--integrations`` and ``--message-id`` reach the wire."""
    result = await send(
        collector,
        *TRACK_ARGS,
        *("--timestamp", "2024-01-02T03:04:05Z", "--message-id", "order-17"),
        *("--context", '{"ip": "203.0.113.7"}', "--integrations", '{"All": false}'),
    )

    assert result.returncode == 0, result.stderr
    (message,) = collector.messages()
    assert message["timestamp"] == "2024-01-02T03:04:05.000Z"
    assert message["messageId"] == "order-17"
    assert message["context"]["ip"] == "203.0.113.7"
    assert message["integrations"] == {"All": False}


async def test_send_whole_message_as_json(collector: LocalCollector) -> None:
    """``--json`` takes a message in wire form; flags override its fields."""
    wire = {"type": "track", "userId": 5, "event": "Old name", "properties": {"n": 1}}
    result = await send(collector, "--json", json.dumps(wire), "--event", "New name")

    assert result.returncode == 0, result.stderr
    (message,) = collector.messages()
    assert (message["userId"], message["event"], message["properties"]) == (
        "5",
        "New name",
        {"n": 1},
    )


async def test_send_reads_write_key_and_host_from_the_environment() -> None:
    """Without flags, ``send`` uses ``HT_WRITE_KEY`` and ``HT_HOST``."""
    async with LocalCollector(write_key="env-key") as strict:
        result = await run(
            "send", *TRACK_ARGS, env=cli_env(HT_WRITE_KEY="env-key", HT_HOST=strict.url)
        )

        assert result.returncode == 0, result.stderr
        assert len(strict.messages("track")) == 1


async def test_send_validation_error_exits_2_naming_the_field(collector: LocalCollector) -> None:
    """A track without ``--event`` exits 2 with the field's name, and nothing is sent."""
    result = await send(collector, "--type", "track", "--user-id", "123")

    assert result.returncode == 2
    assert "Track.event is required" in result.stderr
    assert collector.stats().requests == 0


async def test_send_invalid_json_option_exits_2(collector: LocalCollector) -> None:
    """A ``--properties`` value that is not a JSON object exits 2 naming the option."""
    result = await send(collector, *TRACK_ARGS, "--properties", "{total: 1}")

    assert result.returncode == 2
    assert "--properties is not valid JSON" in result.stderr


async def test_send_without_write_key_exits_2(collector: LocalCollector) -> None:
    """No ``--write-key`` and no ``HT_WRITE_KEY`` exits 2 saying so."""
    result = await run("send", "--host", collector.url, *TRACK_ARGS)

    assert result.returncode == 2
    assert "HT_WRITE_KEY" in result.stderr


async def test_send_refused_event_exits_1_with_the_reason() -> None:
    """A collector that refuses the write key makes ``send`` print the status and exit 1."""
    async with LocalCollector(write_key="the-right-key") as strict:
        result = await send(strict, *TRACK_ARGS)

    assert result.returncode == 1
    assert "not delivered: collector answered HTTP 401" in result.stdout


# -- import ------------------------------------------------------------------------------------

# Line number -> (raw line, text the report must give as the reason).
BAD_LINES: dict[int, tuple[bytes, str]] = {
    17: (b'{"type": "track", "userId": "u", "event": }', "invalid JSON: Expecting value"),
    2_500: (b'{"type": "track", "userId": "u"}', "Track.event is required"),
    31_337: (b'{"type": "click", "userId": "u"}', "type must be one of"),
    50_000: (b'["not", "an", "object"]', "must be a JSON object, got list"),
    66_666: (b'{"type": "group", "userId": "u"}', "Group.group_id is required"),
    77_777: (
        b'{"type": "page", "userId": "u", "timestamp": "last tuesday"}',
        "Page.timestamp must be an ISO-8601",
    ),
    88_888: (b'{"type": "identify", "userId": "u", "colour": "red"}', "no field 'colour'"),
    99_999: (b'{"type": "track", "event": "\xff\xfe"}', "invalid JSON"),
}


@pytest.mark.slow
async def test_import_of_100k_lines_delivers_good_lines_and_reports_bad_ones(
    collector: LocalCollector, tmp_path: Path
) -> None:
    """100,000 lines: every good line arrives once; exactly the bad line numbers are reported."""
    source = tmp_path / "backfill.ndjson"
    good = write_ndjson(source, 100_000, BAD_LINES)

    result = await run(
        "import", str(source), "--write-key", WRITE_KEY, "--host", collector.url,
        "--batch-size", "250", "--concurrency", "8",
    )  # fmt: skip

    assert result.returncode == 1, result.stderr
    received = collector.messages()
    assert len(received) == len(good)
    assert {m["messageId"] for m in received} == good
    report = (tmp_path / "backfill.ndjson.rejected.txt").read_text().splitlines()
    assert [int(line.split(":", 1)[0].removeprefix("line ")) for line in report] == list(BAD_LINES)
    for line, (number, (_, reason)) in zip(report, BAD_LINES.items(), strict=True):
        assert line.startswith(f"line {number}: "), line
        assert reason in line, line
    rows = summary_rows(result.stdout)
    assert (rows["rejected"], rows["delivered"]) == (str(len(BAD_LINES)), f"{len(good):,}")


async def test_import_keeps_past_timestamps(collector: LocalCollector, tmp_path: Path) -> None:
    """Backfilled events arrive with their original timestamps and ids."""
    source = tmp_path / "small.ndjson"
    write_ndjson(source, 12, {})

    result = await run("import", str(source), "--write-key", WRITE_KEY, "--host", collector.url)

    assert result.returncode == 0, result.stderr
    by_id = {m["messageId"]: m for m in collector.messages()}
    assert by_id["line-5"]["timestamp"] == "2023-06-15T08:30:00.000Z"
    assert by_id["line-5"]["type"] == TYPES[5 % len(TYPES)]
    assert not (tmp_path / "small.ndjson.rejected.txt").exists()


async def test_import_reads_stdin(collector: LocalCollector, tmp_path: Path) -> None:
    """``import -`` streams stdin; rejected lines go to ``--report``."""
    source = tmp_path / "piped.ndjson"
    good = write_ndjson(source, 2_000, {3: (b"{oops", "invalid JSON")})
    report = tmp_path / "report.txt"

    result = await run(
        "import", "-", "--report", str(report), "--write-key", WRITE_KEY, "--host", collector.url,
        stdin=source.read_bytes(),
    )  # fmt: skip

    assert result.returncode == 1
    assert {m["messageId"] for m in collector.messages()} == good
    assert report.read_text().startswith("line 3: invalid JSON")
    assert "Imported stdin" in result.stdout


async def test_import_summary_counts_each_outcome(
    collector: LocalCollector, tmp_path: Path
) -> None:
    """Lines read = accepted + rejected + blank, each shown; delivered and failed follow."""
    source = tmp_path / "mixed.ndjson"
    write_ndjson(
        source,
        300,
        {10: (b"{", "invalid JSON"), 20: (b"[]", "object"), 30: (b"  ", ""), 40: (b"", "")},
    )

    result = await run("import", str(source), "--write-key", WRITE_KEY, "--host", collector.url)

    rows = summary_rows(result.stdout)
    assert result.stdout.startswith(f"Imported {source} into {collector.url}/v1/batch")
    assert {key: rows[key] for key in rows if key != "elapsed"} == {
        "lines read": "300",
        "accepted": "296",
        "rejected": "2",
        "blank": "2",
        "delivered": "296",
        "failed": "0",
    }
    assert "delivered events/s" in result.stdout


async def test_import_exits_1_when_events_are_not_delivered(tmp_path: Path) -> None:
    """Events the collector refuses are counted as failed, with the reason, and exit 1."""
    source = tmp_path / "refused.ndjson"
    write_ndjson(source, 150, {})
    async with LocalCollector(write_key="the-right-key") as strict:
        result = await run("import", str(source), "--write-key", "wrong", "--host", strict.url)

    assert result.returncode == 1
    assert "150 events not delivered: collector answered HTTP 401" in result.stdout
    assert not (tmp_path / "refused.ndjson.rejected.txt").exists()


async def test_import_of_a_missing_file_exits_2(tmp_path: Path) -> None:
    """A file that cannot be opened exits 2 naming it."""
    missing = tmp_path / "nope.ndjson"
    result = await run("import", str(missing), "--write-key", WRITE_KEY)

    assert result.returncode == 2
    assert f"cannot read {missing}" in result.stderr


async def test_import_progress_bar_shows_events_per_second(
    collector: LocalCollector, tmp_path: Path
) -> None:
    """``--progress`` draws a tqdm bar of delivered events, at 100 % once all are delivered."""
    pytest.importorskip("tqdm")
    source = tmp_path / "progress.ndjson"
    write_ndjson(source, 3_000, {})

    result = await run(
        "import", str(source), "--progress", "--write-key", WRITE_KEY, "--host", collector.url
    )

    assert result.returncode == 0, result.stderr
    frames = result.stderr.replace("\r", "\n").strip().splitlines()
    assert frames[-1].startswith("import: 100%")
    assert "3000/3000" in frames[-1]
    assert "events/s" in frames[-1]
    assert not [frame for frame in frames[:-1] if "100%" in frame and "3000/3000" not in frame]


def test_progress_bar_reads_100_only_when_every_event_is_delivered() -> None:
    """997 of 1,000 delivered reads 99 %, not tqdm's rounded 100 %."""
    tqdm = pytest.importorskip("tqdm")
    text = io.StringIO()
    bar = _floored(tqdm.tqdm)(total=1000, file=text, bar_format=_BAR_FORMAT, desc="import")
    bar.update(997)
    assert str(bar).startswith("import:  99%|")
    bar.update(3)
    assert str(bar).startswith("import: 100%|")
    bar.close()


async def test_import_progress_falls_back_without_tqdm(
    collector: LocalCollector, tmp_path: Path
) -> None:
    """Without tqdm, ``--progress`` prints a plain counter instead of failing."""
    source = tmp_path / "plain.ndjson"
    write_ndjson(source, 3_000, {})
    code = (
        "import sys; sys.modules['tqdm'] = None\n"
        "from htevents_async._cli import main; raise SystemExit(main(sys.argv[1:]))"
    )

    result = await run(
        "import", str(source), "--progress", "--write-key", WRITE_KEY, "--host", collector.url,
        code=code,
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    assert "100.0%  3,000 events delivered" in result.stderr


async def test_import_from_a_pipe_delivers_while_the_writer_is_still_writing(
    collector: LocalCollector, tmp_path: Path
) -> None:
    """Lines written to the pipe are delivered before the writer closes it."""
    async with import_from_pipe(collector, tmp_path / "report.txt") as process:
        assert process.stdin is not None
        process.stdin.write(ndjson(1, 500))
        await process.stdin.drain()
        await collector.wait_for(500, timeout=60)

        out, err = await process.communicate(ndjson(501, 500))  # then closes the pipe

    assert process.returncode == 0, err.decode()
    assert len(collector.messages()) == 1000
    assert summary_rows(out.decode())["delivered"] == "1,000"


async def test_import_interrupted_prints_the_summary_and_exits_130(
    collector: LocalCollector, tmp_path: Path
) -> None:
    """Ctrl+C while waiting on an open pipe stops at once, with a summary, exit code 130."""
    async with import_from_pipe(collector, tmp_path / "report.txt") as process:
        assert process.stdin is not None
        assert process.stdout is not None
        process.stdin.write(ndjson(1, 500))
        await process.stdin.drain()
        await collector.wait_for(500, timeout=60)

        process.send_signal(signal.SIGINT)
        # The pipe stays open: the import must not wait for its writer to stop.
        out = (await asyncio.wait_for(process.stdout.read(), 60)).decode()
        await asyncio.wait_for(process.wait(), 60)

    assert process.returncode == 130
    assert summary_rows(out)["delivered"] == "500"
    assert "Interrupted after line 500." in out


def test_collect_options_reach_the_collector() -> None:
    """``collect``'s retention, duplicate and Host options parse to serve()'s keywords."""
    from htevents_async._cli import build_parser

    args = build_parser().parse_args(
        [
            *("collect", "--max-events", "5", "--max-bytes", "4096", "--keep-duplicates"),
            *("--allow-host", "dev.local", "--allow-host", "box"),
        ]
    )
    assert (args.max_events, args.max_bytes, args.keep_duplicates) == (5, 4096, True)
    assert args.allow_host == ["dev.local", "box"]
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["collect", "--max-events", "0"])
    assert exited.value.code == 2
