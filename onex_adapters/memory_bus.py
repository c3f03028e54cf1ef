"""The embedded event bus: partitions, consumer groups, committed offsets — in one process.

This is the bus ``make demo`` and most tests run on, so it keeps the promises a Kafka-backed bus
keeps, and the ones that matter for reliability are real here, not approximated:

- a topic has a fixed number of partitions; a record's partition is chosen by its key (CRC-32 of
  the key, so one entity always lands on one partition and its records stay in order);
- consumers in one *group* share the partitions of the topics they subscribe to, and every join,
  leave or crash rebalances them;
- each group keeps a committed offset per partition. A consumer starts reading a partition at the
  committed offset, so whatever was delivered but not committed when a consumer crashed is
  delivered again to whoever owns the partition next — at-least-once, as with Kafka;
- ``publish`` appends and returns: in memory, "the broker confirmed it" is immediate.

For tests it injects the faults the runtime must survive, all seeded and reproducible
(:class:`Faults`): duplicate delivery, bounded reordering within a poll, slow publishes, failing
publishes to chosen topics (a dead-letter queue that is down), and a crash instead of the n-th
commit. A crashed consumer behaves like a killed process: it leaves the group without committing,
and every later call on it raises :class:`ConsumerCrashed`.
"""

from __future__ import annotations

import asyncio
import random
import zlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import count

from onex_core.errors import EffectUnavailable, UsageError
from onex_core.ports import Record
from onex_core.topics import parse_pattern

__all__ = [
    "ConsumerCrashed",
    "Faults",
    "InMemoryBroker",
    "InMemoryBus",
]

TopicPartition = tuple[str, int]


class ConsumerCrashed(RuntimeError):
    """Raised by every call on a consumer that fault injection crashed (a simulated kill -9)."""


@dataclass
class Faults:
    """What an :class:`InMemoryBus` does wrong on purpose. All randomness comes from ``seed``.

    Args:
        seed: seeds the random choices below.
        duplicate_rate: the probability that a delivered record is delivered once more, in the
            same poll right after itself or in a later one.
        reorder_window: when above 1, the records of one poll are shuffled within consecutive
            windows of this size (records of one entity may then arrive out of order).
        publish_delay: seconds each publish waits before it is confirmed (a slow broker),
            through ``sleep``.
        failing_topics: topic patterns whose publishes fail with ``EffectUnavailable``, and how
            many times each (``-1``: until the entry is removed).
        crash_on_commit: the n-th call to ``commit`` (1-based) crashes the consumer instead.
        sleep: the sleep used for ``publish_delay`` (tests pass a fake clock's).
    """

    seed: int = 0
    duplicate_rate: float = 0.0
    reorder_window: int = 0
    publish_delay: float = 0.0
    failing_topics: dict[str, int] = field(default_factory=dict)
    crash_on_commit: int | None = None
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep

    def __post_init__(self) -> None:
        if not 0.0 <= self.duplicate_rate <= 1.0:
            raise UsageError("Faults.duplicate_rate must be between 0 and 1")
        if self.reorder_window < 0 or self.publish_delay < 0:
            raise UsageError("Faults.reorder_window and publish_delay must not be negative")
        self._random = random.Random(self.seed)

    def publish_fails(self, topic: str) -> bool:
        for pattern, remaining in list(self.failing_topics.items()):
            if remaining != 0 and parse_pattern(pattern).matches(topic):
                if remaining > 0:
                    self.failing_topics[pattern] = remaining - 1
                return True
        return False


@dataclass
class _Group:
    committed: dict[TopicPartition, int] = field(default_factory=dict)
    members: dict[str, InMemoryBus] = field(default_factory=dict)
    generation: int = 0


