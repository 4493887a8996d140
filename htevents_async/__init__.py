"""htevents-async: record customer events from asyncio code and deliver them in batches."""

from ._version import __version__ as __version__

__all__ = ["__version__"]
