"""The Kafka bus keeps the EventBus promises on a real broker, and its rebalance bookkeeping
holds in the cases a real broker cannot be made to produce on cue (a scripted consumer)."""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import pytest

from onex_adapters.kafka import (
    KafkaBus,
    KafkaSettings,
    Outgoing,
    Partition,
    TopicSpec,
    create_topics,
)
from onex_adapters.kafka.broker import free_port
from onex_core.errors import EffectUnavailable, TopicError, UsageError
from onex_core.ports import EventBus, Record, port_problems
from tests.adapters.kafka.fakes import FakeConsumer

Settings = Callable[..., KafkaSettings]
Topic = Callable[..., str]


def run(coro: Awaitable[Any]) -> Any:
    return asyncio.run(coro)  # type: ignore[arg-type]


async def collect(bus: KafkaBus, count: int, *, deadline: float = 20.0) -> list[Record]:
    """Poll until ``count`` records arrived (group joins take seconds on the test broker)."""
    records: list[Record] = []
    end = time.monotonic() + deadline
    while len(records) < count:
        assert time.monotonic() < end, f"only {len(records)} of {count} records arrived"
        records.extend(await bus.poll(500, 0.5))
    return records


def by_partition(records: Sequence[Record]) -> dict[int, list[Record]]:
    out: dict[int, list[Record]] = defaultdict(list)
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        out[record.partition].append(record)
    return out


def test_conforms_to_the_event_bus_port() -> None:
    assert port_problems(KafkaBus, EventBus) == ()
    assert isinstance(KafkaBus(KafkaSettings("127.0.0.1:1")), EventBus)


# --------------------------------------------------------------------------- real broker


@pytest.mark.kafka
def test_records_round_trip_with_headers_and_one_key_stays_on_one_partition_in_order(
    settings: Settings, topic: Topic
) -> None:
    name = topic("round-trip")

    async def scenario() -> None:
        await create_topics(settings(), [TopicSpec(name, partitions=4)])
        producer = KafkaBus(settings())
        sent: list[tuple[bytes, bytes]] = []
        try:
            for i in range(30):
                key = b"entity-%d" % (i % 3)
                value = b"%d" % i
                await producer.publish(
                    name, value, key=key, headers=[("event_type", b"t"), ("n", value)]
                )
                sent.append((key, value))
        finally:
            await producer.close()
        consumer = KafkaBus(settings())
        try:
            await consumer.subscribe([name])
            records = await collect(consumer, 30)
        finally:
            await consumer.close()
        assert len(records) == 30
        for key in {k for k, _ in sent}:
            mine = [r for r in records if r.key == key]
            assert len({r.partition for r in mine}) == 1
            ordered = sorted(mine, key=lambda r: r.offset)
            assert [r.value for r in ordered] == [v for k, v in sent if k == key]
        for record in records:
            assert record.topic == name
            assert record.headers == (("event_type", b"t"), ("n", record.value))
            assert record.timestamp_ms is not None
            assert record.timestamp_ms > 0

    run(scenario())