class InMemoryBroker:
    """Topics, partitions and consumer groups, shared by the buses of one process.

    Args:
        partitions: how many partitions a topic gets when it is created implicitly.
        topics: topics to create up front, with their partition counts.
    """

    def __init__(self, *, partitions: int = 4, topics: Mapping[str, int] | None = None) -> None:
        if partitions < 1:
            raise UsageError("a topic needs at least one partition")
        self.default_partitions = partitions
        self._logs: dict[str, list[list[Record]]] = {}
        self._groups: dict[str, _Group] = {}
        self._round_robin = count()
        for name, n in (topics or {}).items():
            self.create_topic(name, n)

    # ------------------------------------------------------------------ topics and records

    def create_topic(self, topic: str, partitions: int | None = None) -> None:
        """Create ``topic`` (idempotent: an existing topic keeps its partitions)."""
        if topic not in self._logs:
            n = self.default_partitions if partitions is None else partitions
            if n < 1:
                raise UsageError(f"topic {topic!r} needs at least one partition")
            self._logs[topic] = [[] for _ in range(n)]
            for group in self._groups.values():
                if any(topic in m.subscription for m in group.members.values()):
                    self._rebalance(group)

    @property
    def topics(self) -> tuple[str, ...]:
        return tuple(sorted(self._logs))

    def partitions(self, topic: str) -> int:
        return len(self._logs[topic]) if topic in self._logs else 0

    def partition_for(self, topic: str, key: bytes | None) -> int:
        n = len(self._logs[topic])
        if key is None:
            return next(self._round_robin) % n
        return zlib.crc32(key) % n

    def append(
        self,
        topic: str,
        value: bytes,
        *,
        key: bytes | None = None,
        headers: Sequence[tuple[str, bytes]] = (),
    ) -> Record:
        """Append a record to its partition and wake the consumers of the topic."""
        self.create_topic(topic)
        partition = self.partition_for(topic, key)
        log = self._logs[topic][partition]
        record = Record(topic, partition, len(log), key, value, tuple(headers))
        log.append(record)
        for group in self._groups.values():
            for member in group.members.values():
                if topic in member.subscription:
                    member._wake()
        return record

    def records(self, topic: str) -> list[Record]:
        """Every record of ``topic``, partition by partition (for tests and inspection)."""
        return [r for log in self._logs.get(topic, []) for r in log]

    def end_offsets(self, topic: str) -> tuple[int, ...]:
        return tuple(len(log) for log in self._logs.get(topic, []))

    def committed(self, group: str) -> dict[TopicPartition, int]:
        """The committed offsets of ``group``: for each partition, the next offset to read."""
        return dict(self._groups[group].committed) if group in self._groups else {}

    def lag(self, group: str, topics: Sequence[str] | None = None) -> int:
        """Records of ``topics`` (default: all) that ``group`` has not committed yet."""
        committed = self._groups[group].committed if group in self._groups else {}
        total = 0
        for topic in topics if topics is not None else self._logs:
            for partition, log in enumerate(self._logs.get(topic, [])):
                total += len(log) - committed.get((topic, partition), 0)
        return total

    # ------------------------------------------------------------------ groups

    def _join(self, group_id: str, member: InMemoryBus) -> None:
        group = self._groups.setdefault(group_id, _Group())
        group.members[member.member_id] = member
        for topic in member.subscription:
            self.create_topic(topic)
        self._rebalance(group)

    def _leave(self, group_id: str, member: InMemoryBus) -> None:
        group = self._groups.get(group_id)
        if group is not None and group.members.pop(member.member_id, None) is not None:
            self._rebalance(group)

    def _rebalance(self, group: _Group) -> None:
        """Range-assign every subscribed partition to the members, in member-id order."""
        group.generation += 1
        members = sorted(group.members.values(), key=lambda m: m.member_id)
        wanted: dict[TopicPartition, list[InMemoryBus]] = {}
        for member in members:
            for topic in member.subscription:
                for partition in range(len(self._logs.get(topic, []))):
                    wanted.setdefault((topic, partition), []).append(member)
        assignment: dict[str, set[TopicPartition]] = {m.member_id: set() for m in members}
        for index, (tp, candidates) in enumerate(sorted(wanted.items())):
            owner = candidates[index % len(candidates)]
            assignment[owner.member_id].add(tp)
        for member in members:
            member._assign(assignment[member.member_id], group.committed)

    def _commit(
        self, group_id: str, member: InMemoryBus, offsets: dict[TopicPartition, int]
    ) -> bool:
        """Commit ``offsets`` the member still owns; False if any partition was revoked."""
        group = self._groups[group_id]
        all_owned = True
        for tp, offset in offsets.items():
            if tp not in member.assignment:
                all_owned = False
                continue
            if offset > group.committed.get(tp, 0):
                group.committed[tp] = offset
        return all_owned


_member_ids = count(1)


