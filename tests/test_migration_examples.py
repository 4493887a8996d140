"""The migration guides' examples run, and the versions the guides name are installed.

``docs/migration/`` rewrites code written for ``segment-analytics-python``,
Hightouch's ``events-sdk-python``, ``rudder-sdk-python`` and ``posthog``. Each
example is a file under ``tests/migration/`` that must appear verbatim in its
page. Here each runs in its own process against a local collector started on a
free port (the only change to the shown code is that port), and the collector
checks what arrived: the peer's own shape for the "before" code, ours for the
"after" code. The processes get a proxy that refuses every connection except to
127.0.0.1, so no peer can reach the internet.
"""

from __future__ import annotations

import asyncio
import base64
import importlib.metadata
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from migration_support import (
    DEAD_PROXY,
    EXAMPLE_FILES,
    EXAMPLES,
    GUIDES,
    PEERS,
    ROOT,
    SHOWN_HOST,
    bench_pins,
)
from servers import environment

from htevents_async._collector import LocalCollector

for _module in ("segment.analytics", "hightouch.htevents", "rudderstack.analytics", "posthog"):
    pytest.importorskip(_module)

pytestmark = pytest.mark.anyio


# -- the pinned versions ---------------------------------------------------------------


@pytest.mark.parametrize("distribution", sorted(PEERS))
def test_the_installed_peer_is_the_pinned_version_the_guide_names(distribution: str) -> None:
    """Each guide names the version it was checked against: the bench pin, installed here."""
    pinned = bench_pins()[distribution]
    assert importlib.metadata.version(distribution) == pinned
    guide = (GUIDES / PEERS[distribution]).read_text()
    assert f"`{distribution}` {pinned}" in guide


def test_the_test_group_pins_the_peers_as_the_bench_session_does() -> None:
    """pyproject's test group installs exactly the bench session's peer versions."""
    pyproject = (ROOT / "pyproject.toml").read_text()
    for distribution, version in bench_pins().items():
        if distribution in PEERS:
            assert f'"{distribution}=={version}"' in pyproject


# -- the examples ----------------------------------------------------------------------

ALL_EXAMPLES = [(page, name) for page, names in EXAMPLE_FILES.items() for name in names]


@pytest.mark.parametrize(("page", "name"), ALL_EXAMPLES)
def test_each_example_is_shown_verbatim_in_its_guide(page: str, name: str) -> None:
    """The file that runs is the block the guide shows, character for character."""
    source = (EXAMPLES / name).read_text()
    assert source.count(SHOWN_HOST) == 1, "the test swaps exactly one host for its own"
    guide = (GUIDES / page).read_text()
    block = f"```python\n{source}```"
    assert block in guide
    line_before = guide[: guide.index(block)].rstrip("\n").rsplit("\n", 1)[-1]
    skipped = line_before.startswith('<!-- skip: next "') and line_before.endswith('" -->')
    # The peers' own code needs the peer installed: the docs harness skips it and this
    # module runs it. Our code runs in both.
    assert skipped == ("_before" in name), "only the peers' examples carry the skip marker"


async def _run_example(name: str, url: str, directory: Path) -> str:
    script = directory / name
    script.write_text((EXAMPLES / name).read_text().replace(SHOWN_HOST, url))
    variables = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy")
    proxies = dict.fromkeys(variables, DEAD_PROXY)
    env = environment({**proxies, "NO_PROXY": "127.0.0.1", "no_proxy": "127.0.0.1"})
    env.pop("TEST_DATA_PLANE_URL", None)  # rudder-sdk-python's default host comes from it
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(script),
        cwd=directory,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    assert b"Traceback" not in err, err.decode()
    return out.decode()


def _basic(headers: dict[str, str]) -> str | None:
    value = headers.get("authorization")
    if value is None:
        return None
    scheme, _, token = value.partition(" ")
    assert scheme == "Basic"
    return base64.b64decode(token).decode()


def _segment_spec_messages(collector: LocalCollector) -> list[dict[str, Any]]:
    return [m for r in collector.requests for m in r.body["batch"]]


