"""The version lives in htevents_async/_version.py; the command line reports that one."""

from __future__ import annotations

from cli_support import run

import htevents_async


async def test_python_m_version_prints_the_package_version() -> None:
    """``python -m htevents_async --version`` prints the version and exits 0."""
    result = await run("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"htevents-async {htevents_async.__version__}"
