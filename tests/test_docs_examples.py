"""Every ```python block of README.md and docs/**/*.md runs here, as written.

Sybil (https://sybil.readthedocs.io) finds the blocks; each is one test, named
``<page>:<line>``. The conventions for anyone writing a page:

- A ```python block runs top to bottom as a module would, in a namespace shared
  by the blocks of its page, in page order (a later block may use what an
  earlier one defined). Other fences (console, text, json, bash) are not run.
- It runs with ``HT_WRITE_KEY`` set and ``HT_HOST`` pointing at a local
  collector these tests start (``htevents-async collect`` on a free port), so
  ``Client(os.environ["HT_WRITE_KEY"])`` and the framework lifespans deliver to
  it. The documented local address, the literal ``http://127.0.0.1:8787``, is
  replaced by that collector's address before the block runs, so write examples
  against ``http://127.0.0.1:8787`` or the default host, and they stay pasteable.
- The events a block sends must be delivered, not merely accepted. A WARNING or
  ERROR logged by ``htevents_async`` while a block runs fails it, and so does a batch
  the collector rejects. A block whose source calls a recording method (``track(``,
  ``identify(``, ``enqueue(``, ...) must make the collector's count of received
  events rise: at once, or, when invisible blocks follow it (an app driven through
  its test client), by the end of the last of them. Late deliveries are waited for.
  A block that records somewhere else, or defines what it never runs, is listed in
  ``SENDS_NOTHING`` with the reason.
- Clients a page leaves open (a ``SyncClient`` at module level) are closed when the
  module's tests end, and must have delivered everything.
- A block that cannot run as written (an app module for a server to import, a
  settings file, a worker that needs a broker, another SDK's "before" code) is
  preceded by a skip marker whose reason is a Python string literal, visible in
  the Markdown source and in the test report, invisible on the rendered page::

      <!-- skip: next "a Django settings module, loaded by Django itself" -->

- Code a block needs to be exercised (driving an app through its test client,
  say) but that readers need not see goes in an invisible block after it::

      <!-- invisible-code-block: python
      from starlette.testclient import TestClient
      with TestClient(app) as http:
          assert http.post("/orders").status_code == 200
      -->

Sybil was chosen over pytest-examples and mktestdocs because its skip and
invisible-block markers are HTML comments, which GitHub and MkDocs both hide,
so the Markdown renders the same everywhere while the reason for a skip stays
in the source.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from servers import environment, free_port
from sybil import Document, Example
from sybil.evaluators.python import pad
from sybil.parsers.markdown import CodeBlockParser, SkipParser

from htevents_async import Client, SyncClient

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
LOCAL_ADDRESS = "http://127.0.0.1:8787"
# The durability guide's spool folder; each run gets its own so none piles up.
SPOOL_FOLDER = "/tmp/htevents-spool"
WRITE_KEY = "wk_docs_examples"
# A call of one of the client's recording methods, as a block's source spells it.
RECORDING_CALL = re.compile(r"\.(?:track|identify|page|screen|group|alias|enqueue\w*)\(")
# Blocks that call a recording method yet send nothing to the collector: the page, a
# phrase found in that block's source only, and why.
SENDS_NOTHING = {
    ("docs/guides/events.md", "object()"): "the call raises MessageTypeError: nothing is sent",
    ("docs/guides/temporal.md", "@workflow.defn"): "defines a workflow that no worker runs here",
    ("docs/guides/testing.md", "testing.capture()"): "defines tests that record in memory",
}
# Seconds a block's events may take to reach the collector after the block ends (an
# unclosed SyncClient's flush interval, say); a bound against hanging, not a speed claim.
ARRIVAL_TIMEOUT = 30.0
# Drops a page asks for (disable=True, a plugin that filters events out): not losses.
CHOSEN_DROPS = {"disabled", "filtered"}

# The address of the collector of this module, set by the fixture before any block runs.
_collector: dict[str, str] = {}


def _evaluate(example: Example) -> None:
    """Run a block as a module would, with the local address pointed at the test collector."""
    __tracebackhide__ = True
    source = (
        str(example.parsed)
        .replace(LOCAL_ADDRESS, _collector["url"])
        .replace(SPOOL_FOLDER, _collector["spool"])
    )
    line = example.line + example.parsed.line_offset
    code = compile(pad(source, line), example.path, "exec", dont_inherit=True)
    # Each block is a fresh __main__ so that `if __name__ == "__main__":` guards do
    # not start servers; the page's names carry over from block to block.
    example.namespace["__name__"] = "docs_example"
    exec(code, example.namespace)
    example.namespace.pop("__builtins__", None)


PARSERS = [CodeBlockParser(language="python", evaluator=_evaluate), SkipParser()]


class _Page:
    """A parsed page and how far along it its examples have been evaluated."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.document = Document.parse(str(path), *PARSERS)
        self.examples = list(self.document)
        self.done = 0
        # The collector's count of received events before the block that records, when
        # the invisible blocks after it have not all run yet.
        self.pending_since: int | None = None

    def code_indexes(self) -> list[int]:
        return [
            i for i, example in enumerate(self.examples) if example.region.evaluator is _evaluate
        ]

    def records(self, index: int) -> bool:
        """Whether the block at ``index`` calls a recording method that should deliver."""
        source = str(self.examples[index].parsed)
        if not RECORDING_CALL.search(source):
            return False
        page = str(self.path.relative_to(ROOT))
        return not any(p == page and phrase in source for p, phrase in SENDS_NOTHING)

    def continued(self, index: int) -> bool:
        """Whether the next example is an invisible block that carries this one on."""
        following = self.examples[index + 1 : index + 2]
        return bool(following) and (
            following[0].region.evaluator is _evaluate
            and self.document.text.startswith("<!--", following[0].start)
        )

    def run_through(self, index: int) -> None:
        """Evaluate every example up to ``index`` in page order, then that one.

        Markers and earlier blocks run first even when one test is selected alone,
        so each block sees the namespace and skip state the page gives it.
        """
        __tracebackhide__ = True
        while self.done < index:
            example = self.examples[self.done]
            self.done += 1
            # A failure or skip is reported by that block's own test; later blocks
            # still get their turn.
            with contextlib.suppress(Exception):
                example.evaluate()
        self.done = index + 1
        self.examples[index].evaluate()


