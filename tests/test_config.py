"""Client options: validated once, named in every error."""

from __future__ import annotations

import datetime as dt

import pytest

import htevents_async
from htevents_async import Client, Config, ConfigError


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("max_batch_size", 0),
        ("max_batch_size", True),
        ("max_queue_size", -1),
        ("flush_interval", -0.5),
        ("flush_interval", float("nan")),
        ("request_timeout", 0),
        ("overflow", "block"),
        ("gzip", "yes"),
        ("host", "ftp://example.com"),
        ("path", "v1/batch"),
        ("max_concurrent_requests", 0),
        ("on_failure", 42),
    ],
)
def test_bad_option_value_raises_config_error_naming_it(option: str, value: object) -> None:
    """A bad value is a ConfigError (a ValueError) whose message names the option."""
    with pytest.raises(ConfigError, match=rf"Config\.{option}") as caught:
        Client("key", **{option: value})
    assert isinstance(caught.value, ValueError)


def test_unknown_option_raises_type_error_naming_it() -> None:
    """A misspelt option is a TypeError naming it, not silently ignored."""
    with pytest.raises(TypeError, match="flush_intervall"):
        Client("key", flush_intervall=1.0)


def test_empty_write_key_is_refused() -> None:
    """The write key must be a non-empty string."""
    with pytest.raises(ConfigError, match="write_key"):
        Client("")


def test_timedelta_is_accepted_for_durations() -> None:
    """Durations take seconds or a timedelta."""
    config = Config(flush_interval=dt.timedelta(milliseconds=250))
    assert config.flush_interval == 0.25


def test_batch_size_cannot_exceed_queue_size() -> None:
    """Cross-field check: a batch could never fill from a smaller queue."""
    with pytest.raises(ConfigError, match="max_batch_size"):
        Config(max_batch_size=500, max_queue_size=100)


def test_config_whole_and_keywords_combine() -> None:
    """Keywords override a Config passed whole."""
    client = Client("key", config=Config(max_batch_size=10), gzip=False)
    assert client.config.max_batch_size == 10
    assert client.config.gzip is False


def test_defaults_match_the_design() -> None:
    """The documented defaults."""
    config = Config()
    assert config.url == "https://us-east-1.hightouch-events.com/v1/batch"
    assert (config.max_batch_size, config.max_batch_bytes) == (100, 475_000)
    assert (config.max_message_bytes, config.max_queue_size) == (32 * 1024, 10_000)
    assert (config.flush_interval, config.max_retries, config.request_timeout) == (1.0, 10, 10.0)
    assert config.gzip is True
    assert config.disable is False
    assert config.overflow == "drop"


def test_config_is_frozen() -> None:
    """A Config cannot change under a running client."""
    config = htevents_async.Config()
    with pytest.raises(AttributeError):
        config.gzip = False  # type: ignore[misc]


def test_ht_host_environment_variable_is_the_default_host(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """HT_HOST, when set and not empty, is the default host; an explicit host wins."""
    monkeypatch.setenv("HT_HOST", "http://127.0.0.1:9")
    assert Config().host == "http://127.0.0.1:9"
    assert Config(host="http://10.0.0.1:8787").host == "http://10.0.0.1:8787"
    monkeypatch.setenv("HT_HOST", "")
    assert Config().host == "https://us-east-1.hightouch-events.com"
    monkeypatch.delenv("HT_HOST")
    assert Config().host == "https://us-east-1.hightouch-events.com"


def test_a_bad_ht_host_raises_config_error_naming_host(monkeypatch: pytest.MonkeyPatch) -> None:
    """A bad HT_HOST fails at construction, naming the variable the user actually set."""
    monkeypatch.setenv("HT_HOST", "ftp://example.com")
    with pytest.raises(ConfigError, match="HT_HOST environment variable"):
        Config()
