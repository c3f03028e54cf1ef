"""The runtime host: the loop that turns records on a bus into applied, committed work.

One envelope's way through the host::

    bus.poll(batch) → decode → route → handlers → apply → … → commit the batch

- **decode**: an undecodable record is a content error: it is dead-lettered at once.
- **route**: an unroutable envelope (no route, a malformed publisher, a topic that is not
  routable) is dead-lettered at once, to the dead-letter topic the route table names.
- **handle**: each handler of the plan returns an :class:`Outcome`. A transient failure
  (``EffectUnavailable``, e.g. a projection read that timed out) retries the envelope with
  backoff, then dead-letters it with its attempt history; a content error or a bug dead-letters
  it at once.
- **apply**, strictly in this order: projections are written; intents run through the
  :class:`EffectExecutor` (those of one envelope concurrently); events are published — the
  handler's, then one outcome event per intent whose binding names an outcome topic. An intent
  that failed for good becomes a dead-letter record of its own.
- **commit**: only after every record of the batch was applied or dead-lettered. A dead-letter
  write counts only once the bus confirmed it; while the bus cannot take a publish (the DLQ or
  an output topic is down) the host keeps retrying with capped backoff, and nothing after the
  stuck record is committed — the partition pauses rather than losing the record.

At-least-once delivery plus idempotent effects is effectively-once: a record redelivered after a
crash is handled again, its intents have the same ids and are skipped, its events have the same
ids and are harmless duplicates. Redeliveries and duplicates are normal input.

**Order and concurrency.** Records with the same key (the entity id) are handled one after
another, in order; different keys are handled concurrently by up to ``concurrency`` workers,
the first of which is the polling task itself (the others start only once it waits). A batch is
finished before the next poll, so work in flight is bounded by the batch size: a slow effect
slows the consumer down, it never grows memory. If a worker fails (the host is stopping, the
consumer crashed), no worker starts another record, and once the records in hand are finished
the error propagates and the batch is left uncommitted.

**The host owns the effect handlers' lifecycle**: :meth:`RuntimeHost.start` awaits each distinct
handler's ``initialize`` (with its entry of ``handler_configs``, else ``{}``) before it
subscribes, and :meth:`RuntimeHost.stop` awaits each one's ``shutdown``. A handler built
already configured must therefore accept ``initialize({})`` as a no-op.

**Shutdown drains**: :meth:`RuntimeHost.stop` stops polling, lets the batch in hand finish
within ``drain_timeout`` and commits it; past the deadline the batch is abandoned uncommitted
(it will be redelivered). Then effect handlers are shut down and the bus is closed.

The host reads time only from its :class:`~onex_adapters.clock.Clock` and the event loop, and
makes ids only through its :class:`~onex_adapters.runtime.ids.IdSource`: on a
:class:`~onex_adapters.clock.VirtualTimeLoop` with a seeded id source a run is deterministic.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from onex_adapters.clock import Clock
from onex_adapters.codec import DecodeError, EnvelopeCodec
from onex_adapters.headers import envelope_headers
from onex_adapters.redaction import REDACTOR, Redactor
from onex_adapters.runtime.dlq import Attempt, DeadLetter, dead_letter
from onex_adapters.runtime.effects import EffectBinding, EffectExecutor, EffectReport
from onex_adapters.runtime.handlers import HandlerContext, MessageHandler, Outcome
from onex_adapters.runtime.ids import IdSource, RandomIds
from onex_core.dispatch import RouteTable, Unroutable, route
from onex_core.errors import EffectRejected, EffectUnavailable, UsageError
from onex_core.messages import Envelope, derive_id
from onex_core.ports import EffectHandler, EventBus, IdempotencyStore, ProjectionStore, Record
from onex_core.resilience import RetryPolicy, next_delay
from onex_core.topics import dlq_topic_for, parse_topic

__all__ = ["RuntimeConfig", "RuntimeHost", "RuntimeStats", "envelope_headers"]

log = logging.getLogger("onex.runtime")


@dataclass(frozen=True, slots=True)
class RuntimeConfig:
    """How the host runs.

    Args:
        name: the host's name, used as the ``source`` of dead-letter records.
        max_poll_records: the batch size.
        poll_timeout: seconds a poll waits for the first record.
        concurrency: how many entities are handled at once.
        drain_timeout: seconds :meth:`RuntimeHost.stop` waits for the batch in hand.
        handler_retry: retries of an envelope whose handler failed transiently.
        publish_retry: backoff between attempts to publish (events and dead letters), which
            are retried until they succeed or the host stops; ``max_attempts`` is ignored.
        dlq_topic: the dead-letter topic for failed intents and handlers (default: the route
            table's, else one derived from the record's topic).
    """

    name: str = "onex"
    max_poll_records: int = 500
    poll_timeout: float = 0.5
    concurrency: int = 16
    drain_timeout: float = 30.0
    handler_retry: RetryPolicy = RetryPolicy(max_attempts=3, initial_delay=0.2, max_delay=5.0)
    publish_retry: RetryPolicy = RetryPolicy(max_attempts=2, initial_delay=0.1, max_delay=5.0)
    dlq_topic: str | None = None

    def __post_init__(self) -> None:
        if self.max_poll_records < 1 or self.concurrency < 1:
            raise UsageError("max_poll_records and concurrency must be at least 1")
        if not 1.0 <= self.drain_timeout <= 300.0:
            raise UsageError("drain_timeout must be between 1 and 300 seconds")


@dataclass
class RuntimeStats:
    """Counters, for health reports, logs and tests."""

    polled: int = 0
    handled: int = 0
    dead_lettered: int = 0
    effects_done: int = 0
    effects_skipped: int = 0
    effects_failed: int = 0
    events_published: int = 0
    projections_written: int = 0
    projections_stale: int = 0
    batches_committed: int = 0
    commit_failures: int = 0
    dead_letters: list[DeadLetter] = field(default_factory=list)


class _Stopping(Exception):
    """Raised inside a batch when the host must give up on it (drain deadline)."""


class RuntimeHost:
    """The composition root's product: every adapter comes in as a parameter.

    Args:
        bus: the event bus (in memory, Kafka).
        routes: the route table; its handler ids must all be in ``handlers``.
        handlers: message handlers by id.
        effects: effect bindings (or a ready executor).
        projections: the projection store handlers read and the host writes.
        idempotency: where done intents are recorded.
        clock: the time source.
        topics: the topics to subscribe to (default: every topic the routes name exactly).
        ids: the id source for messages the host originates.
        codec: the envelope codec.
        jitter: the random source for backoff jitter.
        handler_configs: the ``initialize`` configuration of the effect handlers, by
            ``handler_type`` (default: ``{}`` for each). It may hold secrets: never logged.

    Raises:
        UsageError: a route names a handler id not in ``handlers``, or ``handler_configs``
            names a handler type no effect handler has.
    """

    def __init__(
        self,
        *,
        bus: EventBus,
        routes: RouteTable,
        handlers: Mapping[str, MessageHandler],
        effects: Iterable[EffectBinding] | EffectExecutor,
        projections: ProjectionStore,
        idempotency: IdempotencyStore,
        clock: Clock,
        topics: Sequence[str] | None = None,
        ids: IdSource | None = None,
        codec: EnvelopeCodec | None = None,
        config: RuntimeConfig | None = None,
        redactor: Redactor = REDACTOR,
        jitter: random.Random | None = None,
        handler_configs: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        missing = sorted(set(routes.handler_ids) - set(handlers))
        if missing:
            raise UsageError(f"routes name handlers that were not given: {', '.join(missing)}")
        self.bus = bus
        self.routes = routes
        self.handlers = dict(handlers)
        self.projections = projections
        self.clock = clock
        self.config = config or RuntimeConfig()
        self.codec = codec or EnvelopeCodec()
        self.ids = ids or RandomIds()
        self.redactor = redactor
        self._jitter = jitter or random.Random()
        self.effects = (
            effects
            if isinstance(effects, EffectExecutor)
            else EffectExecutor(effects, idempotency, clock, jitter=self._jitter, redactor=redactor)
        )
        if topics is None:
            topics = sorted({r.pattern for r in routes.routes if r.topic_pattern.is_exact})
        self.topics = tuple(topics)
        for topic in self.topics:
            parse_topic(topic)
        # The executor's entry that skips the report of an intent done at once (nothing but a
        # count is needed then) — unless a subclass changed how intents are run.
        self._run_quietly = (
            self.effects._run if type(self.effects).run is EffectExecutor.run else None
        )
        # Intent types whose outcomes are announced (the executor's bindings are fixed).
        self._announced = frozenset(
            binding.intent_type
            for binding in self.effects.bindings.values()
            if binding.outcome_topic is not None
        )
        # Each distinct effect handler once, in binding order (one handler may serve several
        # intent types).
        self._effect_handlers = tuple(
            {id(b.handler): b.handler for b in self.effects.bindings.values()}.values()
        )
        self._handler_configs = dict(handler_configs or {})
        unknown = sorted(
            set(self._handler_configs) - {h.handler_type for h in self._effect_handlers}
        )
        if unknown:
            raise UsageError(
                "handler_configs names handler types no effect handler has: "
                + ", ".join(map(repr, unknown))
            )
        self.stats = RuntimeStats()
        self._stopping = False
        self._started = False
        self._loop_task: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Initialize each distinct effect handler once, then subscribe to the topics. Called
        by :meth:`run` and :meth:`run_until_idle`; a second call does nothing.

        Raises:
            Exception: whatever a handler's ``initialize`` raised, with a note naming the
                handler type. The handlers initialized before it have been shut down again,
                nothing was subscribed, and the host is not started.
        """
        if self._started:
            return
        self._started = True
        ready: list[EffectHandler] = []
        for handler in self._effect_handlers:
            try:
                await handler.initialize(self._handler_configs.get(handler.handler_type, {}))
            except BaseException as exc:
                self._started = False
                log.error(
                    "effect handler %r failed to initialize; the host is not started: %s",
                    handler.handler_type,
                    self.redactor.redact_error(exc),
                )
                await self._shut_down(ready)
                exc.add_note(
                    f"while the runtime host initialized effect handler {handler.handler_type!r}"
                    "; the host did not start"
                )
                raise
            ready.append(handler)
        await self.bus.subscribe(self.topics)

    async def run(self) -> None:
        """Poll and handle batches until :meth:`stop` is called."""
        await self.start()
        while not self._stopping:
            try:
                await self.run_once()
            except _Stopping:
                return

    def start_background(self) -> asyncio.Task[None]:
        """Run :meth:`run` as a task (stop it with :meth:`stop`)."""
        self._loop_task = asyncio.ensure_future(self.run())
        return self._loop_task

    async def stop(self) -> None:
        """Drain: stop polling, finish the batch in hand within ``drain_timeout`` (committing
        it), then shut effect handlers down and close the bus."""
        self._stopping = True
        task = self._loop_task
        if task is not None and not task.done():
            try:
                await asyncio.wait_for(asyncio.shield(task), self.config.drain_timeout)
            except TimeoutError:
                log.warning("drain deadline passed; abandoning the batch in hand uncommitted")
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self._shut_down(self._effect_handlers)
        await self.bus.close()

    async def _shut_down(self, handlers: Sequence[EffectHandler]) -> None:
        """Shut each handler down, latest first; one failing does not stop the others."""
        for handler in reversed(handlers):
            try:
                await handler.shutdown(self.config.drain_timeout)
            except Exception as exc:  # shutdown must go on for the others
                log.warning(
                    "effect handler %r shutdown failed: %s",
                    handler.handler_type,
                    self.redactor.redact_error(exc),
                )

    @property
    def is_draining(self) -> bool:
        return self._stopping

    async def run_until_idle(self, max_batches: int = 1_000_000) -> int:
        """Handle batches until a poll comes back empty (for tests and the demo).

        Returns:
            The number of records handled.
        """
        await self.start()
        total = 0
        for _ in range(max_batches):
            handled = await self.run_once(timeout=0.0)
            if handled == 0:
                break
            total += handled
        return total

    # ------------------------------------------------------------------ one batch

    async def run_once(self, timeout: float | None = None) -> int:
        """Poll one batch, handle every record (same key in order, keys concurrently), and
        commit it. Returns the number of records in the batch."""
        records = await self.bus.poll(
            self.config.max_poll_records,
            self.config.poll_timeout if timeout is None else timeout,
        )
        if not records:
            return 0
        self.stats.polled += len(records)
        groups: dict[object, list[Record]] = {}
        for record in records:
            key: object = record.key
            if key is None:
                key = (record.topic, record.partition)
            group = groups.get(key)
            if group is None:
                groups[key] = [record]
            else:
                group.append(record)
        if len(groups) == 1 or self.config.concurrency == 1:
            await self._drain(deque(groups.values()))
        else:
            await self._work(deque(groups.values()))
        await self._commit(records)
        return len(records)

    async def _work(self, queue: deque[list[Record]]) -> None:
        """Handle the groups in ``queue``, each in order, up to ``concurrency`` at once.

        This task is the first worker. The others are started only once it waits for
        something (a callback scheduled now runs only then), and only as many as there are
        groups left: a batch that never waits — everything in memory — needs no tasks at all.

        Raises:
            The first error a worker raised, once every worker has finished the record in its
            hands (none starts another after an error). Cancelling this task cancels them all.
        """
        failures: list[BaseException] = []

        async def worker() -> None:
            try:
                while queue and not failures:
                    for record in queue.popleft():
                        if failures:
                            return
                        await self._process(record)
            except BaseException as exc:
                failures.append(exc)
                raise

        helpers: list[asyncio.Task[None]] = []

        def start_helpers() -> None:
            for _ in range(min(self.config.concurrency - 1, len(queue))):
                helpers.append(asyncio.ensure_future(worker()))

        pending = asyncio.get_running_loop().call_soon(start_helpers)
        try:
            await worker()
        except asyncio.CancelledError:
            pending.cancel()
            for helper in helpers:
                helper.cancel()
            raise
        except BaseException:
            pass  # in failures: raised below, once the others have finished their records
        pending.cancel()
        if helpers:
            await asyncio.gather(*helpers, return_exceptions=True)
        if failures:
            raise failures[0]

    async def _drain(self, queue: deque[list[Record]]) -> None:
        """Take groups from ``queue`` until it is empty; handle each group's records in order."""
        while queue:
            for record in queue.popleft():
                await self._process(record)

    async def _commit(self, records: Sequence[Record]) -> None:
        try:
            await self.bus.commit(records)
        except EffectUnavailable as exc:
            # Typically a rebalance took partitions away: their records will be handled again
            # by the new owner, and handling is idempotent.
            self.stats.commit_failures += 1
            log.warning("commit failed: %s", self.redactor.redact_error(exc))
        else:
            self.stats.batches_committed += 1

    # ------------------------------------------------------------------ one record

    async def _process(self, record: Record) -> None:
        """Decode, route, handle and apply one record; dead-letter it where that fails."""
        try:
            envelope = self.codec.decode(record.value, arrived_on=record.topic)
        except DecodeError as exc:
            await self._dead_letter(record, "undecodable", exc, str(exc), None)
            return
        verdict = route(self.routes, envelope)
        if isinstance(verdict, Unroutable):
            await self._dead_letter(
                record,
                verdict.reason.value,
                None,
                verdict.detail,
                envelope.correlation_id,
                topic=verdict.dlq_topic,
                error_type="Unroutable",
            )
            return
        for handler_id in verdict.handler_ids:
            handler = self.handlers[handler_id]
            # The first attempt inline (it nearly always succeeds); _handle takes over a failure.
            try:
                outcome = await handler.handle(
                    envelope, HandlerContext(self.clock.now(), self.projections, record)
                )
            except Exception as exc:  # retried, or dead-lettered, by _handle
                retried = await self._handle(handler, envelope, record, exc)
                if retried is None:
                    continue
                outcome = retried
            outputs = outcome.outputs
            if len(outputs) == 1:
                output = outputs[0]
                intents = output.intents
                announced = self._announced
                if (
                    len(intents) == 1
                    and not output.projections
                    and not output.events
                    and (not announced or intents[0].intent_type not in announced)
                ):
                    # The usual outcome, one intent and nothing else: _apply, inline.
                    if self._run_quietly is None:
                        report: EffectReport | None = await self.effects.run(intents[0])
                    else:
                        report = await self._run_quietly(intents[0], False)
                    if report is None or report.status == "done":
                        self.stats.effects_done += 1
                    else:
                        await self._settle(report, envelope, record)
                    continue
            try:
                await self._apply(outcome, envelope, record)
            except EffectRejected as exc:
                # A projection the store refuses for good (a constraint, a bad value):
                # nothing of this outcome is applied, and the envelope is dead-lettered.
                await self._dead_letter(
                    record, "projection_rejected", exc, str(exc), envelope.correlation_id
                )
        self.stats.handled += 1

    async def _handle(
        self, handler: MessageHandler, envelope: Envelope, record: Record, failure: Exception
    ) -> Outcome | None:
        """After the first attempt failed with ``failure``: retry a transient failure with
        backoff; dead-letter a permanent one, or one that exhausted its retries (``None``)."""
        attempts: list[Attempt] = []
        number = 1
        exc = failure
        while True:
            if isinstance(exc, EffectUnavailable):
                attempts.append(self._attempt(number, exc))
                delay = next_delay(
                    self.config.handler_retry, number, self._jitter.random(), exc.retry_after
                )
                if delay is None:
                    await self._dead_letter(
                        record,
                        "handler_exhausted",
                        exc,
                        str(exc),
                        envelope.correlation_id,
                        attempts=attempts,
                        max_retries=self.config.handler_retry.max_attempts - 1,
                    )
                    return None
                await asyncio.sleep(delay)
            else:  # content errors, permanent rejections and handler bugs
                attempts.append(self._attempt(number, exc))
                log.warning(
                    "handler %s failed on %s: %s",
                    handler.handler_id,
                    envelope.event_type,
                    self.redactor.redact_error(exc),
                )
                await self._dead_letter(
                    record,
                    "handler_error",
                    exc,
                    str(exc),
                    envelope.correlation_id,
                    attempts=attempts,
                )
                return None
            number += 1
            try:
                return await handler.handle(
                    envelope, HandlerContext(self.clock.now(), self.projections, record)
                )
            except Exception as error:
                exc = error

    def _attempt(self, number: int, exc: BaseException) -> Attempt:
        return Attempt(number, self.clock.now(), type(exc).__name__, self.redactor.redact(str(exc)))

    async def _apply(self, outcome: Outcome, envelope: Envelope, record: Record) -> None:
        outputs = outcome.outputs
        if len(outputs) == 1:  # the usual case: read the one output's fields directly
            output = outputs[0]
            projections, intents, events = output.projections, output.intents, output.events
        else:
            projections, intents, events = outcome.projections, outcome.intents, outcome.events
        stats = self.stats
        # 1. projections
        for projection in projections:
            written = await self._retrying("projection write", self.projections.put, projection)
            if written:
                stats.projections_written += 1
            else:
                stats.projections_stale += 1
        # 2. intents (one envelope's intents run concurrently)
        outcome_events: list[Envelope] = []
        if intents:
            reports: Sequence[EffectReport]
            if len(intents) == 1:
                reports = (await self.effects.run(intents[0]),)
            else:
                reports = await asyncio.gather(*(self.effects.run(i) for i in intents))
            announced = self._announced
            for report in reports:
                if report.status == "done":
                    stats.effects_done += 1
                else:
                    await self._settle(report, envelope, record)
                if report.intent.intent_type in announced:
                    event = self._outcome_event(report, envelope)
                    if event is not None:
                        outcome_events.append(event)
        # 3. events
        if events or outcome_events:
            for event in (*events, *outcome_events):
                await self._publish(
                    event.topic,
                    self.codec.encode(event),
                    event.entity_id.encode(),
                    envelope_headers(event),
                )
                stats.events_published += 1

    async def _settle(self, report: EffectReport, envelope: Envelope, record: Record) -> None:
        """Count an intent that was skipped or failed; dead-letter a failed one."""
        if report.status == "skipped":
            self.stats.effects_skipped += 1
            return
        self.stats.effects_failed += 1
        await self._dead_letter(
            record,
            "effect_rejected" if report.permanent else "effect_exhausted",
            report.error,
            str(report.error),
            envelope.correlation_id,
            attempts=report.attempts,
            max_retries=self._max_retries(report),
            intent=report.intent,
        )

    def _max_retries(self, report: EffectReport) -> int:
        binding = self.effects.binding(report.intent.intent_type)
        return 0 if binding is None else binding.policy.retry.max_attempts - 1

    def _outcome_event(self, report: EffectReport, cause: Envelope) -> Envelope | None:
        binding = self.effects.binding(report.intent.intent_type)
        if binding is None or binding.outcome_topic is None:
            return None
        topic = parse_topic(binding.outcome_topic)
        intent = report.intent
        payload: dict[str, Any] = {
            "intent_id": str(intent.intent_id),
            "intent_type": intent.intent_type,
            "target": intent.target,
            "ok": report.ok,
            "status": report.status,
            "attempts": len(report.attempts) + (1 if report.status == "done" else 0),
        }
        if report.result is not None and report.result.detail:
            payload["detail"] = dict(report.result.detail)
        if report.error is not None:
            payload["permanent"] = report.permanent
            payload["error_type"] = type(report.error).__name__
            payload["reason"] = self.redactor.redact(str(report.error), limit=200)
        # The id says which outcome this is: a redelivered intent reports its outcome again with
        # the same id (a harmless duplicate), but an intent that failed and later succeeded
        # reports a *different* event, which must not be taken for a duplicate of the failure.
        return Envelope(
            envelope_id=derive_id(intent.intent_id, f"{topic.event_type}:{0 if report.ok else 1}"),
            topic=binding.outcome_topic,
            event_type=topic.event_type,
            payload=payload,
            correlation_id=cause.correlation_id,
            entity_id=cause.entity_id,
            emitted_at=self.clock.now(),
            causation_id=cause.envelope_id,
        )

    # ------------------------------------------------------------------ reliable writes

    async def _dead_letter(
        self,
        record: Record,
        failure_class: str,
        error: BaseException | None,
        reason: str,
        correlation_id: Any,
        *,
        topic: str | None = None,
        error_type: str | None = None,
        attempts: Sequence[Attempt] = (),
        max_retries: int = 0,
        intent: Any = None,
    ) -> None:
        target = topic or self.config.dlq_topic or self.routes.dlq_topic
        if target is None:
            target = dlq_topic_for(record.topic)
        letter = dead_letter(
            dlq_topic=target,
            record=record,
            failure_class=failure_class,
            error=error,
            error_type=error_type,
            reason=reason,
            now=self.clock.now(),
            redactor=self.redactor,
            correlation_id=correlation_id,
            attempts=attempts,
            max_retries=max_retries,
            intent=intent,
            source=self.config.name,
        )
        await self._publish(letter.topic, letter.value, letter.key, letter.headers)
        self.stats.dead_lettered += 1
        self.stats.dead_letters.append(letter)
        log.info(
            "dead-lettered %s/%s@%s to %s: %s",
            record.topic,
            record.partition,
            record.offset,
            target,
            failure_class,
        )

    async def _publish(
        self,
        topic: str,
        value: bytes,
        key: bytes | None,
        headers: Sequence[tuple[str, bytes]],
    ) -> None:
        """Publish until the bus confirms. While it cannot, wait with capped backoff: nothing
        behind this record is committed meanwhile. Gives up only when the host is stopping."""
        number = 0
        while True:
            number += 1
            try:
                await self.bus.publish(topic, value, key=key, headers=headers)
                return
            except EffectUnavailable as exc:
                if self._stopping:
                    raise _Stopping from exc
                policy = self.config.publish_retry
                delay = next_delay(
                    RetryPolicy(
                        max_attempts=number + 1,
                        initial_delay=policy.initial_delay,
                        max_delay=policy.max_delay,
                        multiplier=policy.multiplier,
                        jitter=policy.jitter,
                    ),
                    number,
                    self._jitter.random(),
                    exc.retry_after,
                )
                log.warning(
                    "publish to %s failed (attempt %d); retrying in %.2f s: %s",
                    topic,
                    number,
                    delay or 0.0,
                    self.redactor.redact_error(exc),
                )
                await asyncio.sleep(delay or 0.0)

    async def _retrying(self, what: str, call: Any, *args: Any) -> Any:
        number = 0
        while True:
            number += 1
            try:
                return await call(*args)
            except EffectUnavailable as exc:
                if self._stopping:
                    raise _Stopping from exc
                delay = next_delay(
                    RetryPolicy(max_attempts=number + 1, initial_delay=0.1, max_delay=5.0),
                    number,
                    self._jitter.random(),
                    exc.retry_after,
                )
                log.warning(
                    "%s failed (attempt %d): %s", what, number, self.redactor.redact_error(exc)
                )
                await asyncio.sleep(delay or 0.0)
