"""A batch of encoded events: what hooks receive. The request body is the protocol's
(see :mod:`._protocols`)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, final

if TYPE_CHECKING:
    from collections.abc import Callable

    from ._errors import DeliveryError

__all__ = ["Batch", "Entry", "message_id_of"]

#: A queued event: its JSON text (pure ASCII), and its per-call callback with the
#: message id already bound (``None`` without one). The id is not stored apart:
#: it is in the text, and a 100k backlog is 9 MB smaller without the copy.
Entry = tuple[str, "Callable[[DeliveryError | None], object] | None"]

_ID_KEY = '"messageId":'
_decode_string = json.JSONDecoder().raw_decode


def message_id_of(text: str) -> str:
    """The ``messageId`` of an encoded Segment-spec event (the default protocol's reader).

    The encoder writes it before any caller data, so the first occurrence of the
    key is the message's own.
    """
    start = text.index(_ID_KEY) + len(_ID_KEY)
    value: str = _decode_string(text, start)[0]
    return value


@final
class Batch:
    """Events delivered, failed or dropped together, as hooks see them.

    The events are kept as the exact JSON sent; :attr:`messages` decodes
    them on first use, so hooks that only count cost nothing.
    """

    __slots__ = ("_entries", "_id_of", "_messages")

    def __init__(
        self, entries: Sequence[Entry], id_of: Callable[[str], str] = message_id_of
    ) -> None:
        self._entries = entries
        # The protocol's reader: the id is ``messageId``, ``uuid`` or ``idempotence_id``.
        self._id_of = id_of
        self._messages: list[dict[str, Any]] | None = None

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.messages)

    def __repr__(self) -> str:
        return f"<Batch of {len(self._entries)} events>"

    @property
    def message_ids(self) -> list[str]:
        """The message id of each event, in batch order."""
        id_of = self._id_of
        return [id_of(entry[0]) for entry in self._entries]

    @property
    def messages(self) -> list[dict[str, Any]]:
        """Each event as the collector receives it (decoded JSON), in batch order."""
        if self._messages is None:
            self._messages = [json.loads(entry[0]) for entry in self._entries]
        return self._messages

    @property
    def encoded(self) -> list[bytes]:
        """Each event's JSON bytes exactly as sent."""
        return [entry[0].encode() for entry in self._entries]

    @property
    def entries(self) -> Sequence[Entry]:
        """The queue entries behind the batch (internal use by the flusher)."""
        return self._entries
