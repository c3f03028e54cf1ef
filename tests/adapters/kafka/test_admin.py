"""Topic provisioning: names checked before any call, partitions and retention honoured,
idempotent."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from confluent_kafka.admin import AdminClient, ConfigResource

from onex_adapters.kafka import (
    DEFAULT_RETENTION_MS,
    KafkaSettings,
    Provisioned,
    TopicSpec,
    check_kafka_topic,
    create_topics,
)
from onex_adapters.kafka import admin as admin_module
from onex_core.errors import TopicError, UsageError
from onex_core.topics import Kind

Settings = Callable[..., KafkaSettings]
Topic = Callable[..., str]
DAY_MS = 86_400_000


@pytest.mark.parametrize(
    ("kind", "retention", "policy"),
    [
        ("evt", 30 * DAY_MS, "delete"),
        ("cmd", 7 * DAY_MS, "delete"),
        ("intent", 1 * DAY_MS, "delete"),
        ("snapshot", 7 * DAY_MS, "compact,delete"),
        ("dlq", 7 * DAY_MS, "delete"),
    ],
)
def test_retention_and_cleanup_default_by_kind(kind: str, retention: int, policy: str) -> None:
    spec = TopicSpec(f"onex.{kind}.platform.thing.v1")
    assert spec.config == {"retention.ms": str(retention), "cleanup.policy": policy}
    assert DEFAULT_RETENTION_MS[Kind(kind)] == retention


def test_an_explicit_retention_wins() -> None:
    assert TopicSpec("onex.evt.a.b.v1", retention_ms=5000).config["retention.ms"] == "5000"
    assert TopicSpec("onex.evt.a.b.v1", retention_ms=-1).config["retention.ms"] == "-1"


@pytest.mark.parametrize(
    "name",
    [
        "",
        "orders",
        "onex.evt.Platform.thing.v1",
        "onex.evt.platform.thing.v0",
        "onex.events.platform.thing.v1",
        "dev.onex.evt.platform.thing.v1",
        "onex.evt.platform.thing.v1\n",
        "onex.evt.platform." + "x" * 250 + ".v1",
    ],
)
def test_a_name_outside_the_onex_grammar_is_refused(name: str) -> None:
    with pytest.raises(TopicError):
        TopicSpec(name)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("partitions", 0),
        ("partitions", True),
        ("replication_factor", 0),
        ("retention_ms", -2),
        ("retention_ms", 1.5),
    ],
)
def test_numbers_out_of_range_are_refused(field: str, value: Any) -> None:
    with pytest.raises(UsageError, match=field):
        TopicSpec("onex.evt.a.b.v1", **{field: value})


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        ("onex.evt.a.b.v1", True),
        ("Legacy_Topic-1", True),
        ("", False),
        ("..", False),
        ("a b", False),
        ("^onex.*", False),
        ("x" * 249, True),
        ("x" * 250, False),
    ],
)
def test_kafka_name_rules(name: str, ok: bool) -> None:
    if ok:
        assert check_kafka_topic(name) == name
    else:
        with pytest.raises(TopicError, match="Kafka's rules"):
            check_kafka_topic(name)


def test_a_bad_request_is_refused_before_any_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_client(config: dict[str, Any]) -> None:
        raise AssertionError("an admin client was created for a request that was refused")

    monkeypatch.setattr(admin_module, "AdminClient", no_client)
    settings = KafkaSettings("127.0.0.1:1")
    spec = TopicSpec("onex.evt.a.b.v1")
    with pytest.raises(UsageError, match="listed twice"):
        asyncio.run(create_topics(settings, [spec, TopicSpec("onex.evt.a.b.v1", partitions=9)]))
    with pytest.raises(UsageError, match="TopicSpec"):
        asyncio.run(create_topics(settings, [spec, "onex.evt.a.c.v1"]))  # type: ignore[list-item]
    assert asyncio.run(create_topics(settings, [])) == Provisioned((), ())


@pytest.mark.kafka
def test_topics_are_created_with_their_partitions_and_retention_idempotently(
    settings: Settings, topic: Topic
) -> None:
    events, snapshots = topic("created"), topic("state", kind="snapshot")
    specs = [TopicSpec(events, partitions=3), TopicSpec(snapshots, partitions=1)]

    first = asyncio.run(create_topics(settings(), specs))
    assert first == Provisioned(created=(events, snapshots), existing=())
    more = topic("more")
    again = asyncio.run(create_topics(settings(), [*specs, TopicSpec(more, partitions=2)]))
    assert again == Provisioned(created=(more,), existing=(events, snapshots))

    admin = AdminClient(settings().admin_config())
    metadata = admin.list_topics(timeout=10)
    assert len(metadata.topics[events].partitions) == 3
    assert len(metadata.topics[snapshots].partitions) == 1
    assert len(metadata.topics[more].partitions) == 2
    futures = admin.describe_configs(
        [ConfigResource("topic", events), ConfigResource("topic", snapshots)]
    )
    configs = {res.name: fut.result(timeout=10) for res, fut in futures.items()}
    assert configs[events]["retention.ms"].value == str(30 * DAY_MS)
    assert configs[snapshots]["retention.ms"].value == str(7 * DAY_MS)
    assert configs[snapshots]["cleanup.policy"].value == "compact,delete"
