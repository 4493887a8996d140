"""Documented examples that are also tests: the page must show them exactly as they run."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_testing_example_in_the_docs_is_the_one_that_runs() -> None:
    """tests/readme/test_testing_example.py is pasted verbatim in the testing guide."""
    example = (ROOT / "tests" / "readme" / "test_testing_example.py").read_text()
    guide = (ROOT / "docs" / "guides" / "testing.md").read_text()
    assert f"```python\n{example}```" in guide
