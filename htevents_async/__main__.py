"""``python -m htevents_async``: the same command line as the ``htevents-async`` script."""

from ._cli import run

if __name__ == "__main__":
    run()
