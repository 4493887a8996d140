"""A Griffe extension that turns the docstrings' Sphinx roles into Markdown for mkdocstrings.

The docstrings name other objects the way Sphinx does (:class:`~htevents_async.Client`),
which also reads well in ``help()``. For the site, a role naming one of this package's
objects becomes a cross-reference, linked by mkdocstrings; any other (httpx, the
standard library) becomes a code span.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:py:)?(?:class|meth|func|mod|attr|data|exc|obj):`(~?)([^`<]+?)`")


def _markdown(match: re.Match[str]) -> str:
    short, target = match.group(1) == "~", match.group(2).strip()
    shown = target.rsplit(".", 1)[-1] if short else target
    if target.startswith("htevents_async") and not any(
        part.startswith("_") for part in target.split(".")
    ):
        return f"[`{shown}`][{target}]"
    return f"`{shown}`"


class SphinxRoles(griffe.Extension):
    """Rewrite the roles of every docstring Griffe loads."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = _ROLE.sub(_markdown, obj.docstring.value)
