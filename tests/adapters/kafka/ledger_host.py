"""A runtime host on Kafka whose one effect writes a ledger in PostgreSQL — run as a process.

The Kafka runtime tests (``test_runtime_kafka.py``) start this module with ``sys.executable
-m tests.adapters.kafka.ledger_host``, SIGKILL it, SIGTERM it and start it again, then compare
what the ledger says was applied with what the input topic holds.

The workflow: every ``ledger-entry`` command asks for one ``ledger.apply`` intent. The effect
(:class:`PostgresLedger`) inserts one row per application into ``ledger`` — a table with *no*
unique constraint, so a double application would be visible — and claims the intent id in the
shared idempotency table (``onex_idempotency``) in the same transaction, the way an effect that
writes PostgreSQL is meant to (:mod:`onex_adapters.postgres.idempotency`). The runtime's own
check (``seen`` before executing) uses the same table, through the real
:class:`~onex_adapters.postgres.PostgresIdempotencyStore`. So "each intent once in ``ledger``"
is the strict, effective exactly-once check, and a row in ``ledger_guard`` — the effect was
called for an intent already done — means the runtime's check failed to see a finished effect.

Configuration comes in one environment variable, ``ONEX_LEDGER_HOST`` (JSON of
:class:`HostConfig`; it carries the database connection string, so it is not put on the
command line). The process reports through a status file (JSON, replaced atomically): its
assignment, how many effects it applied, whether it hangs, and its runtime counters once
stopped. SIGTERM drains and stops it (exit 0).

**Crash point.** With ``hang_after=K``, once the process has applied at least K effects, two of
them in the batch in hand, the next effect inserts its ledger row and then waits forever
*inside its transaction*: the batch is applied in part and uncommitted, and one effect is
written but not committed. The test kills the process there.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from onex_adapters.clock import SystemClock
from onex_adapters.kafka import KafkaBus, KafkaSettings
from onex_adapters.memory import InMemoryProjectionStore
from onex_adapters.postgres import PostgresIdempotencyStore, PostgresSettings, open_pool
from onex_adapters.runtime import (
    EffectBinding,
    HandlerContext,
    Outcome,
    RuntimeConfig,
    RuntimeHost,
)
from onex_core.dispatch import Route, RouteTable
from onex_core.intents import Intent, intent_id_for
from onex_core.messages import Envelope
from onex_core.outputs import Output
from onex_core.ports import EffectResult, HandlerDescription, Record
from onex_core.resilience import EffectPolicy, RetryPolicy

__all__ = [
    "CONSUMER_SETTINGS",
    "ENV",
    "INTENT_TYPE",
    "LEDGER_SCHEMA",
    "HostConfig",
    "LedgerHandler",
    "PostgresLedger",
    "main",
]

ENV = "ONEX_LEDGER_HOST"
INTENT_TYPE = "ledger.apply"

CONSUMER_SETTINGS: dict[str, Any] = {
    "session.timeout.ms": 6000,
    "heartbeat.interval.ms": 1000,
    "max.poll.interval.ms": 10000,
    "fetch.wait.max.ms": 10,
    # The default (1 s) puts a random one-second stall into short runs (see the Kafka bench).
    "fetch.queue.backoff.ms": 10,
}

LEDGER_SCHEMA = """
CREATE TABLE ledger (
    intent_id  text NOT NULL,
    entity     text NOT NULL,
    n          integer NOT NULL,
    host       text NOT NULL,
    pid        integer NOT NULL,
    partition  integer NOT NULL,
    "offset"   bigint NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE TABLE ledger_guard (
    intent_id text NOT NULL,
    host      text NOT NULL
);
"""
"""The ledger tables (no unique constraint: a double application must be visible)."""

_INSERT = (
    'INSERT INTO ledger (intent_id, entity, n, host, pid, partition, "offset") '
    "VALUES (%s, %s, %s, %s, %s, %s, %s)"
)
_GUARD = "INSERT INTO ledger_guard (intent_id, host) VALUES (%s, %s)"

# Retries for a transient PostgreSQL failure; the timeout is long so the crash point's hang is
# never cut short by it.
POLICY = EffectPolicy(
    retry=RetryPolicy(max_attempts=5, initial_delay=0.05, max_delay=0.5), timeout=60.0
)


@dataclass(frozen=True, slots=True)
class HostConfig:
    """One ledger host process."""

    bootstrap: str
    group: str
    topic: str
    dlq: str
    conninfo: str
    schema: str
    name: str
    status: str
    batch: int = 40
    concurrency: int = 4
    effect_delay: float = 0.0
    hang_after: int | None = None

    def environment(self) -> dict[str, str]:
        """The environment variable that hands this configuration to the process."""
        return {ENV: json.dumps(asdict(self))}

    @classmethod
    def from_environment(cls, env: Mapping[str, str]) -> HostConfig:
        return cls(**json.loads(env[ENV]))


class LedgerHandler:
    """``ledger-entry`` command → one ``ledger.apply`` intent, which carries where the command
    was read (so the ledger can tell which host applied which offset)."""

    handler_id = "ledger"

    async def handle(self, envelope: Envelope, context: HandlerContext) -> Outcome:
        record = context.record
        intent = Intent(
            intent_type=INTENT_TYPE,
            target=f"ledger://entries/{envelope.entity_id}",
            payload={
                "entity": envelope.entity_id,
                "n": envelope.payload["n"],
                "partition": record.partition,
                "offset": record.offset,
            },
            intent_id=intent_id_for(envelope.envelope_id, INTENT_TYPE, 0),
            correlation_id=envelope.correlation_id,
        )
        return Outcome.of(Output.orchestrator(intents=(intent,)))


@dataclass
class Progress:
    """What the status file reports."""

    name: str
    applied: int = 0
    in_batch: int = 0
    hanging: bool = False
    stopped: bool = False
    assignment: list[tuple[str, int]] = field(default_factory=list)
    stats: dict[str, int] = field(default_factory=dict)

    def document(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "pid": os.getpid(),
            "applied": self.applied,
            "hanging": self.hanging,
            "stopped": self.stopped,
            "assignment": [list(p) for p in self.assignment],
            "stats": self.stats,
        }


class PostgresLedger:
    """The ``ledger.apply`` effect: one ledger row and the intent's claim, in one transaction."""

    handler_type = "ledger"

    def __init__(
        self,
        store: PostgresIdempotencyStore,
        progress: Progress,
        *,
        delay: float = 0.0,
        hang_after: int | None = None,
    ) -> None:
        self.store = store
        self.progress = progress
        self.delay = delay
        self.hang_after = hang_after

    async def initialize(self, config: Mapping[str, Any]) -> None:
        return None

    async def shutdown(self, timeout: float = 30.0) -> None:
        return None

    def describe(self) -> HandlerDescription:
        return HandlerDescription("ledger", (INTENT_TYPE,), ("ledger.storage",))

    async def execute(self, intent: Intent) -> EffectResult:
        if self.delay:
            await asyncio.sleep(self.delay)  # a slow backend
        key = str(intent.intent_id)
        name = self.progress.name
        payload = intent.payload
        async with self.store.transaction() as conn:
            if not await self.store.claim(intent.intent_type, key, conn=conn):
                await conn.execute(_GUARD, [key, name])
                return EffectResult(intent.intent_id, {"rows": 0})
            await conn.execute(
                _INSERT,
                [
                    key,
                    payload["entity"],
                    payload["n"],
                    name,
                    os.getpid(),
                    payload["partition"],
                    payload["offset"],
                ],
            )
            progress = self.progress
            if (
                self.hang_after is not None
                and progress.applied >= self.hang_after
                and progress.in_batch >= 2
            ):
                progress.hanging = True
                await asyncio.Event().wait()  # the crash point: killed here, uncommitted
        self.progress.applied += 1
        self.progress.in_batch += 1
        return EffectResult(intent.intent_id, {"rows": 1})


class _CountingBus(KafkaBus):
    """A KafkaBus that tells the progress when a new batch starts."""

    def __init__(self, settings: KafkaSettings, progress: Progress) -> None:
        super().__init__(settings)
        self._progress = progress

    async def poll(self, max_records: int, timeout: float) -> Sequence[Record]:
        records = await super().poll(max_records, timeout)
        if records:
            self._progress.in_batch = 0
        return records


def _write_status(path: Path, progress: Progress) -> None:
    scratch = path.with_suffix(".tmp")
    scratch.write_text(json.dumps(progress.document()))
    os.replace(scratch, path)


async def _report(path: Path, progress: Progress, bus: KafkaBus) -> None:
    last: dict[str, Any] | None = None
    while True:
        progress.assignment = sorted(bus.assignment)
        document = progress.document()
        if document != last:
            _write_status(path, progress)
            last = document
        await asyncio.sleep(0.02)


async def run(config: HostConfig) -> int:
    """Run one ledger host until SIGTERM; returns the exit code."""
    progress = Progress(config.name)
    status = Path(config.status)
    settings = KafkaSettings(
        config.bootstrap,
        group_id=config.group,
        client_id=config.name,
        consumer_extra=CONSUMER_SETTINGS,
    )
    database = PostgresSettings.from_dsn(
        config.conninfo, schema=config.schema, min_size=1, max_size=config.concurrency + 2
    )
    pool = await open_pool(database)
    store = PostgresIdempotencyStore(pool)
    bus = _CountingBus(settings, progress)
    effect = PostgresLedger(
        store, progress, delay=config.effect_delay, hang_after=config.hang_after
    )
    host = RuntimeHost(
        bus=bus,
        routes=RouteTable((Route.to("ledger", config.topic),), dlq_topic=config.dlq),
        handlers={"ledger": LedgerHandler()},
        effects=[EffectBinding(INTENT_TYPE, effect, POLICY)],
        projections=InMemoryProjectionStore(),
        idempotency=store,
        clock=SystemClock(),
        config=RuntimeConfig(
            name=config.name,
            max_poll_records=config.batch,
            concurrency=config.concurrency,
            poll_timeout=0.2,
            drain_timeout=10.0,
        ),
    )
    stopping = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stopping.set)
    running = host.start_background()
    reporter = asyncio.ensure_future(_report(status, progress, bus))
    stop_wait = asyncio.ensure_future(stopping.wait())
    await asyncio.wait({running, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
    code = 0
    if running.done() and running.exception() is not None:
        logging.getLogger("ledger").error("the host failed: %r", running.exception())
        code = 1
    await host.stop()
    reporter.cancel()
    stop_wait.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await reporter
    await pool.close()
    stats = host.stats
    progress.stats = {
        "polled": stats.polled,
        "effects_done": stats.effects_done,
        "effects_skipped": stats.effects_skipped,
        "effects_failed": stats.effects_failed,
        "dead_lettered": stats.dead_lettered,
        "batches_committed": stats.batches_committed,
        "commit_failures": stats.commit_failures,
    }
    progress.stopped = True
    progress.assignment = []
    _write_status(status, progress)
    return code


def main() -> int:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    return asyncio.run(run(HostConfig.from_environment(os.environ)))


if __name__ == "__main__":
    sys.exit(main())
