"""The ready-made plugins of htevents_async.plugins, one behaviour at a time."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from typing import Any

import pytest

from htevents_async import ConfigError, plugins


def event(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "type": "track",
        "messageId": "m1",
        "timestamp": "2026-01-01T00:00:00.000Z",
        "userId": "u1",
        "event": "e",
        "properties": {},
        "context": {"library": {"name": "htevents-async"}},
        "integrations": {},
    }
    base.update(fields)
    return base


_KEPT_SCRIPT = (
    "from htevents_async import plugins; s = plugins.sample(0.3, key='userId'); "
    "print(','.join(str(i) for i in range(300) if s({'userId': f'user-{i}'}) is not None))"
)


def test_sample_by_key_is_the_same_in_every_process() -> None:
    """A user's fate is a stable hash of the key: two processes with other hash seeds agree."""
    runs = []
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run(
            [sys.executable, "-c", _KEPT_SCRIPT],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        runs.append(out.stdout.strip())
    assert runs[0] == runs[1]
    kept = len(runs[0].split(","))
    assert 60 < kept < 120  # about 30 % of 300 users, fixed by the hash


def test_sample_by_key_keeps_all_or_none_of_a_users_events() -> None:
    """Every event of one user gets the same answer."""
    sample = plugins.sample(0.5, key="userId")
    for user in ("a", "b", "c", "d"):
        answers = {sample(event(userId=user, event=str(i))) is None for i in range(20)}
        assert len(answers) == 1


def test_sample_key_may_be_a_function() -> None:
    """A callable key picks the value to hash, here the anonymous id."""
    sample = plugins.sample(0.5, key=lambda e: e.get("userId") or e.get("anonymousId"))
    answers = {sample(event(userId=None, anonymousId="anon-7")) is None for _ in range(10)}
    assert len(answers) == 1


def test_sample_rates_zero_and_one() -> None:
    """Rate 0 drops everything, rate 1 keeps everything, with or without a key."""
    assert all(plugins.sample(0)(event()) is None for _ in range(50))
    assert all(plugins.sample(1.0, key="userId")(event(userId=str(i))) for i in range(50))


def test_sample_rejects_bad_rates() -> None:
    """A rate outside 0..1, or not a number, is a ConfigError."""
    for rate in (-0.1, 1.5, "half", True):
        with pytest.raises(ConfigError, match="rate must be a number from 0 to 1"):
            plugins.sample(rate)  # type: ignore[arg-type]


def test_drop_events_drops_only_named_track_events() -> None:
    """Names match track events exactly; other types with that name pass."""
    drop = plugins.drop_events({"Heartbeat"})
    assert drop(event(event="Heartbeat")) is None
    assert drop(event(event="heartbeat")) is not None
    assert drop(event(type="page", name="Heartbeat")) is not None


def test_drop_events_refuses_a_bare_string() -> None:
    """drop_events("Heartbeat") would be a set of letters: refused."""
    with pytest.raises(ConfigError, match="not a single str"):
        plugins.drop_events("Heartbeat")


def test_scrub_redacts_keys_at_any_depth_case_insensitively() -> None:
    """Named keys are redacted in properties, traits, context and nested lists."""
    scrub = plugins.scrub(keys={"password", "SSN"}, patterns=())
    result = scrub(
        event(
            properties={"Password": "x", "items": [{"ssn": "1"}, ("a", {"password": 2})]},
            context={"traits": {"ssn": "2", "keep": 1}},
        )
    )
    assert result is not None
    assert result["properties"] == {
        "Password": "[redacted]",
        "items": [{"ssn": "[redacted]"}, ("a", {"password": "[redacted]"})],
    }
    assert result["context"]["traits"] == {"ssn": "[redacted]", "keep": 1}


def test_scrub_redacts_emails_in_values_but_not_ids() -> None:
    """Email-like text is replaced inside values; the ids that join events are left alone."""
    scrub = plugins.scrub()
    result = scrub(
        event(
            userId="ada@example.com",
            properties={"note": "from Ada.L+x@mail.example.co.uk, thanks", "n": 3},
            context={"page": {"url": "https://x.test/?e=bob@example.org"}},
        )
    )
    assert result is not None
    assert result["userId"] == "ada@example.com"
    assert result["properties"] == {"note": "from [redacted], thanks", "n": 3}
    assert result["context"]["page"]["url"] == "https://x.test/?e=[redacted]"


def test_scrub_takes_custom_patterns() -> None:
    """A pattern as text or compiled replaces its matches."""
    scrub = plugins.scrub(patterns=[r"\b\d{4}-\d{4}-\d{4}-\d{4}\b", re.compile("secret")])
    result = scrub(event(properties={"card": "pay 1234-5678-9012-3456", "s": "a secret"}))
    assert result is not None
    assert result["properties"] == {"card": "pay [redacted]", "s": "a [redacted]"}


def test_scrub_rejects_a_bad_pattern() -> None:
    """An invalid regular expression is a ConfigError naming it."""
    with pytest.raises(ConfigError, match="pattern"):
        plugins.scrub(patterns=["("])


def test_add_context_keeps_what_the_event_has() -> None:
    """New keys are added; keys the event's context already has win."""
    add = plugins.add_context(app={"version": "2"}, region="eu")
    result = add(event(context={"library": {}, "region": "us"}))
    assert result is not None
    assert result["context"] == {"library": {}, "app": {"version": "2"}, "region": "us"}


def test_add_context_gives_each_event_its_own_copy() -> None:
    """A later change to one event's added value does not reach the next event."""
    add = plugins.add_context(app={"version": "2"})
    first = add(event())
    assert first is not None
    first["context"]["app"]["version"] = "changed"
    second = add(event())
    assert second is not None
    assert second["context"]["app"] == {"version": "2"}


def test_plugins_have_readable_names() -> None:
    """The repr names the plugin and its settings, as the error log shows it."""
    assert repr(plugins.sample(0.25, key="userId")) == "sample(0.25, key='userId')"
    assert repr(plugins.drop_events(["b", "a"])) == "drop_events(['a', 'b'])"