class InMemoryBus:
    """One consumer-and-producer client of an :class:`InMemoryBroker` (the EventBus port).

    Args:
        broker: the broker to talk to.
        group: the consumer group this bus consumes in.
        member_id: a stable name for this member (default: a generated one).
        faults: faults to inject (default: none).
    """

    def __init__(
        self,
        broker: InMemoryBroker,
        *,
        group: str = "onex",
        member_id: str | None = None,
        faults: Faults | None = None,
    ) -> None:
        self.broker = broker
        self.group = group
        self.member_id = member_id or f"member-{next(_member_ids):04d}"
        self.faults = faults or Faults()
        self.subscription: frozenset[str] = frozenset()
        self.assignment: frozenset[TopicPartition] = frozenset()
        self._positions: dict[TopicPartition, int] = {}
        self._redeliver: list[Record] = []
        self._event: asyncio.Event | None = None
        self._cursor = 0
        self._commits = 0
        self._crashed = False
        self._closed = False

    # ------------------------------------------------------------------ EventBus

    async def subscribe(self, topics: Sequence[str]) -> None:
        self._alive()
        self.subscription = frozenset(topics)
        if self.subscription:
            self.broker._join(self.group, self)
        else:
            self.broker._leave(self.group, self)
            self._assign(set(), {})

    async def poll(self, max_records: int, timeout: float) -> Sequence[Record]:
        self._alive()
        if max_records < 1:
            raise UsageError("poll needs max_records of at least 1")
        batch = self._take(max_records)
        if not batch and timeout > 0:
            event = self._event_for_loop()
            event.clear()
            batch = self._take(max_records)
            if not batch:
                try:
                    await asyncio.wait_for(event.wait(), timeout)
                except TimeoutError:
                    return ()
                self._alive()
                batch = self._take(max_records)
        return self._disturb(batch)

    async def publish(
        self,
        topic: str,
        value: bytes,
        *,
        key: bytes | None = None,
        headers: Sequence[tuple[str, bytes]] = (),
    ) -> None:
        self._alive()
        if self.faults.publish_delay:
            await self.faults.sleep(self.faults.publish_delay)
            self._alive()
        if self.faults.publish_fails(topic):
            raise EffectUnavailable(f"publish to {topic!r} was not confirmed", backend="bus")
        self.broker.append(topic, value, key=key, headers=headers)

    async def commit(self, records: Sequence[Record]) -> None:
        self._alive()
        self._commits += 1
        if self.faults.crash_on_commit is not None and self._commits == self.faults.crash_on_commit:
            self.crash()
            raise ConsumerCrashed(f"{self.member_id} crashed instead of commit #{self._commits}")
        offsets: dict[TopicPartition, int] = {}
        for record in records:
            tp = (record.topic, record.partition)
            end = record.offset + 1
            if end > offsets.get(tp, 0):
                offsets[tp] = end
        if not self.broker._commit(self.group, self, offsets):
            raise EffectUnavailable(
                "commit refused for partitions no longer assigned to this consumer", backend="bus"
            )

    async def close(self) -> None:
        if self._closed or self._crashed:
            return
        self._closed = True
        self.broker._leave(self.group, self)
        self._wake()

    # ------------------------------------------------------------------ faults and internals

    def crash(self) -> None:
        """Die like a killed process: leave the group without committing anything more."""
        if self._crashed:
            return
        self._crashed = True
        self.broker._leave(self.group, self)
        self._wake()

    @property
    def crashed(self) -> bool:
        return self._crashed

    def _alive(self) -> None:
        if self._crashed:
            raise ConsumerCrashed(f"consumer {self.member_id} has crashed")
        if self._closed:
            raise UsageError(f"consumer {self.member_id} is closed")

    def _assign(
        self, partitions: set[TopicPartition], committed: dict[TopicPartition, int]
    ) -> None:
        kept = {tp: pos for tp, pos in self._positions.items() if tp in partitions}
        for tp in partitions:
            kept.setdefault(tp, committed.get(tp, 0))
        self._positions = kept
        self.assignment = frozenset(partitions)
        self._redeliver = [r for r in self._redeliver if (r.topic, r.partition) in partitions]
        self._wake()

    def _event_for_loop(self) -> asyncio.Event:
        if self._event is None:
            self._event = asyncio.Event()
        return self._event

    def _wake(self) -> None:
        if self._event is not None:
            self._event.set()

    def _take(self, max_records: int) -> list[Record]:
        batch = self._redeliver[:max_records]
        del self._redeliver[: len(batch)]
        partitions = sorted(self._positions)
        if not partitions:
            return batch
        # Start at a rotating partition so that no partition starves the others.
        start = self._cursor % len(partitions)
        self._cursor += 1
        for tp in partitions[start:] + partitions[:start]:
            if len(batch) >= max_records:
                break
            topic, partition = tp
            log = self.broker._logs[topic][partition]
            position = self._positions[tp]
            take = log[position : position + max_records - len(batch)]
            if take:
                batch.extend(take)
                self._positions[tp] = position + len(take)
        return batch

    def _disturb(self, batch: list[Record]) -> list[Record]:
        faults = self.faults
        if faults.duplicate_rate:
            rng = faults._random
            out: list[Record] = []
            for record in batch:
                out.append(record)
                if rng.random() < faults.duplicate_rate:
                    if rng.random() < 0.5:
                        out.append(record)
                    else:
                        self._redeliver.append(record)
            batch = out
        window = faults.reorder_window
        if window > 1:
            rng = faults._random
            shuffled: list[Record] = []
            for start in range(0, len(batch), window):
                chunk = batch[start : start + window]
                rng.shuffle(chunk)
                shuffled.extend(chunk)
            batch = shuffled
        return batch
