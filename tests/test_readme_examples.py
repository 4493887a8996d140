"""Documented examples that are also tests: the page must show them exactly as they run."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_testing_example_in_the_docs_is_the_one_that_runs() -> None:
    """tests/readme/test_testing_example.py is pasted verbatim in the testing guide."""
    example = (ROOT / "tests" / "readme" / "test_testing_example.py").read_text()
    guide = (ROOT / "docs" / "guides" / "testing.md").read_text()
    assert f"```python\n{example}```" in guide


def test_every_relative_link_of_the_readme_names_a_file() -> None:
    """The README links into docs/ by relative paths, which GitHub resolves; a moved page
    would leave a dead link that the strict site build, which does not read the README,
    cannot see."""
    readme = (ROOT / "README.md").read_text()
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", readme)
    relative = [t for t in targets if "://" not in t]
    assert relative, "the README links into the documentation"
    missing = [t for t in relative if not (ROOT / t).is_file()]
    assert not missing, missing
