"""``python -m htevents_async``: the same command line as the ``htevents-async`` script."""

from ._cli import main

if __name__ == "__main__":
    raise SystemExit(main())
