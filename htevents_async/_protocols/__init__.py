"""The wire protocols a client can speak, one module each, behind :class:`WireProtocol`."""

from __future__ import annotations

from .._config import Config
from .._errors import ConfigError
from .._seams import WireProtocol
from .odp import OdpEvent, OdpProtocol
from .posthog import PostHogProtocol
from .segment import SegmentProtocol

__all__ = [
    "OdpEvent",
    "OdpProtocol",
    "PostHogProtocol",
    "SegmentProtocol",
    "check_limits",
    "resolve",
]

_BY_NAME: dict[str, type[SegmentProtocol | PostHogProtocol | OdpProtocol]] = {
    "segment": SegmentProtocol,
    "posthog": PostHogProtocol,
    "odp": OdpProtocol,
}


def resolve(protocol: str | WireProtocol) -> WireProtocol:
    """The protocol object for a ``Config.protocol`` value."""
    if isinstance(protocol, str):
        try:
            return _BY_NAME[protocol]()
        except KeyError:
            raise ConfigError(
                f"Config.protocol must be 'segment', 'posthog', 'odp' or a WireProtocol, "
                f"got {protocol!r}"
            ) from None
    return protocol


def check_limits(config: Config, protocol: WireProtocol, write_key: str) -> None:
    """Refuse options that raise a protocol's caps, leave no room for its envelope, or
    that the protocol cannot honour."""
    limits = protocol.limits
    for option, value, cap in (
        ("max_batch_size", config.max_batch_size, limits.batch_events),
        ("max_batch_bytes", config.max_batch_bytes, limits.batch_bytes),
        ("max_message_bytes", config.max_message_bytes, limits.message_bytes),
    ):
        if value > cap:
            raise ConfigError(
                f"Config.{option} must be at most {cap:,} (the limit of protocol "
                f"{protocol.name!r}, which options may lower but not raise), got {value:,}"
            )
    if config.before_send and not isinstance(protocol, SegmentProtocol):
        # Plugins edit the canonical (Segment-shaped) event and encode it as such; the other
        # protocols map messages, not edited dicts, so plugins would be silently bypassed.
        raise ConfigError(
            f"Config.before_send is supported with protocol='segment' only, got "
            f"protocol {protocol.name!r}"
        )
    envelope = protocol.request(write_key, config.url).overhead
    if config.max_message_bytes + envelope > config.max_batch_bytes:
        raise ConfigError(
            f"Config.max_batch_bytes ({config.max_batch_bytes}) must hold one message of "
            f"max_message_bytes ({config.max_message_bytes}) plus the {envelope} bytes "
            "the request body adds with this write key"
        )
