"""The producing half of the Kafka bus: publishes that return only once the broker confirmed.

librdkafka's producer is asynchronous: ``produce`` only queues a record, and the broker's
answer arrives later as a *delivery report*, handed to a callback from inside
``Producer.poll``. :class:`Publisher` bridges that into asyncio:

- ``produce`` is called on the event loop (it never blocks; a full queue raises
  ``BufferError`` at once). A full queue is waited out — until the next delivery reports free
  space — never dropped.
- A dedicated thread blocks in ``poll`` and so serves the delivery reports. Each publish (or
  each :meth:`Publisher.publish_many` batch) is one *pending*; a report only bumps its counter
  on that thread. Pendings that completed during one ``poll`` are handed to the event loop in
  one ``call_soon_threadsafe``, so a burst of 100,000 confirmations wakes the loop a handful of
  times, not 100,000.
- A pending's counters each have exactly one writer (records produced: the loop; reports
  received: the poll thread), so no lock is taken per record.

The producer is idempotent with ``acks=all``: librdkafka retries internally within
``message.timeout.ms`` without duplicating or reordering, and reports a failure exactly once.
A failed report raises :class:`~onex_core.errors.EffectUnavailable` — the record may or may not
have been written, and publishing it again is safe because consumers are idempotent — or
:class:`~onex_core.errors.EffectRejected` when the broker refused it for good (too large, not
authorized): it was not written and retrying will not help.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from onex_adapters.kafka.admin import check_kafka_topic
from onex_adapters.kafka.config import KafkaSettings
from onex_adapters.redaction import REDACTOR
from onex_core.errors import EffectError, EffectRejected, EffectUnavailable, UsageError

__all__ = [
    "Outgoing",
    "Publisher",
]

log = logging.getLogger("onex.kafka")

_POLL_WAIT = 0.1  # the poll thread's longest wait; bounds how long close waits for it
_ROOM_WAIT = 0.5  # a safety net while waiting for queue space; normally a report wakes us
_BACKEND = "kafka"

_PERMANENT = frozenset(
    {
        KafkaError.MSG_SIZE_TOO_LARGE,
        KafkaError.INVALID_MSG_SIZE,
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
        KafkaError.CLUSTER_AUTHORIZATION_FAILED,
        KafkaError.TOPIC_EXCEPTION,
        KafkaError.INVALID_RECORD,
        KafkaError._INVALID_ARG,
    }
)


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One record to publish with :meth:`Publisher.publish_many`."""

    topic: str
    value: bytes
    key: bytes | None = None
    headers: Sequence[tuple[str, bytes]] = ()


class _Pending:
    """One publish (or batch) awaiting its delivery reports."""

    __slots__ = ("confirmed", "errors", "failed", "future", "owner", "produced", "sealed")

    def __init__(self, future: asyncio.Future[None], owner: Publisher) -> None:
        self.future = future
        self.owner = owner
        self.produced = 0  # written on the event loop only
        self.confirmed = 0  # written on the poll thread only
        self.failed = 0  # written on the poll thread only
        self.errors: list[tuple[KafkaError, str | None]] = []
        self.sealed = False

    def delivered(self, error: KafkaError | None, message: Message) -> None:
        """The delivery report callback (poll thread)."""
        if error is not None:
            self.failed += 1
            if len(self.errors) < 3:
                self.errors.append((error, message.topic() if message is not None else None))
        self.confirmed += 1
        if self.sealed and self.confirmed == self.produced:
            self.owner._done.append(self)

    def outcome(self) -> EffectError | None:
        if not self.failed:
            return None
        permanent = all(e.code() in _PERMANENT for e, _ in self.errors)
        shown = "; ".join(
            f"{topic!r}: {_describe(error)}" if topic else _describe(error)
            for error, topic in self.errors
        )
        if self.produced > 1:
            of, maybe = f"{self.failed} of {self.produced} records", "they"
        else:
            of, maybe = "the record", "it"
        if permanent:
            return EffectRejected(f"the broker refused {of}: {shown}", backend=_BACKEND)
        return EffectUnavailable(
            f"the broker did not confirm {of} ({maybe} may or may not have been written): {shown}",
            backend=_BACKEND,
        )


