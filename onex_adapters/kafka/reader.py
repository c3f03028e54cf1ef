"""Reading a whole topic once, from the beginning, without a consumer group.

An operator's tools (``onex dlq show``, ``onex dlq replay``) must look at a topic without
changing anything: :func:`read_topic` assigns itself every partition of the topic at its first
offset (``assign()``, no ``subscribe()``), so it joins no group, takes no partition from a
running host, and commits nothing. librdkafka wants a ``group.id`` even then; the settings'
group id is passed and never used.

**Where the end is.** The reader stops when every partition has reported that it reached its
end (librdkafka's partition-EOF event, which follows from the fetch responses). It does not
compute the end from the high watermark a ``ListOffsets`` request returns: some brokers (the
test broker among them) report it wrongly. Records produced while the read runs may or may not
be included. A ``limit`` stops the read early; a ``timeout`` bounds it, and a read that hit
either says so (:attr:`TopicContents.stopped`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException
from confluent_kafka import TopicPartition as KafkaPartition

from onex_adapters.kafka.admin import check_kafka_topic
from onex_adapters.kafka.config import KafkaSettings
from onex_adapters.redaction import REDACTOR
from onex_core.errors import EffectRejected, EffectUnavailable, UsageError
from onex_core.ports import Record

__all__ = ["TopicContents", "read_topic"]

log = logging.getLogger("onex.kafka")

_BACKEND = "kafka"
_BATCH = 500
_WAIT = 0.2  # longest single wait for records; bounds how late the deadline is noticed
_MISSING = frozenset({KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC})
_REFUSED = frozenset({KafkaError.TOPIC_AUTHORIZATION_FAILED, KafkaError.GROUP_AUTHORIZATION_FAILED})


@dataclass(frozen=True, slots=True)
class TopicContents:
    """What :func:`read_topic` read.

    ``records`` are in (partition, offset) order. ``stopped`` says why the read ended:
    ``end`` (every partition was read to its end), ``limit`` (``limit`` records were read) or
    ``timeout`` (the end was not reached in time; there are more).
    """

    topic: str
    partitions: tuple[int, ...]
    records: tuple[Record, ...]
    stopped: Literal["end", "limit", "timeout"]

    @property
    def complete(self) -> bool:
        """Every partition was read to its end."""
        return self.stopped == "end"


async def read_topic(
    settings: KafkaSettings,
    topic: str,
    *,
    limit: int | None = None,
    timeout: float = 60.0,
    consumer_factory: Callable[[dict[str, Any]], Any] = Consumer,
) -> TopicContents:
    """Read ``topic`` from the first offset of every partition to its end.

    Runs the consumer on a worker thread; the event loop never blocks.

    Args:
        settings: the cluster and its security settings (the group id is not used).
        limit: stop after this many records (at least 1; default: no limit).
        timeout: seconds for the whole read, metadata included.
        consumer_factory: builds the librdkafka consumer from its configuration (for tests).

    Raises:
        TopicError: ``topic`` breaks Kafka's naming rules; nothing was read.
        UsageError: ``limit`` or ``timeout`` is out of range, or librdkafka refused the
            settings.
        EffectRejected: the topic does not exist, or reading it is not authorized.
        EffectUnavailable: the cluster did not answer within ``timeout``, or the consumer
            failed fatally.
    """
    check_kafka_topic(topic)
    if limit is not None and (isinstance(limit, bool) or limit < 1):
        raise UsageError("read_topic needs a limit of at least 1")
    if not timeout > 0:
        raise UsageError("read_topic needs a positive timeout")
    return await asyncio.to_thread(_read, settings, topic, limit, timeout, consumer_factory)


def _read(
    settings: KafkaSettings,
    topic: str,
    limit: int | None,
    timeout: float,
    factory: Callable[[dict[str, Any]], Any],
) -> TopicContents:
    deadline = time.monotonic() + timeout
    config = settings.consumer_config()
    config["enable.partition.eof"] = True
    try:
        consumer = factory(config)
    except KafkaException as exc:
        raise UsageError(f"librdkafka refused the consumer settings: {_describe(exc)}") from None
    try:
        partitions = _partitions(consumer, topic, timeout)
        consumer.assign([KafkaPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        pending = set(partitions)
        records: list[Record] = []
        stopped: Literal["end", "limit", "timeout"] = "end"
        while pending:
            if limit is not None and len(records) >= limit:
                stopped = "limit"
                break
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                stopped = "timeout"
                break
            wanted = _BATCH if limit is None else min(_BATCH, limit - len(records))
            for message in consumer.consume(wanted, min(_WAIT, remaining)):
                error = message.error()
                if error is None:
                    records.append(_record(message))
                elif error.code() == KafkaError._PARTITION_EOF:
                    pending.discard(message.partition())
                elif error.fatal():
                    raise EffectUnavailable(
                        f"reading {topic}: the consumer failed fatally ({_describe(error)})",
                        backend=_BACKEND,
                    )
                else:
                    log.warning("reading %s: %s", topic, _describe(error))
        records.sort(key=lambda r: (r.partition, r.offset))
        return TopicContents(topic, tuple(partitions), tuple(records), stopped)
    finally:
        consumer.close()


def _partitions(consumer: Any, topic: str, timeout: float) -> list[int]:
    try:
        metadata = consumer.list_topics(topic, timeout=timeout)
    except KafkaException as exc:
        raise EffectUnavailable(
            f"the cluster did not answer within {timeout:g} s ({_describe(exc)})",
            backend=_BACKEND,
        ) from None
    found = metadata.topics.get(topic)
    error = None if found is None else found.error
    if found is None or (error is not None and error.code() in _MISSING):
        raise EffectRejected(f"there is no topic {topic} on the cluster", backend=_BACKEND)
    if error is not None and error.code() in _REFUSED:
        raise EffectRejected(f"reading {topic} is not authorized", backend=_BACKEND)
    if error is not None:
        raise EffectUnavailable(f"reading {topic}: {_describe(error)}", backend=_BACKEND)
    return sorted(found.partitions)


def _record(message: Any) -> Record:
    kind, stamp = message.timestamp()
    raw = message.headers() or ()
    headers = tuple(
        (name, value.encode() if isinstance(value, str) else (value or b"")) for name, value in raw
    )
    key = message.key()
    return Record(
        message.topic(),
        message.partition(),
        message.offset(),
        key.encode() if isinstance(key, str) else key,
        message.value() or b"",
        headers,
        stamp if kind else None,
    )


def _describe(error: object) -> str:
    if isinstance(error, KafkaException) and error.args:
        error = error.args[0]
    if isinstance(error, KafkaError):
        return f"{error.name()}: {REDACTOR.redact(error.str(), limit=200)}"
    return type(error).__name__
