"""A scripted stand-in for confluent-kafka's Consumer, for rebalance cases a real broker makes
slow or impossible to provoke on cue (a lost assignment, a partition that comes back).

Each ``consume`` call first runs the next scripted step, if any — a rebalance callback, or a
batch of messages to queue — exactly as librdkafka runs callbacks inside ``consume``, then hands
out up to ``num_messages`` queued messages. Revoking a partition drops its queued messages, as
librdkafka does.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from typing import Any

from confluent_kafka import TopicPartition


class FakeMessage:
    def __init__(self, topic: str, partition: int, offset: int, value: bytes) -> None:
        self._topic, self._partition, self._offset, self._value = topic, partition, offset, value

    def error(self) -> None:
        return None

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def key(self) -> bytes | None:
        return None

    def value(self) -> bytes:
        return self._value

    def headers(self) -> None:
        return None

    def timestamp(self) -> tuple[int, int]:
        return (1, 1_700_000_000_000)


Step = Callable[["FakeConsumer"], list[FakeMessage]]


class FakeConsumer:
    """Records every call; ``commits`` holds ``(topic, partition, offset, thread id)``."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.steps: deque[Step] = deque()
        self.commits: list[tuple[str, int, int, int]] = []
        self.assigned: set[tuple[str, int]] = set()
        self.consume_threads: set[int] = set()
        self.callbacks: dict[str, Any] = {}
        self.queued: list[FakeMessage] = []
        self.release = threading.Event()
        self.release.set()
        self.closed = False

    # --- script helpers (run on the consumer thread, inside consume)

    def assign(self, topic: str, *partitions: int) -> Step:
        def step(c: FakeConsumer) -> list[FakeMessage]:
            c.callbacks["on_assign"](c, [TopicPartition(topic, p) for p in partitions])
            return []

        return step

    def revoke(self, topic: str, *partitions: int, lost: bool = False) -> Step:
        def step(c: FakeConsumer) -> list[FakeMessage]:
            name = "on_lost" if lost else "on_revoke"
            c.queued = [m for m in c.queued if m.partition() not in partitions]
            c.callbacks[name](c, [TopicPartition(topic, p) for p in partitions])
            return []

        return step

    def deliver(self, topic: str, partition: int, offsets: range) -> Step:
        def step(c: FakeConsumer) -> list[FakeMessage]:
            return [FakeMessage(topic, partition, o, b"v%d" % o) for o in offsets]

        return step

    # --- the Consumer surface the bus uses

    def subscribe(self, topics: list[str], **callbacks: Any) -> None:
        self.callbacks = callbacks

    def unsubscribe(self) -> None:
        self.callbacks = {}

    def consume(self, num_messages: int = 1, timeout: float = -1) -> list[FakeMessage]:
        self.consume_threads.add(threading.get_ident())
        if not self.release.wait(timeout if timeout > 0 else 0):
            return []
        if self.steps:
            self.queued.extend(self.steps.popleft()(self))
        handed, self.queued = self.queued[:num_messages], self.queued[num_messages:]
        return handed

    def commit(
        self, *, offsets: list[TopicPartition], asynchronous: bool = True
    ) -> list[TopicPartition]:
        for tp in offsets:
            self.commits.append((tp.topic, tp.partition, tp.offset, threading.get_ident()))
        return offsets

    def incremental_assign(self, partitions: list[TopicPartition]) -> None:
        self.assigned |= {(p.topic, p.partition) for p in partitions}

    def incremental_unassign(self, partitions: list[TopicPartition]) -> None:
        self.assigned -= {(p.topic, p.partition) for p in partitions}

    def close(self) -> None:
        if self.assigned and "on_revoke" in self.callbacks:
            owned = [TopicPartition(t, p) for t, p in sorted(self.assigned)]
            self.callbacks["on_revoke"](self, owned)
        self.closed = True
