"""The in-memory bus keeps Kafka's promises: key partitioning, groups, commits, redelivery."""

from __future__ import annotations

import asyncio

import pytest

from onex_adapters.memory_bus import ConsumerCrashed, Faults, InMemoryBroker, InMemoryBus
from onex_core.errors import EffectUnavailable
from onex_core.ports import EventBus, port_problems

TOPIC = "onex.evt.test.thing-happened.v1"


def run(coro: object) -> object:
    return asyncio.run(coro)  # type: ignore[arg-type]


async def drain(bus: InMemoryBus, limit: int = 1000) -> list[bytes]:
    values: list[bytes] = []
    while True:
        batch = await bus.poll(limit, 0)
        if not batch:
            return values
        values.extend(r.value for r in batch)


def test_conforms_to_the_event_bus_port() -> None:
    assert port_problems(InMemoryBus, EventBus) == ()
    assert isinstance(InMemoryBus(InMemoryBroker()), EventBus)


def test_one_key_always_lands_on_one_partition_in_order() -> None:
    async def scenario() -> None:
        broker = InMemoryBroker(partitions=8)
        producer = InMemoryBus(broker)
        for i in range(50):
            await producer.publish(TOPIC, str(i).encode(), key=b"entity-7")
        partitions = {r.partition for r in broker.records(TOPIC)}
        assert len(partitions) == 1
        consumer = InMemoryBus(broker)
        await consumer.subscribe([TOPIC])
        assert await drain(consumer) == [str(i).encode() for i in range(50)]

    run(scenario())


def test_uncommitted_records_are_redelivered_after_a_crash() -> None:
    async def scenario() -> None:
        broker = InMemoryBroker(partitions=2)
        producer = InMemoryBus(broker)
        for i in range(10):
            await producer.publish(TOPIC, str(i).encode(), key=str(i).encode())
        first = InMemoryBus(broker, group="g")
        await first.subscribe([TOPIC])
        batch = await first.poll(100, 0)
        assert len(batch) == 10
        partition_zero = [r for r in batch if r.partition == 0]
        committed = partition_zero[:2]
        await first.commit(committed)
        first.crash()
        with pytest.raises(ConsumerCrashed):
            await first.poll(1, 0)
        second = InMemoryBus(broker, group="g")
        await second.subscribe([TOPIC])
        redelivered = await drain(second)
        expected = [r.value for r in batch if r not in committed]
        assert sorted(redelivered) == sorted(expected)

    run(scenario())


def test_two_members_split_partitions_and_take_over_on_leave() -> None:
    async def scenario() -> None:
        broker = InMemoryBroker(partitions=4)
        a = InMemoryBus(broker, group="g", member_id="a")
        b = InMemoryBus(broker, group="g", member_id="b")
        await a.subscribe([TOPIC])
        await b.subscribe([TOPIC])
        assert len(a.assignment) == len(b.assignment) == 2
        assert not a.assignment & b.assignment
        await a.close()
        assert len(b.assignment) == 4

    run(scenario())


def test_commit_for_a_revoked_partition_is_refused() -> None:
    async def scenario() -> None:
        broker = InMemoryBroker(partitions=2)
        producer = InMemoryBus(broker)
        for i in range(4):
            await producer.publish(TOPIC, b"x", key=str(i).encode())
        a = InMemoryBus(broker, group="g", member_id="a")
        await a.subscribe([TOPIC])
        batch = await a.poll(10, 0)
        b = InMemoryBus(broker, group="g", member_id="b")
        await b.subscribe([TOPIC])  # takes one partition away from a
        with pytest.raises(EffectUnavailable, match="no longer assigned"):
            await a.commit(batch)

    run(scenario())


def test_poll_waits_for_a_publish_without_busy_waiting() -> None:
    async def scenario() -> None:
        broker = InMemoryBroker()
        consumer = InMemoryBus(broker)
        await consumer.subscribe([TOPIC])
        waiter = asyncio.ensure_future(consumer.poll(10, 5.0))
        await asyncio.sleep(0)
        assert not waiter.done()
        await InMemoryBus(broker).publish(TOPIC, b"hello")
        records = await asyncio.wait_for(waiter, 1.0)
        assert [r.value for r in records] == [b"hello"]

    run(scenario())


def test_failing_topic_publishes_raise_then_recover() -> None:
    async def scenario() -> None:
        broker = InMemoryBroker()
        bus = InMemoryBus(broker, faults=Faults(failing_topics={"onex.dlq.**": 2}))
        for _ in range(2):
            with pytest.raises(EffectUnavailable):
                await bus.publish("onex.dlq.test.events.v1", b"x")
        await bus.publish("onex.dlq.test.events.v1", b"x")
        assert len(broker.records("onex.dlq.test.events.v1")) == 1

    run(scenario())


def test_crash_instead_of_the_nth_commit() -> None:
    async def scenario() -> None:
        broker = InMemoryBroker(partitions=1)
        await InMemoryBus(broker).publish(TOPIC, b"1")
        bus = InMemoryBus(broker, group="g", faults=Faults(crash_on_commit=1))
        await bus.subscribe([TOPIC])
        batch = await bus.poll(10, 0)
        with pytest.raises(ConsumerCrashed):
            await bus.commit(batch)
        assert broker.committed("g") == {}
        assert broker.lag("g", [TOPIC]) == 1

    run(scenario())


def test_duplicates_and_reordering_are_seeded_and_lose_nothing() -> None:
    async def deliveries(seed: int) -> list[bytes]:
        broker = InMemoryBroker(partitions=1)
        producer = InMemoryBus(broker)
        for i in range(40):
            await producer.publish(TOPIC, str(i).encode())
        bus = InMemoryBus(broker, faults=Faults(seed=seed, duplicate_rate=0.3, reorder_window=4))
        await bus.subscribe([TOPIC])
        return await drain(bus, limit=8)

    first = run(deliveries(7))
    assert first == run(deliveries(7))
    assert isinstance(first, list)
    assert set(first) == {str(i).encode() for i in range(40)}
    assert len(first) > 40
    assert first != sorted(first, key=int)
