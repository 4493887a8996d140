"""What the migration-guide tests share: where the guides and their examples live, the
peers' pinned versions, and the settings that keep the peers on 127.0.0.1."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "tests" / "migration"
GUIDES = ROOT / "docs" / "migration"
KEY = "wk_migration_1"
# The address the examples show: `htevents-async collect`'s default port.
SHOWN_HOST = "http://127.0.0.1:8787"
# Nothing listens on the discard port; as a proxy it refuses whatever is not local.
DEAD_PROXY = "http://127.0.0.1:9"

#: Distribution name as pinned in noxfile.py -> the guide that states its version.
PEERS = {
    "segment-analytics-python": "segment.md",
    "events-sdk-python": "hightouch.md",
    "rudder-sdk-python": "rudderstack.md",
    "posthog": "posthog.md",
}

#: Each guide's examples, in the order the page shows them.
EXAMPLE_FILES = {
    "segment.md": ["segment_before.py", "segment_after.py", "segment_sync_after.py"],
    "hightouch.md": ["hightouch_before.py", "hightouch_after.py", "hightouch_sync_after.py"],
    "rudderstack.md": [
        "rudderstack_before.py",
        "rudderstack_after.py",
        "rudderstack_sync_after.py",
    ],
    "posthog.md": [
        "posthog_before.py",
        "posthog_async_before.py",
        "posthog_after.py",
        "posthog_sync_after.py",
    ],
}


def bench_pins() -> dict[str, str]:
    """The peer versions noxfile.py's bench session pins, by distribution name."""
    noxfile = (ROOT / "noxfile.py").read_text()
    bench = noxfile[noxfile.index("def bench(") :]
    return dict(re.findall(r'"([a-z-]+)==([0-9.]+)"', bench))
