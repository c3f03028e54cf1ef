"""The consuming half of the Kafka bus: one thread owns the consumer; offsets follow ownership.

**One thread.** A librdkafka consumer must not be called from two threads at once —
confluent-kafka serializes such calls, so a commit issued while another thread waits in
``consume`` simply waits for it, and a commit issued from another thread while a rebalance
callback runs deadlocks. So one worker thread makes every consumer call, taking work from a
queue. The event loop only submits work and awaits the answer; it never blocks.

- ``poll`` becomes one *fetch*: a non-blocking ``consume(n, 0)``; if that is empty, waits of at
  most 50 ms for the first record (``consume(1, …)``), each followed by a non-blocking
  ``consume(n - 1, 0)`` for whatever arrived with it. Between waits the thread runs queued
  commits, so a commit never waits behind a long poll timeout.
- Rebalance callbacks run on that thread, inside ``consume``. A revocation calls the runtime's
  async hook on the event loop (:class:`RevokeHook`) and, until it finishes or
  ``rebalance_timeout`` passes, keeps serving the commits the hook submits — from the
  callback's own thread, which is the only one allowed to call the consumer just then.

**Ownership epochs.** Every time a partition is assigned to this consumer it gets a fresh
epoch number, and every record :meth:`GroupConsumer.poll` returns carries the epoch it was
fetched under. ``commit`` accepts a record only while its partition is still assigned *under
the same epoch*. This closes the classic zombie-commit hole: a host that fetched offsets
100-199, lost the partition, got it back later (another member meanwhile committed 150 and
this consumer now restarts at 150) must not commit 200 for its stale records — that would skip
150-199. A revoked partition stays committable while the revoke hook runs (the host finishes
its in-flight work and commits it, as Kafka intends) and becomes uncommittable the moment the
hook returns. A *lost* partition (session timeout, fenced) is uncommittable before the hook is
even called: another member may already own it.

Commits never move an offset backwards: per partition and epoch, an offset at or below the
last one this consumer committed is skipped.

librdkafka itself drops fetched records of partitions revoked while a ``consume`` call runs
(op versions and barriers); records of a partition that is no longer owned are dropped here
as well, and a poll cancelled mid-flight keeps its records for the next poll, since the
consumer's position has already moved past them.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol

from confluent_kafka import Consumer, KafkaError, KafkaException, Message
from confluent_kafka import TopicPartition as KafkaPartition

from onex_adapters.kafka.admin import check_kafka_topic
from onex_adapters.kafka.config import KafkaSettings
from onex_adapters.redaction import REDACTOR
from onex_core.errors import EffectUnavailable, UsageError
from onex_core.ports import Record

__all__ = [
    "GroupConsumer",
    "Partition",
    "RevokeHook",
]

Partition = tuple[str, int]
"""``(topic, partition)``."""

log = logging.getLogger("onex.kafka")

_SLICE = 0.05  # longest single wait inside a poll; bounds how long a queued commit waits
_MAX_BATCH = 100_000
_BACKEND = "kafka"


class RevokeHook(Protocol):
    """Called on the event loop when partitions leave this consumer.

    ``lost=False`` (a revocation): the partitions are still owned while the hook runs —
    finish or abandon the in-flight work of those partitions and commit what is finished; the
    partitions are released when the hook returns, or when ``rebalance_timeout`` passes.

    ``lost=True`` (session timeout, fenced): the partitions may already belong to another
    member; commits for them are refused. Abandon their in-flight work.

    The hook must not call ``poll``, ``subscribe`` or ``close`` (they wait for the
    rebalance to end).
    """

    def __call__(self, partitions: frozenset[Partition], *, lost: bool) -> Awaitable[None]: ...


@dataclass(frozen=True, slots=True)
class _Fetched(Record):
    """A record plus the ownership epoch it was fetched under."""

    epoch: int = field(default=0, repr=False, compare=False)


# Records are built on the consumer thread, once per record: setting the slots directly costs
# half of what the frozen __init__ does (object.__setattr__ per field); the result is just as
# frozen.
_new = object.__new__
(
    _set_topic,
    _set_partition,
    _set_offset,
    _set_key,
    _set_value,
    _set_headers,
    _set_timestamp,
) = (getattr(Record, name).__set__ for name in Record.__slots__ if name != "__weakref__")
_set_epoch = _Fetched.__dict__["epoch"].__set__


# --------------------------------------------------------------------------- the worker thread

_WAKE = object()
_STOP = object()


class _Call:
    __slots__ = ("fn", "future", "light")

    def __init__(self, fn: Callable[[], Any], light: bool) -> None:
        self.fn = fn
        self.future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self.light = light

    def run(self) -> None:
        if not self.future.set_running_or_notify_cancel():
            return
        try:
            result = self.fn()
        except Exception as exc:
            self.future.set_exception(exc)
        else:
            self.future.set_result(result)


class _Worker:
    """A thread that runs submitted calls in order. *Light* calls (commits) may also run while
    a heavy one (a fetch, a close) waits inside the consumer; heavy ones never nest."""

    def __init__(self, name: str) -> None:
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._deferred: deque[object] = deque()
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self._thread.start()

    def submit(self, fn: Callable[[], Any], *, light: bool) -> concurrent.futures.Future[Any]:
        call = _Call(fn, light)
        self._queue.put(call)
        return call.future

    def wake(self) -> None:
        self._queue.put(_WAKE)

    def stop(self) -> None:
        self._queue.put(_STOP)

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    def _main(self) -> None:
        while True:
            item = self._deferred.popleft() if self._deferred else self._queue.get()
            if item is _STOP:
                return
            if isinstance(item, _Call):
                item.run()

    def serve_light(self, wait: float) -> None:
        """On the worker thread: run the light calls queued now, waiting up to ``wait``
        seconds for the first item; heavy calls are set aside for later."""
        block = wait > 0
        while True:
            try:
                item = self._queue.get(timeout=wait) if block else self._queue.get_nowait()
            except queue.Empty:
                return
            block = False
            if isinstance(item, _Call) and item.light:
                item.run()
            elif item is not _WAKE:
                self._deferred.append(item)


# --------------------------------------------------------------------------- the consumer


class GroupConsumer:
    """A consumer-group member behind an asyncio interface (the consuming half of the bus).

    Args:
        settings: connection, group and timeouts.
        on_revoked: the revoke hook (see :class:`RevokeHook`); may be set later.
        factory: builds the librdkafka consumer from its configuration (tests substitute it).
    """

    def __init__(
        self,
        settings: KafkaSettings,
        *,
        on_revoked: RevokeHook | None = None,
        factory: Callable[[dict[str, Any]], Any] = Consumer,
    ) -> None:
        self.settings = settings
        self.on_revoked = on_revoked
        self._factory = factory
        self._worker: _Worker | None = None
        self._created: concurrent.futures.Future[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._consumer: Any = None  # touched only on the worker thread
        self._owned: Mapping[Partition, int] = {}  # replaced whole, never mutated
        self._epochs = itertools.count(1)
        self._last: dict[Partition, tuple[int, int]] = {}  # worker thread only
        self._stash: list[_Fetched] = []
        self._stash_lock = threading.Lock()
        self._polling = False
        self._closing = False
        self._closed = False

    @property
    def assignment(self) -> frozenset[Partition]:
        """The partitions this consumer owns right now."""
        return frozenset(self._owned)

    # ------------------------------------------------------------------ loop side

    async def subscribe(self, topics: Sequence[str]) -> None:
        self._open()
        if isinstance(topics, str):
            raise UsageError("subscribe takes a sequence of topic names, not one string")
        names = [check_kafka_topic(t) for t in topics]
        worker = self._start()
        assert self._created is not None
        await asyncio.wrap_future(self._created)  # raises if the settings were refused
        await asyncio.wrap_future(worker.submit(partial(self._subscribe_now, names), light=False))

    async def poll(self, max_records: int, timeout: float) -> Sequence[Record]:
        self._open()
        if isinstance(max_records, bool) or not isinstance(max_records, int):
            raise UsageError("poll needs an integer max_records")
        if not 1 <= max_records <= _MAX_BATCH:
            raise UsageError(f"poll needs max_records between 1 and {_MAX_BATCH}")
        stashed = self._take_stash(max_records)
        if stashed:
            return stashed
        if self._worker is None:
            raise UsageError("poll before subscribe: nothing is assigned to this consumer")
        if self._polling:
            raise UsageError("poll is already running on this bus (one poller at a time)")
        self._polling = True
        future = self._worker.submit(
            partial(self._fetch, max_records, max(0.0, float(timeout))), light=False
        )
        try:
            return await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            # The fetch may already be running; its records must not vanish.
            future.add_done_callback(self._stash_result)
            raise
        finally:
            self._polling = False

    async def commit(self, records: Sequence[Record]) -> None:
        self._open()
        if not records:
            return
        if self._worker is None:
            raise UsageError("commit before subscribe")
        wanted: dict[tuple[str, int, int | None], int] = {}
        for record in records:
            key = (record.topic, record.partition, getattr(record, "epoch", None))
            next_offset = record.offset + 1
            if wanted.get(key, -1) < next_offset:
                wanted[key] = next_offset
        future = self._worker.submit(partial(self._commit_now, wanted), light=True)
        refused, failed = await asyncio.wrap_future(future)
        problems = []
        if refused:
            problems.append(
                "refused for partitions no longer assigned to this consumer: "
                + _show_partitions(refused)
            )
        if failed:
            problems.append("not confirmed: " + "; ".join(failed))
        if problems:
            raise EffectUnavailable("commit " + " and ".join(problems), backend=_BACKEND)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._closing = True
        worker = self._worker
        if worker is None:
            return
        try:
            await asyncio.wrap_future(worker.submit(self._close_now, light=False))
        except Exception as exc:
            log.warning("closing the Kafka consumer failed: %s", REDACTOR.redact_error(exc))
        finally:
            worker.stop()
            await asyncio.to_thread(worker.join, 5.0)

    def _open(self) -> None:
        if self._closed:
            raise UsageError("this Kafka bus is closed")

    def _start(self) -> _Worker:
        if self._worker is None:
            self._loop = asyncio.get_running_loop()
            self._worker = _Worker(f"onex-kafka-consumer[{self.settings.group_id}]")
            self._created = self._worker.submit(self._create_now, light=False)
        return self._worker

    def _take_stash(self, max_records: int) -> list[Record]:
        if not self._stash:
            return []
        with self._stash_lock:
            owned = self._owned
            live = [r for r in self._stash if owned.get((r.topic, r.partition)) == r.epoch]
            taken, self._stash = live[:max_records], live[max_records:]
        return list(taken)

    def _stash_result(self, future: concurrent.futures.Future[Any]) -> None:
        if future.cancelled() or future.exception() is not None:
            return
        with self._stash_lock:
            self._stash.extend(future.result())

    # ------------------------------------------------------------------ worker thread

    def _create_now(self) -> None:
        config = self.settings.consumer_config()
        config["error_cb"] = _log_client_error
        try:
            self._consumer = self._factory(config)
        except KafkaException as exc:
            raise UsageError(
                f"librdkafka refused the consumer settings: {_describe(exc)}"
            ) from None

    def _subscribe_now(self, topics: list[str]) -> None:
        if topics:
            self._consumer.subscribe(
                topics,
                on_assign=self._on_assign,
                on_revoke=self._on_revoke,
                on_lost=self._on_lost,
            )
        else:
            self._consumer.unsubscribe()

    def _fetch(self, max_records: int, timeout: float) -> list[Record]:
        consumer = self._consumer
        worker = self._worker
        assert worker is not None
        if consumer is None:
            raise UsageError("poll before a successful subscribe: there is no consumer")
        deadline = time.monotonic() + timeout
        fetched = self._stamp(consumer.consume(max_records, 0))
        while not fetched and not self._closing:
            worker.serve_light(0)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            fetched = self._stamp(consumer.consume(1, min(_SLICE, remaining)))
            if fetched and max_records > 1:
                fetched.extend(self._stamp(consumer.consume(max_records - 1, 0)))
        owned = self._owned
        return [r for r in fetched if owned.get((r.topic, r.partition)) == r.epoch]

    def _stamp(self, messages: list[Message]) -> list[_Fetched]:
        """Records of ``messages``, each stamped with its partition's current epoch; errors
        are logged (fatal ones raised); records of partitions not owned are dropped."""
        # The hot loop of consumption: one pass, no helper calls, and the epoch looked up
        # only when the partition changes (a batch is mostly runs of one partition).
        owned = self._owned
        out: list[_Fetched] = []
        append = out.append
        last_topic: str | None = None
        last_partition = -1
        epoch: int | None = None
        for message in messages:
            error = message.error()
            if error is not None:
                _message_error(error)
                continue
            topic = message.topic()
            partition = message.partition()
            offset = message.offset()
            if topic is None or partition is None or offset is None:
                continue
            if partition != last_partition or topic != last_topic:
                last_topic, last_partition = topic, partition
                epoch = owned.get((topic, partition))
            if epoch is None:
                continue
            raw_headers = message.headers()
            kind, stamp = message.timestamp()
            record: _Fetched = _new(_Fetched)
            _set_topic(record, topic)
            _set_partition(record, partition)
            _set_offset(record, offset)
            _set_key(record, message.key())
            _set_value(record, message.value() or b"")
            _set_headers(record, _headers(raw_headers) if raw_headers else ())
            _set_timestamp(record, stamp if kind else None)
            _set_epoch(record, epoch)
            append(record)
        return out

    def _commit_now(
        self, wanted: dict[tuple[str, int, int | None], int]
    ) -> tuple[set[Partition], list[str]]:
        owned = self._owned
        refused: set[Partition] = set()
        offsets: dict[Partition, int] = {}
        for (topic, partition, epoch), offset in wanted.items():
            tp = (topic, partition)
            current = owned.get(tp)
            if current is None or (epoch is not None and epoch != current):
                refused.add(tp)
                continue
            last_epoch, last_offset = self._last.get(tp, (0, -1))
            if last_epoch == current and offset <= last_offset:
                continue  # never backwards
            if offsets.get(tp, -1) < offset:
                offsets[tp] = offset
        failed: list[str] = []
        if offsets and self._consumer is None:
            failed.append(f"{_show_partitions(offsets)} (the consumer is closed)")
        elif offsets:
            request = [KafkaPartition(t, p, o) for (t, p), o in offsets.items()]
            try:
                result = self._consumer.commit(offsets=request, asynchronous=False)
            except KafkaException as exc:
                failed.append(f"{_show_partitions(offsets)} ({_describe(exc)})")
            except RuntimeError as exc:  # the consumer was closed under us
                failed.append(f"{_show_partitions(offsets)} ({type(exc).__name__})")
            else:
                for item in result or ():
                    tp = (item.topic, item.partition)
                    if item.error is not None:
                        failed.append(f"{_show_partitions([tp])} ({_describe(item.error)})")
                    elif tp in owned:
                        self._last[tp] = (owned[tp], item.offset)
        return refused, failed

    def _close_now(self) -> None:
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            try:
                consumer.close()
            finally:
                self._owned = {}

    # ------------------------------------------------------------------ rebalance callbacks

    def _on_assign(self, consumer: Any, partitions: list[KafkaPartition]) -> None:
        try:
            consumer.incremental_assign(partitions)
            owned = dict(self._owned)
            for p in partitions:
                owned[(p.topic, p.partition)] = next(self._epochs)
            self._owned = owned
        except Exception as exc:  # a raising callback would surface from consume()
            log.error("Kafka partition assignment failed: %s", REDACTOR.redact_error(exc))

    def _on_revoke(self, consumer: Any, partitions: list[KafkaPartition]) -> None:
        gone = frozenset((p.topic, p.partition) for p in partitions)
        try:
            self._run_hook(gone, lost=False)
        finally:
            self._release(consumer, partitions, gone)

    def _on_lost(self, consumer: Any, partitions: list[KafkaPartition]) -> None:
        gone = frozenset((p.topic, p.partition) for p in partitions)
        self._release(consumer, partitions, gone)
        self._run_hook(gone, lost=True)

    def _release(
        self, consumer: Any, partitions: list[KafkaPartition], gone: frozenset[Partition]
    ) -> None:
        self._owned = {tp: e for tp, e in self._owned.items() if tp not in gone}
        try:
            consumer.incremental_unassign(partitions)
        except Exception as exc:
            log.error("Kafka partition release failed: %s", REDACTOR.redact_error(exc))

    def _run_hook(self, partitions: frozenset[Partition], *, lost: bool) -> None:
        hook, loop, worker = self.on_revoked, self._loop, self._worker
        if hook is None or loop is None or worker is None or loop.is_closed() or not partitions:
            return

        async def call_hook() -> None:
            await hook(partitions, lost=lost)

        try:
            future = asyncio.run_coroutine_threadsafe(call_hook(), loop)
        except RuntimeError:  # the loop shut down
            return
        future.add_done_callback(lambda _: worker.wake())
        deadline = time.monotonic() + self.settings.rebalance_timeout
        while not future.done():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                future.cancel()
                log.warning(
                    "revoke hook for %s did not finish within %g s; releasing the partitions "
                    "with their in-flight work uncommitted",
                    _show_partitions(partitions),
                    self.settings.rebalance_timeout,
                )
                return
            worker.serve_light(remaining)
        if not future.cancelled() and future.exception() is not None:
            log.warning(
                "revoke hook for %s failed: %s",
                _show_partitions(partitions),
                REDACTOR.redact_error(future.exception()),  # type: ignore[arg-type]
            )


# --------------------------------------------------------------------------- helpers


def _headers(raw: Any) -> tuple[tuple[str, bytes], ...]:
    items = raw.items() if isinstance(raw, dict) else raw
    return tuple(
        (name, value.encode() if isinstance(value, str) else (value or b""))
        for name, value in items
    )


def _show_partitions(partitions: object) -> str:
    items = sorted(partitions)  # type: ignore[call-overload]
    return ", ".join(f"{topic}[{partition}]" for topic, partition in items)


def _describe(error: object) -> str:
    if isinstance(error, KafkaException) and error.args:
        error = error.args[0]
    if isinstance(error, KafkaError):
        return f"{error.name()}: {REDACTOR.redact(error.str(), limit=200)}"
    return type(error).__name__


def _message_error(error: KafkaError) -> None:
    if error.fatal():
        raise EffectUnavailable(
            f"the Kafka consumer failed fatally ({_describe(error)}); close this bus and "
            "create a new one",
            backend=_BACKEND,
        )
    log.warning("Kafka consumer: %s", _describe(error))


def _log_client_error(error: KafkaError) -> None:
    # librdkafka logs transport failures itself; say the rest (all brokers down, fatal).
    level = logging.DEBUG if error.code() == KafkaError._TRANSPORT else logging.WARNING
    log.log(level, "Kafka client: %s", _describe(error))
