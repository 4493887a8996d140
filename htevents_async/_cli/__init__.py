"""The ``htevents-async`` command line: ``collect``, ``demo``, ``send``, ``import``, ``spool``,
``worker``.

::

    htevents-async demo
    htevents-async collect --port 8787
    htevents-async send --type track --user-id 123 --event "Order completed" \\
        --properties '{"total": 29.99}'
    htevents-async import backfill.ndjson --write-key "$HT_WRITE_KEY"

Each command is a module with ``add_arguments(parser)``, ``run(args) -> int``
and a ``DESCRIPTION`` (optionally an ``EPILOG``), listed in :data:`COMMANDS`;
adding a command is adding its module and one entry there. Arguments are
parsed with the standard library alone; the client, the local collector
(Starlette and uvicorn) and the progress bar (tqdm) are imported only by the
``run`` of the commands that use them, so ``send`` and ``import`` work on a
bare install.

Exit codes: 0 success; 1 events rejected or not delivered (or given up on), or
a missing optional dependency; 2 bad arguments or an invalid message; 130
interrupted (Ctrl+C); 143 stopped by SIGTERM.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
import traceback
from collections.abc import Sequence
from typing import Final, NoReturn, Protocol, cast

from .._errors import HteventsError
from .._version import __version__
from ._common import EXIT_INTERRUPTED, EXIT_USAGE, PROG, UsageError, fail

__all__ = ["COMMANDS", "build_parser", "main", "run"]


#: Command name -> (module, one-line summary for ``--help``), in ``--help`` order.
COMMANDS: Final[dict[str, tuple[str, str]]] = {
    "collect": (f"{__name__}.collect", "run a local collector with a live event viewer"),
    "demo": (
        f"{__name__}.demo",
        "send events of every type to an embedded collector and show what arrived",
    ),
    "send": (f"{__name__}.send", "send one event"),
    "import": (
        f"{__name__}.import_",
        "stream an NDJSON file of messages (a backfill) to the collector",
    ),
    "spool": (f"{__name__}.spool", "status, drain, dead letters and replay of a spool"),
    "worker": (f"{__name__}.worker", "run a Temporal worker for the analytics workflows"),
}


class _Command(Protocol):
    DESCRIPTION: str

    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...

    def run(self, args: argparse.Namespace) -> int: ...


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``htevents-async`` and its subcommands."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Record customer events and deliver them to a Segment-spec collector.",
        epilog="Start with `htevents-async demo`: no account and no network needed.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="log the client's debug messages"
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module_name, summary) in COMMANDS.items():
        module = cast(_Command, importlib.import_module(module_name))
        sub = subparsers.add_parser(
            name,
            help=summary,
            description=getattr(module, "DESCRIPTION", summary),
            epilog=getattr(module, "EPILOG", None),
        )
        module.add_arguments(sub)
        sub.set_defaults(handler=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.verbose:
        logging.basicConfig(format="%(levelname)s %(name)s: %(message)s")
        logging.getLogger("htevents_async").setLevel(logging.DEBUG)
    try:
        code: int = args.handler(args)
    except (UsageError, HteventsError) as exc:
        # HteventsError here is a bad message (MessageError) or option value (ConfigError).
        fail(args.command, exc)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"\n{PROG} {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    return code


def run() -> NoReturn:
    """The ``htevents-async`` script and ``python -m htevents_async``: :func:`main`, then exit.

    A command that used Temporal's SDK ends with ``os._exit`` once its output is
    flushed: that SDK's native runtime threads can crash the interpreter's
    finalization (temporalio/sdk-python#300; a SIGSEGV after the summary was printed,
    seen on Python 3.12), which would replace a finished command's exit code with a
    signal. Nothing of ours is left to finalize by then. An unexpected exception then
    prints its traceback and exits with 1, the same way.
    """
    try:
        code = main()
    except SystemExit as exc:
        if "temporalio" not in sys.modules:
            raise  # argparse's own exits, before any command ran
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except KeyboardInterrupt:
        if "temporalio" not in sys.modules:
            raise
        code = EXIT_INTERRUPTED
    except BaseException:
        if "temporalio" not in sys.modules:
            raise
        # A failure we did not expect, once that SDK runs: the traceback, as the
        # interpreter would print it, then the same exit as below.
        traceback.print_exc()
        code = 1
    if "temporalio" in sys.modules:
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)
