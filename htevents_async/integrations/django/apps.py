"""The Django app: ``"htevents_async.integrations.django"`` in ``INSTALLED_APPS``."""

from __future__ import annotations

from django.apps import AppConfig

from . import get_client

__all__ = ["HteventsConfig"]


class HteventsConfig(AppConfig):  # type: ignore[misc]  # Django ships no type hints
    """Makes the client from ``settings.HTEVENTS`` at startup, so bad settings fail early.

    Nothing starts here: the delivery thread starts in each process on first use.
    """

    name = "htevents_async.integrations.django"
    label = "htevents_async"
    verbose_name: str = "htevents-async"
    default = True

    def ready(self) -> None:
        """Validate the settings by making the (not yet started) client."""
        get_client()
