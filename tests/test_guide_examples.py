"""Guide examples that are also tests: each guide shows them exactly as they run."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("example", ["worker_loop.py", "arq_worker.py", "taskiq_worker.py"])
def test_the_async_workers_guide_shows_the_examples_that_run(example: str) -> None:
    """tests/examples/<example> is pasted verbatim in docs/guides/async-workers.md."""
    text = (ROOT / "tests" / "examples" / example).read_text()
    guide = (ROOT / "docs" / "guides" / "async-workers.md").read_text()
    assert f"```python\n{text}```" in guide
