"""Each worker's configuration, by task queue, for workflow code to read.

Workflow classes are defined once per process, while each worker registers its own
policies. Workflow code finds them by its task queue here. The workflow sandbox must
pass this module through (``htevents_async`` is a pass-through module in
:meth:`Analytics.worker_options`), or it would see an empty copy.
"""

from __future__ import annotations

from ._inputs import Config

__all__ = ["lookup", "register", "unregister"]

_configs: dict[str, list[Config]] = {}


def register(task_queue: str, config: Config) -> None:
    """Make ``config`` the configuration of the workflows run on ``task_queue``."""
    _configs.setdefault(task_queue, []).append(config)


def unregister(task_queue: str, config: Config) -> None:
    """Undo one :func:`register`; the previous registration, if any, applies again."""
    stack = _configs.get(task_queue, [])
    if config in stack:
        stack.reverse()
        stack.remove(config)
        stack.reverse()
    if not stack:
        _configs.pop(task_queue, None)


def lookup(task_queue: str) -> Config:
    """The configuration registered for ``task_queue``: the defaults when there is none."""
    stack = _configs.get(task_queue)
    return stack[-1] if stack else Config()