class Publisher:
    """An idempotent producer behind an asyncio interface (the producing half of the bus).

    Args:
        settings: connection, security and ``close_timeout``.
        factory: builds the librdkafka producer from its configuration (tests substitute it).
    """

    def __init__(
        self,
        settings: KafkaSettings,
        *,
        factory: Callable[[dict[str, Any]], Any] = Producer,
    ) -> None:
        self.settings = settings
        self._factory = factory
        self._producer: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._done: deque[_Pending] = deque()
        self._room = asyncio.Event()
        self._want_room = False
        self._stopping = False
        self._closed = False
        self.unconfirmed_at_close = 0

    # ------------------------------------------------------------------ loop side

    async def publish(
        self,
        topic: str,
        value: bytes,
        *,
        key: bytes | None = None,
        headers: Sequence[tuple[str, bytes]] = (),
    ) -> None:
        if self._closed:
            raise UsageError("this Kafka bus is closed")
        producer = self._producer if self._producer is not None else self._start()
        check_kafka_topic(topic)
        pending = _Pending(self._loop.create_future(), self)  # type: ignore[union-attr]
        try:
            producer.produce(
                topic, value, key, headers=list(headers) or None, on_delivery=pending.delivered
            )
            pending.produced = 1
        except BufferError:
            await self._produce(pending, topic, value, key, headers)
        except KafkaException as exc:
            raise _produce_error(topic, exc) from exc
        self._seal(pending)
        await pending.future

    async def publish_many(self, records: Iterable[Outgoing]) -> None:
        """Publish ``records`` (kept in order per partition) and return once the broker has
        confirmed every one of them.

        Raises:
            EffectUnavailable: some records were not confirmed (they may or may not have been
                written); the others were. Publishing the whole batch again is safe.
            EffectRejected: the broker refused some records for good.
            TopicError: a topic name breaks Kafka's rules; nothing of the batch was queued.
        """
        if self._closed:
            raise UsageError("this Kafka bus is closed")
        items = list(records)
        for topic in {item.topic for item in items}:
            check_kafka_topic(topic)
        if not items:
            return
        if self._producer is None:
            self._start()
        pending = _Pending(self._loop.create_future(), self)  # type: ignore[union-attr]
        produce = self._producer.produce
        deliver = pending.delivered
        refused: EffectError | None = None
        for item in items:
            try:
                produce(
                    item.topic,
                    item.value,
                    item.key,
                    headers=list(item.headers) or None,
                    on_delivery=deliver,
                )
                pending.produced += 1
            except BufferError:
                await self._produce(pending, item.topic, item.value, item.key, item.headers)
            except KafkaException as exc:
                refused = refused or _produce_error(item.topic, exc)
        self._seal(pending)
        await pending.future
        if refused is not None:
            raise refused

    async def close(self) -> None:
        """Deliver what is queued within ``close_timeout``; what is still unconfirmed then is
        purged, and its publishes fail with ``EffectUnavailable``. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self._stopping = True
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join)
            await asyncio.sleep(0)  # let the last hand-over run

    # ------------------------------------------------------------------ internals

    def _start(self) -> Any:
        if self._closed:
            raise UsageError("this Kafka bus is closed")
        self._loop = asyncio.get_running_loop()
        config = self.settings.producer_config()
        config["error_cb"] = _log_client_error
        try:
            self._producer = self._factory(config)
        except KafkaException as exc:
            error = exc.args[0] if exc.args else None
            shown = _describe(error) if isinstance(error, KafkaError) else "invalid configuration"
            raise UsageError(f"librdkafka refused the producer settings: {shown}") from None
        self._thread = threading.Thread(target=self._serve, name="onex-kafka-producer", daemon=True)
        self._thread.start()
        return self._producer

    async def _produce(
        self,
        pending: _Pending,
        topic: str,
        value: bytes,
        key: bytes | None,
        headers: Sequence[tuple[str, bytes]],
    ) -> None:
        """Queue one record, waiting for room while the producer's queue is full."""
        while True:
            if self._closed:
                raise EffectUnavailable(
                    "the Kafka bus closed before the record was queued", backend=_BACKEND
                )
            self._want_room = True
            self._room.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._room.wait(), _ROOM_WAIT)
            try:
                self._producer.produce(
                    topic,
                    value,
                    key,
                    headers=list(headers) or None,
                    on_delivery=pending.delivered,
                )
            except BufferError:
                continue
            except KafkaException as exc:
                raise _produce_error(topic, exc) from exc
            pending.produced += 1
            return

    def _seal(self, pending: _Pending) -> None:
        pending.sealed = True
        if pending.confirmed == pending.produced:
            self._settle([pending])

    def _settle(self, pendings: list[_Pending]) -> None:
        for pending in pendings:
            if pending.future.done():
                continue
            outcome = pending.outcome()
            if outcome is None:
                pending.future.set_result(None)
            else:
                pending.future.set_exception(outcome)
        if self._want_room:
            self._want_room = False
            self._room.set()

    def _hand_over(self, served: int) -> None:
        """On the poll thread: pass completed pendings (and news of free queue space) to the
        event loop in one call."""
        if not self._done and not (served and self._want_room):
            return
        batch = []
        while self._done:
            batch.append(self._done.popleft())
        loop = self._loop
        if loop is None:
            return
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody is waiting any more
            loop.call_soon_threadsafe(self._settle, batch)

    def _serve(self) -> None:
        producer = self._producer
        try:
            while not self._stopping:
                self._hand_over(producer.poll(_POLL_WAIT))
            left = producer.flush(self.settings.close_timeout)
            if left:
                log.warning(
                    "closing the Kafka producer: %d records unconfirmed after %g s; purging",
                    left,
                    self.settings.close_timeout,
                )
                producer.purge(in_queue=True, in_flight=True, blocking=True)
                producer.flush(self.settings.close_timeout)
            self.unconfirmed_at_close = left
            self._hand_over(1)
            close = getattr(producer, "close", None)
            if close is not None:
                close()
        except Exception as exc:  # never let the thread die with an unhandled error
            log.error("the Kafka producer thread failed: %s", REDACTOR.redact_error(exc))


def _describe(error: KafkaError) -> str:
    return f"{error.name()}: {REDACTOR.redact(error.str(), limit=200)}"


def _produce_error(topic: str, exc: KafkaException) -> EffectError:
    error = exc.args[0] if exc.args else None
    if isinstance(error, KafkaError):
        text = f"publish to {topic!r} was refused before sending: {_describe(error)}"
        if error.code() in _PERMANENT:
            return EffectRejected(text, backend=_BACKEND)
        return EffectUnavailable(text, backend=_BACKEND)
    return EffectUnavailable(f"publish to {topic!r} failed", backend=_BACKEND)


def _log_client_error(error: KafkaError) -> None:
    # librdkafka logs transport failures itself; say the rest (all brokers down, fatal).
    level = logging.DEBUG if error.code() == KafkaError._TRANSPORT else logging.WARNING
    log.log(level, "Kafka client: %s", _describe(error))
