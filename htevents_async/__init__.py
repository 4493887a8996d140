"""htevents-async: record customer events from asyncio code and deliver them in batches.

::

    import htevents_async

    async with htevents_async.Client(write_key) as events:
        await events.track(user_id="123", event="Order completed",
                           properties={"total": 29.99})

Every public name is re-exported here; the modules behind them are private.
"""

from ._batch import Batch as Batch
from ._client import Client as Client
from ._config import Config as Config
from ._context import context_scope as context_scope
from ._delete import Delete as Delete
from ._errors import ClientClosedError as ClientClosedError
from ._errors import ClientStateError as ClientStateError
from ._errors import ConfigError as ConfigError
from ._errors import DeliveryError as DeliveryError
from ._errors import DroppedError as DroppedError
from ._errors import ForkedClientError as ForkedClientError
from ._errors import HteventsError as HteventsError
from ._errors import HTTPStatusError as HTTPStatusError
from ._errors import MessageError as MessageError
from ._errors import MessageTooLargeError as MessageTooLargeError
from ._errors import MessageTypeError as MessageTypeError
from ._errors import QueueFullError as QueueFullError
from ._errors import RetriesExhaustedError as RetriesExhaustedError
from ._errors import ShutdownError as ShutdownError
from ._errors import TLSVerificationError as TLSVerificationError
from ._errors import WrongEventLoopError as WrongEventLoopError
from ._hooks import Callback as Callback
from ._hooks import OnDrop as OnDrop
from ._hooks import OnFailure as OnFailure
from ._hooks import OnSuccess as OnSuccess
from ._messages import Alias as Alias
from ._messages import Group as Group
from ._messages import Identify as Identify
from ._messages import Message as Message
from ._messages import Page as Page
from ._messages import Screen as Screen
from ._messages import Track as Track
from ._plugins import BeforeSend as BeforeSend
from ._protocols import OdpEvent as OdpEvent
from ._protocols import OdpProtocol as OdpProtocol
from ._protocols import PostHogProtocol as PostHogProtocol
from ._protocols import SegmentProtocol as SegmentProtocol
from ._seams import Limits as Limits
from ._seams import RequestSpec as RequestSpec
from ._seams import Verdict as Verdict
from ._seams import WireProtocol as WireProtocol
from ._stats import Statistics as Statistics
from ._sync import SyncClient as SyncClient
from ._version import __version__ as __version__

__all__ = [
    "Alias",
    "Batch",
    "BeforeSend",
    "Callback",
    "Client",
    "ClientClosedError",
    "ClientStateError",
    "Config",
    "ConfigError",
    "Delete",
    "DeliveryError",
    "DroppedError",
    "ForkedClientError",
    "Group",
    "HTTPStatusError",
    "HteventsError",
    "Identify",
    "Limits",
    "Message",
    "MessageError",
    "MessageTooLargeError",
    "MessageTypeError",
    "OdpEvent",
    "OdpProtocol",
    "OnDrop",
    "OnFailure",
    "OnSuccess",
    "Page",
    "PostHogProtocol",
    "QueueFullError",
    "RequestSpec",
    "RetriesExhaustedError",
    "Screen",
    "SegmentProtocol",
    "ShutdownError",
    "Statistics",
    "SyncClient",
    "TLSVerificationError",
    "Track",
    "Verdict",
    "WireProtocol",
    "WrongEventLoopError",
    "__version__",
    "context_scope",
]

# Reprs and docs say htevents_async.Client, not htevents_async._client.Client.
for _name in __all__:
    _obj = globals()[_name]
    if isinstance(_obj, type) and _obj.__module__.startswith("htevents_async._"):
        _obj.__module__ = __name__
del _name, _obj
