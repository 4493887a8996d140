"""A Temporal data converter that carries our message classes as JSON.

Temporal's default JSON converter knows dataclasses, not attrs classes. This one
writes a message as an object of its non-``None`` fields and rebuilds it from the type
hint, running the message's own validation. An input that breaks the spec then fails
where it is decoded, with a non-retryable ``ApplicationError`` naming the field: a
workflow started with such an input fails at once instead of retrying forever.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import typing
from typing import Any

import attrs
import temporalio.converter
from temporalio.exceptions import ApplicationError

from ..._delete import Delete
from ..._errors import MessageError
from ..._messages import Alias, Group, Identify, Message, Page, Screen, Track
from ._inputs import METHODS, Policies

__all__ = ["data_converter", "invalid_input"]

_MESSAGE_CLASSES: frozenset[type] = frozenset({Identify, Track, Page, Screen, Group, Alias, Delete})
_INPUT_CLASSES: dict[type, str] = dict(METHODS.values())


def invalid_input(exc: MessageError) -> ApplicationError:
    """The non-retryable error an invalid message becomes: type is the exception's class."""
    return ApplicationError(str(exc), type=type(exc).__name__, non_retryable=True)


class _Encoder(temporalio.converter.AdvancedJSONEncoder):
    def default(self, o: Any) -> Any:
        if isinstance(o, (Message, Delete)):
            return {
                f.name: getattr(o, f.name)
                for f in attrs.fields(type(o))
                if getattr(o, f.name) is not None
            }
        return super().default(o)


def _message(hint: type, value: Any) -> Any:
    if not isinstance(value, dict):
        raise invalid_input(
            MessageError(f"{hint.__name__} must be a JSON object, got {type(value).__name__}")
        )
    fields = dict(value)
    timestamp = fields.get("timestamp")
    if isinstance(timestamp, str):
        try:
            fields["timestamp"] = dt.datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
        except ValueError:
            raise invalid_input(
                MessageError(f"{hint.__name__}.timestamp must be ISO-8601, got {timestamp!r}")
            ) from None
    known = attrs.fields(hint)
    unknown = sorted(set(fields) - {f.name for f in known})
    if unknown:
        raise invalid_input(MessageError(f"{hint.__name__} has no field {unknown[0]!r}"))
    for f in known:
        if f.default is attrs.NOTHING and f.name not in fields:
            raise invalid_input(MessageError(f"{hint.__name__}.{f.name} is required"))
    try:
        return hint(**fields)
    except MessageError as exc:
        raise invalid_input(exc) from None


class _TypeConverter(temporalio.converter.JSONTypeConverter):
    def to_typed_value(self, hint: type, value: Any) -> Any:
        if hint in _MESSAGE_CLASSES:
            return _message(hint, value)
        field = _INPUT_CLASSES.get(hint)
        if field is None:
            return temporalio.converter.JSONTypeConverter.Unhandled
        # Rebuilt here rather than field by field by Temporal, which would wrap the
        # message's error in a TypeError and retry the workflow task forever.
        if not isinstance(value, dict):
            raise invalid_input(MessageError(f"{hint.__name__} must be a JSON object"))
        if field not in value:
            raise invalid_input(MessageError(f"{hint.__name__}.{field} is required"))
        policies = value.get("policies")
        context = value.get("context")
        if context is not None and not isinstance(context, dict):
            raise invalid_input(MessageError(f"{hint.__name__}.context must be an object"))
        try:
            parsed_policies = (
                None if policies is None else temporalio.converter.value_to_type(Policies, policies)
            )
        except (TypeError, ValueError) as exc:
            raise invalid_input(
                MessageError(f"{hint.__name__}.policies is not valid: {exc}")
            ) from None
        message = _message(typing.get_type_hints(hint)[field], value[field])
        return hint(policies=parsed_policies, context=context, **{field: message})


_DEFAULTS = temporalio.converter.DefaultPayloadConverter


class _PayloadConverter(temporalio.converter.CompositePayloadConverter):
    def __init__(self) -> None:
        json_converter = temporalio.converter.JSONPlainPayloadConverter(
            encoder=_Encoder, custom_type_converters=[_TypeConverter()]
        )
        super().__init__(
            *(
                json_converter
                if isinstance(c, temporalio.converter.JSONPlainPayloadConverter)
                else c
                for c in _DEFAULTS.default_encoding_payload_converters
            )
        )


data_converter: temporalio.converter.DataConverter = dataclasses.replace(
    temporalio.converter.DataConverter.default, payload_converter_class=_PayloadConverter
)
"""The data converter to give ``temporalio.client.Client.connect(data_converter=...)``
(and ``Replayer``) so that inputs carrying :class:`~htevents_async.Track` and the other
message classes cross Temporal as JSON and come back as the same classes."""
