"""The distribution version, read by the build backend and sent as ``User-Agent``."""

__version__ = "0.2.0"