def _check_segment_before(collector: LocalCollector) -> None:
    (request,) = collector.requests
    assert _basic(request.headers) == "YOUR_WRITE_KEY:"
    assert request.body["writeKey"] == "YOUR_WRITE_KEY"
    assert not request.gzip
    identify, track = _segment_spec_messages(collector)
    assert identify["traits"] == {"email": "ada@example.com"}
    assert track["context"]["library"]["name"] == "analytics-python"


def _check_hightouch_before(collector: LocalCollector) -> None:
    (request,) = collector.requests
    assert "authorization" not in request.headers  # the key is in the body only
    assert request.body["writeKey"] == "YOUR_WRITE_KEY"
    assert not request.gzip
    identify, track = _segment_spec_messages(collector)
    assert identify["traits"] == {"email": "ada@example.com"}
    assert track["context"]["library"]["name"] == "events-sdk-python"


def _check_rudderstack_before(collector: LocalCollector) -> None:
    (request,) = collector.requests
    assert _basic(request.headers) == "YOUR_WRITE_KEY:"
    assert "writeKey" not in request.body  # Basic auth only
    assert request.gzip
    identify, track = _segment_spec_messages(collector)
    assert "traits" not in identify
    assert identify["context"]["traits"] == {"email": "ada@example.com"}
    for message in (identify, track):
        assert message["integrations"] == {"All": True}
        assert message["channel"] == "server"


def _check_posthog_before(collector: LocalCollector) -> None:
    events = [e for r in collector.requests for e in r.body["batch"]]
    assert [e["event"] for e in events] == ["$set", "Order completed"]
    assert events[0]["$set"] == {"email": "ada@example.com"}
    for request in collector.requests:
        assert request.body["api_key"] == "phc_YOUR_PROJECT_KEY"
        assert not request.gzip
    for event in events:
        assert event["properties"]["$geoip_disable"] is True


BEFORE_CHECKS: dict[str, Callable[[LocalCollector], None]] = {
    "segment_before.py": _check_segment_before,
    "hightouch_before.py": _check_hightouch_before,
    "rudderstack_before.py": _check_rudderstack_before,
    "posthog_before.py": _check_posthog_before,
    "posthog_async_before.py": _check_posthog_before,
}


@pytest.mark.parametrize("name", sorted(BEFORE_CHECKS))
async def test_each_before_example_delivers_what_the_guide_says(
    name: str, collector: LocalCollector, tmp_path: Path
) -> None:
    """The peer's example, run as shown, delivers its two events in the peer's own shape."""
    await _run_example(name, collector.url, tmp_path)
    await collector.wait_for(2)
    BEFORE_CHECKS[name](collector)


AFTER_EXAMPLES = sorted(n for names in EXAMPLE_FILES.values() for n in names if "after" in n)


@pytest.mark.parametrize("name", AFTER_EXAMPLES)
async def test_each_after_example_delivers_both_events(
    name: str, collector: LocalCollector, tmp_path: Path
) -> None:
    """Our example, run as shown, delivers the same two events with gzip and both auths."""
    out = await _run_example(name, collector.url, tmp_path)
    await collector.wait_for(2)
    assert "failed" not in out
    if "sync" not in name:
        assert "still pending: 0" in out
    requests_seen = collector.requests
    assert all(r.gzip and r.status == 200 for r in requests_seen)
    events = [e for r in requests_seen for e in r.body["batch"]]
    if name.startswith("posthog"):
        assert [e["event"] for e in events] == ["$identify", "Order completed"]
        assert events[0]["$set"] == {"email": "ada@example.com"}
        assert all(r.body["api_key"] == "phc_YOUR_PROJECT_KEY" for r in requests_seen)
        # posthog marks every event $geoip_disable by default; we send no such flag.
        assert all("$geoip_disable" not in e["properties"] for e in events)
    else:
        assert [e["type"] for e in events] == ["identify", "track"]
        assert events[0]["traits"] == {"email": "ada@example.com"}
        # Milliseconds and "Z"; integrations as given (none); no rudder-style channel.
        assert all(re.search(r"T[0-9:]{8}\.[0-9]{3}Z$", e["timestamp"]) for e in events)
        assert all(e["integrations"] == {} and "channel" not in e for e in events)
        assert all(_basic(r.headers) == "YOUR_WRITE_KEY:" for r in requests_seen)
        assert all(r.body["writeKey"] == "YOUR_WRITE_KEY" for r in requests_seen)