_PAGES = {path: _Page(path) for path in PAGES}


def _params() -> Iterator[Any]:
    for path, page in _PAGES.items():
        for index in page.code_indexes():
            line = page.examples[index].line
            yield pytest.param(path, index, id=f"{path.relative_to(ROOT)}:{line}")


@pytest.fixture(scope="module", autouse=True)
def docs_collector(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``htevents-async collect`` on a free port, and the environment the pages assume."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        [sys.executable, "-m", "htevents_async", "collect", "--port", str(port)],
        env=environment({}),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    saved = {name: os.environ.get(name) for name in ("HT_HOST", "HT_WRITE_KEY")}
    try:
        _wait_until_up(url, process)
        os.environ["HT_HOST"] = url
        os.environ["HT_WRITE_KEY"] = WRITE_KEY
        _collector["url"] = url
        _collector["spool"] = str(tmp_path_factory.mktemp("spool"))
        yield url
        _close_leftover_clients()
        stats = _collector_stats()
        assert not stats["rejected"], f"the collector rejected {stats['rejected']} batches"
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)
    assert b"Traceback" not in err, err.decode()


def _close_leftover_clients() -> None:
    """Close the clients the pages left open; each must have delivered all it accepted."""
    problems = []
    for path, page in _PAGES.items():
        for name, value in list(page.document.namespace.items()):
            if isinstance(value, SyncClient):
                value.close()
            if isinstance(value, (Client, SyncClient)):
                stats = value.statistics()
                lost = set(stats.dropped) - CHOSEN_DROPS
                if stats.failed or lost or stats.queued or stats.in_flight:
                    problems.append(f"{path.relative_to(ROOT)}: {name}: {stats}")
    assert not problems, "clients left open lost events:\n" + "\n".join(problems)


def _wait_until_up(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            httpx.get(f"{url}/stats")
            return
        except httpx.TransportError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _collector_stats() -> dict[str, Any]:
    stats: dict[str, Any] = httpx.get(f"{_collector['url']}/stats").json()
    return stats


def _received(stats: dict[str, Any]) -> int:
    """Events that reached the collector, whatever it then did with them."""
    return int(stats["messages"] + stats["duplicates"] + stats["suppressed"])


def _wait_for_more_than(count: int) -> int:
    deadline = time.monotonic() + ARRIVAL_TIMEOUT
    while (received := _received(_collector_stats())) <= count:
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)
    return received


@pytest.mark.parametrize(("path", "index"), list(_params()))
def test_example(path: Path, index: int, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="htevents_async")
    page = _PAGES[path]
    before = _collector_stats()
    try:
        page.run_through(index)
    except BaseException:
        if not page.continued(index):
            page.pending_since = None
        raise
    if page.pending_since is None and page.records(index):
        page.pending_since = _received(before)
    if page.pending_since is not None and not page.continued(index):
        since, page.pending_since = page.pending_since, None
        received = _wait_for_more_than(since)
        assert received > since, (
            f"the collector received nothing from this block in {ARRIVAL_TIMEOUT} s"
        )
    rejected = _collector_stats()["rejected"] - before["rejected"]
    assert not rejected, f"the collector rejected {rejected} of this block's batches"
    complaints = [
        f"{record.levelname} {record.name}: {record.getMessage()}"
        for record in caplog.records
        if record.name.startswith("htevents_async") and record.levelno >= logging.WARNING
    ]
    assert not complaints, "the example's events were not all delivered:\n" + "\n".join(complaints)


def test_every_sends_nothing_entry_names_one_block() -> None:
    """An entry left behind by an edited page would exempt nothing, or the wrong block."""
    for (page, phrase), reason in SENDS_NOTHING.items():
        blocks = [
            index
            for index in _PAGES[ROOT / page].code_indexes()
            if phrase in str(_PAGES[ROOT / page].examples[index].parsed)
        ]
        assert len(blocks) == 1, (page, phrase, reason, blocks)
        assert RECORDING_CALL.search(str(_PAGES[ROOT / page].examples[blocks[0]].parsed))


def test_every_page_with_python_has_examples_here() -> None:
    """A page whose blocks the parser missed (a typo in a fence) would pass silently."""
    for path in PAGES:
        fences = path.read_text().count("```python\n")
        assert len(_PAGES[path].code_indexes()) >= fences, path


@pytest.fixture(autouse=True)
def _no_ht_host() -> None:
    """Overrides conftest's: the pages run with the HT_HOST this module sets."""
