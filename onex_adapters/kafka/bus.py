"""The Kafka event bus: the :class:`~onex_core.ports.EventBus` port on confluent-kafka.

:class:`KafkaBus` is a consumer-group member and a producer in one object, keeping the same
promises as the in-memory bus (:mod:`onex_adapters.memory_bus`), which the runtime is tested
against:

- ``publish`` returns only once the broker confirmed the record (idempotent producer,
  ``acks=all``); :meth:`KafkaBus.publish_many` confirms a whole batch at once, for throughput.
- ``poll`` returns up to ``max_records`` records, waiting at most ``timeout`` for the first;
  records of one partition come in offset order. It never blocks the event loop.
- ``commit`` moves the group's offsets to "highest given offset + 1" per partition,
  synchronously (it returns once the coordinator confirmed), never backwards, and refuses —
  with ``EffectUnavailable`` — records of partitions no longer assigned to this member, or
  fetched before the partition last changed hands (see :mod:`onex_adapters.kafka.consumer`).
  The partitions it may commit are committed even then.
- ``close`` leaves the group at once (no session-timeout wait for the others) and delivers
  what is still queued within ``close_timeout``.

**Keys.** Publish an envelope with ``key=`` its ``entity_id``
(:func:`onex_adapters.kafka.headers.partition_key`): all messages about one entity then share a
partition and are consumed in order. Headers for an envelope come from
:func:`onex_adapters.kafka.headers.envelope_headers`.

**Rebalances.** The group uses the ``cooperative-sticky`` assignor: a member joining or leaving
moves only the partitions that must move. Set :attr:`KafkaBus.on_revoked` to be told when
partitions leave (see :class:`~onex_adapters.kafka.consumer.RevokeHook`); read
:attr:`KafkaBus.assignment` for the partitions owned now.

**Topics.** A broker may create a topic silently the first time it is produced to; the bus
only checks names against Kafka's rules. Create topics up front with
:func:`onex_adapters.kafka.admin.create_topics`; the runtime checks topics against its contracts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from confluent_kafka import Consumer, Producer

from onex_adapters.kafka.config import KafkaSettings
from onex_adapters.kafka.consumer import GroupConsumer, Partition, RevokeHook
from onex_adapters.kafka.producer import Outgoing, Publisher
from onex_core.ports import Record

__all__ = ["KafkaBus"]


class KafkaBus:
    """An :class:`~onex_core.ports.EventBus` on Kafka.

    The clients are created on first use — the producer by the first publish, the consumer by
    ``subscribe`` — so a bus that only publishes never joins a group. Use one bus from one
    event loop.

    Args:
        settings: connection, security, group and timeouts.
        on_revoked: the revoke hook (may also be set later through :attr:`on_revoked`).
        consumer_factory: builds the librdkafka consumer from its configuration (for tests).
        producer_factory: builds the librdkafka producer from its configuration (for tests).
    """

    def __init__(
        self,
        settings: KafkaSettings,
        *,
        on_revoked: RevokeHook | None = None,
        consumer_factory: Callable[[dict[str, Any]], Any] = Consumer,
        producer_factory: Callable[[dict[str, Any]], Any] = Producer,
    ) -> None:
        self.settings = settings
        self._consumer = GroupConsumer(settings, on_revoked=on_revoked, factory=consumer_factory)
        self._publisher = Publisher(settings, factory=producer_factory)

    def __repr__(self) -> str:
        return (
            f"KafkaBus(bootstrap_servers={self.settings.bootstrap_servers!r}, "
            f"group_id={self.settings.group_id!r})"
        )

    @property
    def on_revoked(self) -> RevokeHook | None:
        """Called on the event loop when partitions leave this member."""
        return self._consumer.on_revoked

    @on_revoked.setter
    def on_revoked(self, hook: RevokeHook | None) -> None:
        self._consumer.on_revoked = hook

    @property
    def assignment(self) -> frozenset[Partition]:
        """The ``(topic, partition)`` pairs this member owns right now."""
        return self._consumer.assignment

    # ------------------------------------------------------------------ EventBus

    async def subscribe(self, topics: Sequence[str]) -> None:
        """Join the group for ``topics`` (exact names); replaces an earlier subscription, and
        an empty sequence unsubscribes. Partitions arrive with the following polls.

        Raises:
            TopicError: a name breaks Kafka's rules (regular expressions are not accepted).
            UsageError: the bus is closed, or ``topics`` is a single string.
        """
        await self._consumer.subscribe(topics)

    async def poll(self, max_records: int, timeout: float) -> Sequence[Record]:
        """Up to ``max_records`` records, waiting at most ``timeout`` seconds for the first.

        Raises:
            UsageError: called before ``subscribe``, concurrently with another poll, after
                ``close``, or with ``max_records`` outside 1..100,000.
            EffectUnavailable: the consumer failed fatally (create a new bus).
        """
        return await self._consumer.poll(max_records, timeout)

    async def publish(
        self,
        topic: str,
        value: bytes,
        *,
        key: bytes | None = None,
        headers: Sequence[tuple[str, bytes]] = (),
    ) -> None:
        """Publish one record; return once the broker confirmed it.

        Raises:
            EffectUnavailable: not confirmed — it may or may not have been written.
            EffectRejected: refused for good (too large, not authorized); not written.
            TopicError: ``topic`` breaks Kafka's rules; nothing was sent.
        """
        await self._publisher.publish(topic, value, key=key, headers=headers)

    async def publish_many(self, records: Iterable[Outgoing]) -> None:
        """Publish ``records`` and return once every one was confirmed (see
        :meth:`Publisher.publish_many <onex_adapters.kafka.producer.Publisher.publish_many>`)."""
        await self._publisher.publish_many(records)

    async def commit(self, records: Sequence[Record]) -> None:
        """Commit past ``records``: per partition, the highest offset given plus one.

        Raises:
            EffectUnavailable: some partitions were refused (no longer assigned, or the records
                predate the current assignment) or the commit was not confirmed; the others
                were committed. Uncommitted records will be delivered again.
            UsageError: called before ``subscribe`` or after ``close``.
        """
        await self._consumer.commit(records)

    async def close(self) -> None:
        """Leave the group (the revoke hook runs for the owned partitions), then deliver what
        is queued within ``close_timeout``. Safe to call twice; later calls of other methods
        raise ``UsageError``."""
        try:
            await self._consumer.close()
        finally:
            await self._publisher.close()