@pytest.mark.kafka
def test_a_new_member_resumes_exactly_after_the_committed_offsets(
    settings: Settings, topic: Topic
) -> None:
    name = topic("resume")
    # A producer queue of five records: publish_many must wait for room, never drop.
    tiny_queue = {"queue.buffering.max.messages": 5}

    async def scenario() -> None:
        await create_topics(settings(), [TopicSpec(name, partitions=2)])
        first = KafkaBus(settings(producer_extra=tiny_queue))
        try:
            await first.publish_many(
                Outgoing(name, b"%d" % i, key=b"e%d" % (i % 8)) for i in range(40)
            )
            await first.subscribe([name])
            records = await collect(first, 40)
            assert len(records) == 40
            committed: set[tuple[int, int]] = set()
            for partition_records in by_partition(records).values():
                half = partition_records[: len(partition_records) // 2]
                await first.commit(half)
                # A second commit with lower offsets must not move the offset back.
                await first.commit(half[:1])
                committed |= {(r.partition, r.offset) for r in half}
        finally:
            await first.close()

        second = KafkaBus(settings())
        try:
            await second.subscribe([name])
            redelivered = await collect(second, 40 - len(committed))
            redelivered.extend(await second.poll(500, 1.0))  # nothing more may come
        finally:
            await second.close()
        expected = {(r.partition, r.offset) for r in records} - committed
        assert sorted((r.partition, r.offset) for r in redelivered) == sorted(expected)

    run(scenario())


@pytest.mark.kafka
def test_two_members_split_the_partitions_and_the_second_takes_over(
    settings: Settings, topic: Topic
) -> None:
    name = topic("rebalance")

    async def scenario() -> None:
        await create_topics(settings(), [TopicSpec(name, partitions=4)])
        a = KafkaBus(settings())
        b = KafkaBus(settings())
        held: list[Record] = []
        revocations: list[tuple[frozenset[Partition], bool]] = []

        async def finish_in_flight(partitions: frozenset[Partition], *, lost: bool) -> None:
            # A host finishing its in-flight work at the first revocation: commit the first
            # record of each revoked partition while it is still owned; the rest stays
            # uncommitted (and so does everything at close).
            revocations.append((partitions, lost))
            if not lost and len(revocations) == 1:
                firsts = [
                    rs[0]
                    for p, rs in by_partition(held).items()
                    if (name, p) in partitions and rs[0].offset == 0
                ]
                await a.commit(firsts)

        a.on_revoked = finish_in_flight
        try:
            await a.publish_many(Outgoing(name, b"%d" % i, key=b"k%d" % i) for i in range(40))
            await a.subscribe([name])
            held.extend(await collect(a, 40))
            assert len(a.assignment) == 4
            assert {r.partition for r in held} == {0, 1, 2, 3}

            await b.subscribe([name])
            from_b: list[Record] = []

            async def keep_polling(bus: KafkaBus, into: list[Record]) -> None:
                while True:
                    into.extend(await bus.poll(500, 0.2))

            pollers = [
                asyncio.create_task(keep_polling(a, held)),
                asyncio.create_task(keep_polling(b, from_b)),
            ]
            try:
                end = time.monotonic() + 30
                while not (a.assignment and b.assignment):
                    assert time.monotonic() < end, "the group never split the partitions"
                    await asyncio.sleep(0.05)
            finally:
                for task in pollers:
                    task.cancel()
                await asyncio.gather(*pollers, return_exceptions=True)

            assert len(a.assignment) + len(b.assignment) == 4
            assert not a.assignment & b.assignment
            moved = {p for _, p in b.assignment}
            assert revocations
            assert revocations[0] == (b.assignment, False)

            # A zombie commit: the moved partitions' records, fetched by a, are refused.
            stale = [r for r in held if r.partition in moved]
            with pytest.raises(EffectUnavailable, match="no longer assigned"):
                await a.commit(stale)

            await a.close()
            end = time.monotonic() + 30
            while len(b.assignment) < 4:
                assert time.monotonic() < end, "b never took over a's partitions"
                from_b.extend(await b.poll(500, 0.2))
            total = len({(r.partition, r.offset) for r in from_b})
            from_b.extend(await collect(b, 40 - len(moved) - total))
        finally:
            await a.close()
            await b.close()

        # b resumes after what a committed in its hook (offset 0 of each moved partition);
        # of a's remaining partitions nothing was committed, so b gets all of them.
        expected = {
            (r.partition, r.offset) for r in held if not (r.partition in moved and r.offset == 0)
        }
        assert {(r.partition, r.offset) for r in from_b} == expected

    run(scenario())


@pytest.mark.kafka
def test_a_long_poll_never_blocks_the_event_loop_nor_a_commit(
    settings: Settings, topic: Topic
) -> None:
    name = topic("responsive")

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        bus = KafkaBus(settings())
        try:
            await bus.publish(name, b"only")
            await bus.subscribe([name])
            first = await collect(bus, 1)

            ticks: list[float] = []

            async def ticker() -> None:
                while True:
                    ticks.append(loop.time())
                    await asyncio.sleep(0.01)

            ticking = asyncio.create_task(ticker())
            started = loop.time()
            polling = asyncio.create_task(bus.poll(500, 1.5))
            await asyncio.sleep(0.2)
            commit_started = loop.time()
            await bus.commit(first)
            commit_took = loop.time() - commit_started
            assert not polling.done()
            assert await polling == []
            poll_took = loop.time() - started
            ticking.cancel()
            await asyncio.gather(ticking, return_exceptions=True)
        finally:
            await bus.close()
        assert poll_took >= 1.4
        assert commit_took < 0.5
        gaps = [b - a for a, b in itertools.pairwise(ticks)]
        assert max(gaps) < 0.1
        assert len(ticks) > 50

    run(scenario())


def test_publish_waits_for_the_delivery_report_and_fails_when_none_comes() -> None:
    settings = KafkaSettings(
        f"127.0.0.1:{free_port()}",
        producer_extra={"message.timeout.ms": 300, "reconnect.backoff.max.ms": 100},
    )

    async def scenario() -> None:
        bus = KafkaBus(settings)
        try:
            started = time.monotonic()
            with pytest.raises(EffectUnavailable, match="did not confirm") as caught:
                await bus.publish("onex.evt.kafka-test.nowhere.v1", b"x")
            assert time.monotonic() - started >= 0.25
            assert caught.value.backend == "kafka"
            with pytest.raises(EffectUnavailable, match="2 of 2 records"):
                await bus.publish_many(
                    [Outgoing("onex.evt.kafka-test.nowhere.v1", b"%d" % i) for i in range(2)]
                )
        finally:
            await bus.close()

    run(scenario())


def test_bad_topic_names_are_refused_before_anything_is_sent() -> None:
    async def scenario() -> None:
        bus = KafkaBus(KafkaSettings("127.0.0.1:1"))
        try:
            for bad in ("", "a b", "^onex.*", "x" * 250, ".."):
                with pytest.raises(TopicError):
                    await bus.publish(bad, b"x")
                with pytest.raises(TopicError):
                    await bus.subscribe([bad])
            with pytest.raises(UsageError, match="not one string"):
                await bus.subscribe("onex.evt.a.b.v1")
        finally:
            await bus.close()

    run(scenario())


# --------------------------------------------------------------------------- scripted consumer

T = "onex.evt.kafka-test.scripted.v1"


def scripted() -> tuple[KafkaBus, list[FakeConsumer]]:
    made: list[FakeConsumer] = []

    def factory(config: dict[str, Any]) -> FakeConsumer:
        made.append(FakeConsumer(config))
        return made[-1]

    settings = KafkaSettings("127.0.0.1:1", rebalance_timeout=0.3)
    return KafkaBus(settings, consumer_factory=factory), made


def test_usage_errors_and_a_safe_double_close() -> None:
    async def scenario() -> None:
        bus, _ = scripted()
        with pytest.raises(UsageError, match="before subscribe"):
            await bus.poll(10, 0)
        with pytest.raises(UsageError, match="before subscribe"):
            await bus.commit([Record(T, 0, 0, None, b"")])
        await bus.subscribe([T])
        for bad in (0, 100_001, True):
            with pytest.raises(UsageError, match="max_records"):
                await bus.poll(bad, 0)
        await bus.close()
        await bus.close()
        with pytest.raises(UsageError, match="closed"):
            await bus.poll(10, 0)
        with pytest.raises(UsageError, match="closed"):
            await bus.publish(T, b"x")

    run(scenario())


def test_the_consumer_is_configured_for_manual_cooperative_commits() -> None:
    async def scenario() -> None:
        bus, made = scripted()
        await bus.subscribe([T])
        await bus.poll(1, 0)
        await bus.close()
        config = made[0].config
        assert config["enable.auto.commit"] is False
        assert config["enable.auto.offset.store"] is False
        assert config["partition.assignment.strategy"] == "cooperative-sticky"
        assert config["auto.offset.reset"] == "earliest"
        assert config["allow.auto.create.topics"] is False

    run(scenario())


def test_a_lost_partition_is_never_committed_not_even_by_the_hook() -> None:
    async def scenario() -> None:
        bus, made = scripted()
        outcomes: list[str] = []

        async def hook(partitions: frozenset[Partition], *, lost: bool) -> None:
            assert lost
            try:
                await bus.commit(fetched)
            except EffectUnavailable:
                outcomes.append("refused")

        bus.on_revoked = hook
        await bus.subscribe([T])
        fake = made[0]
        fake.steps.extend([fake.assign(T, 0), fake.deliver(T, 0, range(5))])
        fetched = list(await bus.poll(10, 1))
        assert [r.offset for r in fetched] == [0, 1, 2, 3, 4]
        fake.steps.append(fake.revoke(T, 0, lost=True))
        assert await bus.poll(10, 0.1) == []
        assert outcomes == ["refused"]
        assert bus.assignment == frozenset()
        with pytest.raises(EffectUnavailable, match=r"no longer assigned.*scripted.v1\[0\]"):
            await bus.commit(fetched)
        assert fake.commits == []
        await bus.close()

    run(scenario())


def test_a_revoked_partition_is_committable_in_the_hook_on_the_consumer_thread() -> None:
    async def scenario() -> None:
        bus, made = scripted()
        seen: list[frozenset[Partition]] = []

        async def hook(partitions: frozenset[Partition], *, lost: bool) -> None:
            assert not lost
            seen.append(partitions)
            await bus.commit([r for r in fetched if r.offset < 3])

        bus.on_revoked = hook
        await bus.subscribe([T])
        fake = made[0]
        fake.steps.extend([fake.assign(T, 0, 1), fake.deliver(T, 0, range(5))])
        fetched = list(await bus.poll(10, 1))
        fake.steps.append(fake.revoke(T, 0))
        await bus.poll(10, 0.1)
        assert seen == [frozenset({(T, 0)})]
        assert bus.assignment == frozenset({(T, 1)})
        assert [c[:3] for c in fake.commits] == [(T, 0, 3)]
        # The commit ran on the thread that was inside consume(), as librdkafka requires.
        assert {c[3] for c in fake.commits} <= fake.consume_threads
        with pytest.raises(EffectUnavailable):
            await bus.commit(fetched)
        await bus.close()

    run(scenario())


def test_records_from_before_a_partition_came_back_are_refused_and_offsets_never_go_back() -> None:
    async def scenario() -> None:
        bus, made = scripted()
        await bus.subscribe([T])
        fake = made[0]
        fake.steps.extend([fake.assign(T, 0), fake.deliver(T, 0, range(100, 110))])
        old = list(await bus.poll(20, 1))
        # The partition leaves and comes back; another member committed up to 105 meanwhile.
        fake.steps.extend(
            [fake.revoke(T, 0), fake.assign(T, 0), fake.deliver(T, 0, range(105, 110))]
        )
        new: list[Record] = []
        while len(new) < 5:
            new.extend(await bus.poll(20, 0.1))
        with pytest.raises(EffectUnavailable, match="no longer assigned"):
            await bus.commit(old[-1:])
        await bus.commit(new[2:3])  # offset 107 → commits 108
        await bus.commit(new[:1])  # offset 105 → would go back: skipped
        await bus.commit(new[-1:])  # offset 109 → commits 110
        assert [c[2] for c in fake.commits] == [108, 110]
        await bus.close()

    run(scenario())


def test_a_hook_that_hangs_is_abandoned_after_the_rebalance_timeout(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def scenario() -> None:
        bus, made = scripted()
        never = asyncio.Event()

        async def hook(partitions: frozenset[Partition], *, lost: bool) -> None:
            await never.wait()

        bus.on_revoked = hook
        await bus.subscribe([T])
        fake = made[0]
        fake.steps.extend([fake.assign(T, 0), fake.revoke(T, 0)])
        started = time.monotonic()
        await bus.poll(10, 0.05)
        await bus.poll(10, 0.05)
        assert 0.25 <= time.monotonic() - started < 2.0
        assert bus.assignment == frozenset()
        await bus.close()

    with caplog.at_level(logging.WARNING, logger="onex.kafka"):
        run(scenario())
    assert "did not finish within 0.3 s" in caplog.text


def test_a_cancelled_poll_keeps_its_records_for_the_next_poll() -> None:
    async def scenario() -> None:
        bus, made = scripted()
        await bus.subscribe([T])
        fake = made[0]
        fake.steps.append(fake.assign(T, 0))
        await bus.poll(1, 0)
        fake.release.clear()  # consume() now waits, as on an idle topic
        polling = asyncio.create_task(bus.poll(10, 5))
        await asyncio.sleep(0.1)
        polling.cancel()
        with pytest.raises(asyncio.CancelledError):
            await polling
        fake.steps.append(fake.deliver(T, 0, range(3)))
        fake.release.set()
        records: list[Record] = []
        end = time.monotonic() + 5
        while len(records) < 3 and time.monotonic() < end:
            records.extend(await bus.poll(10, 0.1))
        assert [r.offset for r in records] == [0, 1, 2]
        await bus.close()

    run(scenario())


def test_the_consumer_thread_is_gone_after_close() -> None:
    async def scenario() -> None:
        bus, _ = scripted()
        await bus.subscribe([T])
        await bus.close()

    before = {t.name for t in threading.enumerate()}
    run(scenario())
    after = {t.name for t in threading.enumerate()}
    assert not {n for n in after - before if n.startswith("onex-kafka")}
