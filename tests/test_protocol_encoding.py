"""Each protocol's plain fast path sends or refuses exactly what its general path does,
and its encoded events give back their ids."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support import property_values

from htevents_async import (
    Identify,
    Message,
    MessageError,
    OdpEvent,
    OdpProtocol,
    PostHogProtocol,
    Track,
)
from htevents_async._protocols import SegmentProtocol, resolve
from htevents_async._seams import WireProtocol

values = property_values()
properties = st.dictionaries(st.text(max_size=8), values, max_size=4)
PROTOCOLS: list[WireProtocol] = [SegmentProtocol(), PostHogProtocol(), OdpProtocol()]


def outcome(protocol: WireProtocol, encode: Any) -> tuple[str, str]:
    """The wire text with its generated id and time blanked out, or the error raised."""
    try:
        message_id, text = encode()
    except MessageError as exc:
        return (type(exc).__name__, str(exc))
    assert protocol.message_id_of(text) == message_id
    text = text.replace(json.dumps(message_id), '"<id>"', 1)
    stamp = json.loads(text).get("timestamp")
    if stamp is not None:
        text = text.replace(stamp, "<time>", 1)
    return ("sent", text)


@pytest.mark.parametrize("protocol", PROTOCOLS, ids=lambda p: p.name)
@settings(max_examples=150, deadline=None)
@given(user_id=st.text(min_size=1, max_size=8), props=properties)
def test_plain_and_general_encodings_match(
    protocol: WireProtocol, user_id: str, props: dict[str, Any]
) -> None:
    """Plain track and identify calls encode as their message objects do."""
    encoder = protocol.encoder(2000)  # small enough that some examples are too large
    plain = outcome(
        protocol,
        lambda: encoder.encode_plain(
            "track", {"userId": user_id, "event": "e", "properties": props}, "Track"
        ),
    )
    general = outcome(
        protocol, lambda: encoder.encode(Track(user_id=user_id, event="e", properties=props))
    )
    assert plain == general
    plain = outcome(
        protocol,
        lambda: encoder.encode_plain("identify", {"userId": user_id, "traits": props}, "Identify"),
    )
    general = outcome(protocol, lambda: encoder.encode(Identify(user_id=user_id, traits=props)))
    assert plain == general


@pytest.mark.parametrize("protocol", PROTOCOLS, ids=lambda p: p.name)
def test_ids_survive_caller_data_with_the_same_key(protocol: WireProtocol) -> None:
    """A caller key named like the id field never shadows the event's own id."""
    encoder = protocol.encoder(32_000)
    props = {"messageId": "x", "uuid": "y", "nested": {"uuid": "z", "messageId": "w"}}
    message: Message = Track(user_id="u", event="e", properties=props, message_id="mine")
    if protocol.name == "odp":  # flat data; the identifiers may use any name
        ids = {"idempotence_id": "z", "messageId": "w"}
        message = OdpEvent(action="a", identifiers=ids, data={"uuid": "y"}, message_id="mine")
    message_id, text = encoder.encode(message)
    assert message_id == "mine"
    assert protocol.message_id_of(text) == "mine"


@pytest.mark.parametrize("protocol", PROTOCOLS, ids=lambda p: p.name)
def test_request_envelope_decodes(protocol: WireProtocol) -> None:
    """head + events + tail() is a body the protocol's own decoder reads back."""
    encoder = protocol.encoder(32_000)
    texts = [encoder.encode(Track(user_id="u", event=f"e{i}"))[1] for i in range(3)]
    spec = protocol.request("key-abcdef", "http://127.0.0.1/x")
    body = spec.head + ",".join(texts).encode() + spec.tail()
    assert len(spec.head) + len(spec.tail()) <= spec.overhead
    assert protocol.decode_body(body) == [json.loads(text) for text in texts]
    assert "key-abcdef" in spec.secrets


def test_too_large_is_refused_on_each_path() -> None:
    """max_message_bytes holds for the protocols' own encoders too."""
    for protocol in PROTOCOLS:
        encoder = protocol.encoder(200)
        with pytest.raises(MessageError, match="over max_message_bytes"):
            encoder.encode_plain(
                "track", {"userId": "u", "event": "e", "properties": {"p": "x" * 300}}, "Track"
            )


def test_resolve_keeps_an_instance() -> None:
    """A WireProtocol passed in is used as it is."""
    protocol = PostHogProtocol(group_type="team")
    assert resolve(protocol) is protocol
    assert isinstance(protocol, WireProtocol)


def test_posthog_classify_reads_the_quota_body() -> None:
    """200 with events quota limited is final; other 200s are deliveries; 5xx retried."""
    protocol = PostHogProtocol()
    assert protocol.classify(200, {}, b'{"status": 1}').outcome == "delivered"
    assert protocol.classify(200, {}, b"not json, says uota").outcome == "delivered"
    verdict = protocol.classify(200, {}, b'{"quota_limited": ["events"]}')
    assert verdict.outcome == "final"
    retry = protocol.classify(503, {"retry-after": "7"}, b"")
    assert (retry.outcome, retry.retry_after) == ("retry", 7.0)
    assert OdpProtocol().classify(202, {}, b"").outcome == "delivered"
    assert OdpProtocol().classify(401, {}, b"").outcome == "final"
