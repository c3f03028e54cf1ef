"""``onex demo registration``: twenty nodes register on the embedded default, in virtual time.

Everything runs in one process on the in-memory bus, stores and service registry, in virtual
time: a few minutes of simulated time — heartbeats, deadlines, backoffs — pass in well under a
second, and with seeded ids and jitter every run prints the same timeline.

With ``ONEX_POSTGRES_DSN`` set, projections, idempotency marks and the registration table live
in PostgreSQL instead (:func:`~onex_adapters.registration.app.open_backends`), in the schema
:data:`DEMO_SCHEMA`, which the demo migrates and empties before it starts — it never touches
another schema. The run keeps the same simulated timeline and prints the same report.

*Virtual time with real I/O.* The demo runs on :class:`~onex_adapters.registration.demo_loop.
DemoLoop`, which moves virtual time only while nothing real — a query on the wire, a thread-pool
job — is pending: a round trip to PostgreSQL takes no simulated time, and the PostgreSQL run
prints the embedded run's timeline. (A real-time run on a compressed timeline was the
alternative; its figures would depend on the machine's speed. This way the 200 simulated
seconds take a few real ones against a local server.)

*On Kafka.* With ``ONEX_KAFKA_BOOTSTRAP`` set (and the other ``ONEX_KAFKA_*`` variables of
:mod:`onex_adapters.kafka.wiring`), the bus is a real broker: the demo creates the topics the
contracts name, and the host, the monitor and the fleet are consumer groups
``<ONEX_KAFKA_GROUP, default onex>.registration``, ``….monitor`` and ``….fleet-out``. A record
in flight between two threads and a broker is invisible to the demo loop — it would jump ahead
while records travel — so this run uses an
:class:`~onex_adapters.kafka.wiring.AcceleratedLoop`: real time, ten times faster (about 25
seconds), with the clock standing still while the groups join. The timeline then carries the
broker's latency and varies a little between runs; the final states are the embedded run's.
It combines with ``ONEX_POSTGRES_DSN``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any, Final, TextIO

from onex_adapters.clock import LoopClock
from onex_adapters.codec import EnvelopeCodec
from onex_adapters.memory import InMemoryServiceRegistry
from onex_adapters.memory_bus import InMemoryBroker, InMemoryBus
from onex_adapters.registration.app import (
    Backends,
    Registration,
    build_registration,
    open_backends,
)
from onex_adapters.registration.demo_loop import run_on_demo_loop
from onex_adapters.registration.effects import InMemoryRegistrationTable
from onex_adapters.runtime import RuntimeConfig, SeededIds
from onex_contracts import REGISTRATION_CONTRACTS
from onex_core.messages import Envelope
from onex_core.ports import EventBus
from onex_core.registration import Handled, RegistrationConfig
from onex_core.registration.model import (
    ACCEPTED,
    ACK_TIMED_OUT,
    ACKED,
    BECAME_ACTIVE,
    DLQ,
    FAILED,
    HEARTBEAT,
    INITIATED,
    INTROSPECTION,
    LIVENESS_EXPIRED,
    NODE_TYPES,
    REJECTED,
    SERVICE_OUTCOME,
    STORAGE_OUTCOME,
)
from onex_core.topics import parse_topic

if TYPE_CHECKING:
    from onex_adapters.kafka.wiring import KafkaBuses
    from onex_adapters.postgres import PostgresSettings

__all__ = [
    "DEMO_SCHEMA",
    "SCENARIO",
    "DemoResult",
    "Scenario",
    "main",
    "postgres_from_env",
    "run_demo",
]

DEMO_SCHEMA: Final = "onex_demo"
"""The schema the demo keeps its PostgreSQL tables in; emptied at the start of every run."""
START = datetime(2026, 1, 1, tzinfo=UTC)
_NAMESPACE = uuid.UUID("6f6e6578-6465-4d6f-8000-000000000001")


@dataclass(frozen=True, slots=True)
class Scenario:
    """What the simulated fleet does. Times are seconds of virtual time from the start."""

    nodes: int = 20
    seed: int = 7
    duration: float = 200.0
    early: str = "node-01"
    early_at: float = 0.5
    registry_failures: int = 4
    join_from: float = 10.0
    join_every: float = 2.0
    ack_after: float = 1.0
    silent: str = "node-13"
    quiet: str = "node-17"
    quiet_stops_at: float = 120.0
    rejoin_after: float = 5.0


SCENARIO = Scenario()
"""The scenario ``onex demo registration`` runs."""


@dataclass(frozen=True, slots=True)
class Line:
    """One timeline entry; ``rank`` orders entries of the same instant by cause and effect."""

    at: datetime
    rank: int
    order: int
    node: str
    text: str

    def render(self) -> str:
        return f"{_clock(self.at)} {self.node:<8} {self.text}"


@dataclass(frozen=True, slots=True)
class Row:
    """One node in the final table."""

    node: str
    node_type: str
    state: str
    attempt: int
    heartbeats: int
    registry: str
    stored: str


@dataclass(frozen=True, slots=True)
class DemoResult:
    """What a demo run produced."""

    timeline: tuple[Line, ...]
    table: tuple[Row, ...]
    summary: tuple[str, ...]


# Entries of one instant are printed in the order the workflow produced them.
_RANKS = {
    INITIATED: 0,
    REJECTED: 0,
    SERVICE_OUTCOME: 1,
    STORAGE_OUTCOME: 1,
    DLQ: 2,
    "partial": 3,
    ACK_TIMED_OUT: 4,
    ACCEPTED: 5,
    BECAME_ACTIVE: 7,
    FAILED: 8,
    LIVENESS_EXPIRED: 8,
}
_NODE_RANK = 6


def _clock(at: datetime, *, millis: bool = True) -> str:
    seconds = (at - START).total_seconds()
    whole = int(seconds)
    text = f"{whole // 3600:02d}:{whole % 3600 // 60:02d}:{whole % 60:02d}"
    if millis:
        text += f".{round((seconds - whole) * 1000):03d}"
    return text


def _clock_of(text: object) -> str:
    if not isinstance(text, str):
        return "-"
    return _clock(datetime.fromisoformat(text), millis=False)


def _node_type(index: int) -> str:
    return NODE_TYPES[(index - 1) % len(NODE_TYPES)]


@dataclass
class _Fleet:
    """The simulated nodes and the monitor, on buses of the runtime's broker (``make_bus``
    takes ``group=`` and ``member_id=``, like :class:`InMemoryBus` after its broker)."""

    scenario: Scenario
    make_bus: Callable[..., EventBus]
    clock: LoopClock
    codec: EnvelopeCodec = field(default_factory=EnvelopeCodec)
    lines: list[Line] = field(default_factory=list)
    sent: int = 0
    heartbeating: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    stopped: set[str] = field(default_factory=set)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.out = self.make_bus(group="fleet-out", member_id="fleet-out")

    def note(self, at: datetime, node: str, text: str, rank: int = _NODE_RANK) -> None:
        self.lines.append(Line(at, rank, len(self.lines), node, text))

    def observe(self, envelope: Envelope, handled: Handled) -> None:
        """Told by the orchestrator about every decision; notes the partial ones."""
        decision = handled.decision
        if handled.projection is not None and decision.note.startswith("partial"):
            at = handled.projection.updated_at or self.clock.now()
            self.note(at, envelope.entity_id, decision.note, _RANKS["partial"])

    def spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def send(self, topic: str, node: str, payload: dict[str, Any]) -> None:
        self.sent += 1
        message_id = uuid.uuid5(_NAMESPACE, f"{node}/{topic}/{self.sent}")
        envelope = Envelope(
            envelope_id=message_id,
            topic=topic,
            event_type=parse_topic(topic).event_type,
            payload=payload,
            correlation_id=message_id,
            entity_id=node,
            emitted_at=self.clock.now(),
        )
        await self.out.publish(topic, self.codec.encode(envelope), key=node.encode())

    async def introspect(self, index: int, delay: float) -> None:
        await asyncio.sleep(delay)
        node = f"node-{index:02d}"
        await self.send(
            INTROSPECTION,
            node,
            {
                "node_id": node,
                "node_type": _node_type(index),
                "node_version": "1.4.2",
                "endpoints": {
                    "api": f"http://10.0.0.{index}:8080",
                    "health": f"http://10.0.0.{index}:8080/health",
                },
                "capabilities": [f"{_node_type(index)}.demo"],
            },
        )

    async def ack(self, node: str) -> None:
        await asyncio.sleep(self.scenario.ack_after)
        await self.send(ACKED, node, {"node_id": node, "timestamp": self.clock.now().isoformat()})

    async def heartbeat(self, node: str, interval: float) -> None:
        beats = 0
        while True:
            await asyncio.sleep(interval)
            now = self.clock.now()
            elapsed = (now - START).total_seconds()
            stops = node == self.scenario.quiet and elapsed >= self.scenario.quiet_stops_at
            if stops and node not in self.stopped:
                self.stopped.add(node)
                self.note(now, node, "(node) stops heartbeating")
                return
            beats += 1
            await self.send(
                HEARTBEAT,
                node,
                {"node_id": node, "uptime_seconds": beats * interval, "timestamp": now.isoformat()},
            )

    async def react(self, envelope: Envelope, interval: float) -> None:
        """What a node does when it hears about itself."""
        node = envelope.entity_id
        if envelope.topic == ACCEPTED:
            if node == self.scenario.silent:
                if envelope.payload.get("ack_request") == 1:
                    self.note(envelope.emitted_at, node, "(node) never answers")
                return
            self.spawn(self.ack(node))
        elif envelope.topic == BECAME_ACTIVE:
            previous = self.heartbeating.get(node)
            if previous is None or previous.done():
                self.heartbeating[node] = asyncio.ensure_future(self.heartbeat(node, interval))
        elif envelope.topic == LIVENESS_EXPIRED and node == self.scenario.quiet:
            index = int(node.rsplit("-", 1)[1])
            self.note(
                envelope.emitted_at + timedelta(seconds=self.scenario.rejoin_after),
                node,
                "(node) comes back and introspects again",
                rank=-1,  # before the workflow's answer at the same instant
            )
            self.spawn(self.introspect(index, self.scenario.rejoin_after))

    def describe(self, envelope: Envelope) -> str | None:
        """The timeline text of one published event, or None to leave it out."""
        p = envelope.payload
        topic = envelope.topic
        if topic == INITIATED:
            return f"introspected ({p.get('node_type')}); registration attempt {p.get('attempt')}"
        if topic == ACCEPTED:
            deadline = _clock_of(p.get("ack_deadline"))
            if p.get("ack_request") == 1:
                return f"accepted (ack by {deadline})"
            return f"ACK requested again (#{p.get('ack_request')}, ack by {deadline})"
        if topic == REJECTED:
            return f"rejected: {p.get('rejection_reason')}"
        if topic == BECAME_ACTIVE:
            return f"ACK received: active (live until {_clock_of(p.get('liveness_deadline'))})"
        if topic == ACK_TIMED_OUT:
            return f"ACK timed out (deadline {_clock_of(p.get('deadline_at'))})"
        if topic == FAILED:
            return f"FAILED: {p.get('reason')}"
        if topic == LIVENESS_EXPIRED:
            last = _clock_of(p.get("last_heartbeat_at"))
            return f"liveness expired (last heartbeat {last})"
        if topic in (SERVICE_OUTCOME, STORAGE_OUTCOME) and p.get("ok") is False:
            backend = "service registry" if topic == SERVICE_OUTCOME else "registration store"
            return (
                f"{backend}: {p.get('intent_type')} failed after {p.get('attempts')} attempts "
                f"({p.get('error_type')})"
            )
        return None

    async def monitor(self, bus: EventBus, interval: float) -> None:
        seen: set[uuid.UUID] = set()
        while True:
            records = await bus.poll(100, 1.0)
            for record in records:
                if record.topic == DLQ:
                    letter = json.loads(record.value)
                    intent = letter.get("intent") or {}
                    node = letter["original_message"].get("key") or "?"
                    self.note(
                        datetime.fromisoformat(letter["failure_timestamp"]),
                        node,
                        f"dead-lettered {intent.get('intent_type')} with its "
                        f"{len(letter.get('attempts', []))} attempts ({letter['failure_class']})",
                        _RANKS[DLQ],
                    )
                    continue
                envelope = self.codec.decode(record.value, arrived_on=record.topic)
                if envelope.envelope_id in seen:
                    continue
                seen.add(envelope.envelope_id)
                text = self.describe(envelope)
                if text is not None:
                    rank = _RANKS.get(envelope.topic, _NODE_RANK)
                    self.note(envelope.emitted_at, envelope.entity_id, text, rank)
                await self.react(envelope, interval)
            if records:
                await bus.commit(records)


async def run_demo(
    scenario: Scenario = SCENARIO,
    *,
    postgres: PostgresSettings | None = None,
    buses: KafkaBuses | None = None,
) -> DemoResult:
    """Run the scenario (call it on a :class:`DemoLoop`, see :func:`run_on_demo_loop`).

    Args:
        scenario: what the fleet does.
        postgres: keep projections, idempotency marks and registrations in PostgreSQL, in the
            settings' schema — which is migrated and then *emptied* first. None: in memory.

    Raises:
        PostgresUnavailable, PostgresRejected, MigrationConflict: PostgreSQL could not be used.
    """
    clock = LoopClock(START)
    clock.now()  # virtual time starts now
    backends = await open_backends({}, clock=clock, settings=postgres, migrate=True)
    try:
        await _empty(backends)
        return await _run(scenario, clock, backends, buses)
    finally:
        await backends.close()


async def _empty(backends: Backends) -> None:
    """Empty the demo's PostgreSQL tables: every run starts from nothing."""
    if backends.pool is None:
        return
    from onex_adapters.postgres import translating

    with translating("demo.reset"):
        async with backends.pool.connection() as conn:
            await conn.execute(
                "TRUNCATE onex_projections, onex_projection_deadlines, onex_idempotency, "
                "registration_projections"
            )


async def _run(
    scenario: Scenario, clock: LoopClock, backends: Backends, buses: KafkaBuses | None
) -> DemoResult:
    broker = InMemoryBroker(partitions=4)
    make_bus = partial(InMemoryBus, broker) if buses is None else buses.bus
    registry = InMemoryServiceRegistry()
    config = RegistrationConfig()
    fleet = _Fleet(scenario, make_bus, clock)
    registration = build_registration(
        make_bus(group="registration", member_id="registration"),
        backends.projections,
        backends.idempotency,
        registry,
        backends.storage,
        clock,
        SeededIds(scenario.seed),
        config,
        runtime=RuntimeConfig(name="registration", poll_timeout=0.25),
        seed=scenario.seed,
        observe=fleet.observe,
    )
    watched = [INITIATED, ACCEPTED, REJECTED, BECAME_ACTIVE, ACK_TIMED_OUT, FAILED]
    watched += [LIVENESS_EXPIRED, SERVICE_OUTCOME, STORAGE_OUTCOME, DLQ]
    for topic in watched:
        broker.create_topic(topic)
    monitor_bus = make_bus(group="monitor", member_id="monitor")
    await monitor_bus.subscribe(watched)

    registry.faults.fail_next(scenario.registry_failures)
    host = registration.host
    await host.start()
    background = [
        host.start_background(),
        asyncio.ensure_future(registration.ticks.run()),
        asyncio.ensure_future(fleet.monitor(monitor_bus, config.heartbeat_interval)),
    ]
    if buses is not None:  # group joins take real time; the demo's clock waits for them
        await buses.ready(host.bus, monitor_bus, fleet.out)
    fleet.spawn(fleet.introspect(1, scenario.early_at))
    for index in range(2, scenario.nodes + 1):
        fleet.spawn(fleet.introspect(index, scenario.join_from + (index - 2) * scenario.join_every))

    await asyncio.sleep(scenario.duration)

    for task in [*fleet.heartbeating.values(), *fleet.tasks, *background[1:]]:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    await host.stop()
    await monitor_bus.close()
    await fleet.out.close()
    return DemoResult(
        tuple(sorted(fleet.lines, key=lambda line: (line.at, line.rank, line.order))),
        await _table(registration, backends, registry, scenario),
        _summary(registration, registry, backends, broker, scenario),
    )


async def _stored_state(storage: object, node: str) -> str:
    """The state the registration table holds for ``node``, or ``-``."""
    if isinstance(storage, InMemoryRegistrationTable):
        row = storage.rows.get(node)
        return row.state if row is not None else "-"
    from onex_adapters.postgres.effects import PostgresRegistrationStorageEffect

    assert isinstance(storage, PostgresRegistrationStorageEffect)
    stored = await storage.storage.get(node)
    return stored.state if stored is not None else "-"


def _write_counts(storage: object) -> tuple[int, int]:
    """(registrations stored, storage updates) that changed a row."""
    upserts, updates = getattr(storage, "upserts", 0), getattr(storage, "updates", 0)
    return int(upserts), int(updates)


async def _table(
    registration: Registration,
    backends: Backends,
    registry: InMemoryServiceRegistry,
    scenario: Scenario,
) -> tuple[Row, ...]:
    rows = []
    for index in range(1, scenario.nodes + 1):
        node = f"node-{index:02d}"
        node_type = _node_type(index)
        projection = await backends.projections.get(node, registration.config.domain)
        service = registry.services.get(f"onex-{node_type}-{node}")
        rows.append(
            Row(
                node=node,
                node_type=node_type,
                state=projection.state if projection is not None else "-",
                attempt=int(projection.data.get("attempt", 0)) + 1 if projection else 0,
                heartbeats=int(projection.data.get("heartbeats", 0)) if projection else 0,
                registry=service.check_status if service is not None else "-",
                stored=await _stored_state(backends.storage, node),
            )
        )
    return tuple(rows)


def _summary(
    registration: Registration,
    registry: InMemoryServiceRegistry,
    backends: Backends,
    broker: InMemoryBroker,
    scenario: Scenario,
) -> tuple[str, ...]:
    stats = registration.host.stats
    upserts, updates = _write_counts(backends.storage)
    where = "in memory"
    if backends.pool is not None:
        where = f"in PostgreSQL ({backends.description}, schema {DEMO_SCHEMA})"
    return (
        f"{scenario.nodes} nodes, {scenario.duration:g} s of virtual time, "
        f"{stats.dead_lettered} dead letter(s)",
        f"service registrations {registry.registrations}, stored registrations "
        f"{upserts}, storage updates {updates}",
        f"effects done {stats.effects_done}, skipped {stats.effects_skipped}, "
        f"failed {stats.effects_failed}; events published {stats.events_published}",
        f"projections, idempotency marks and registrations {where}",
    )


def render(result: DemoResult) -> str:
    """The demo's printed report: the timeline, the final table and the summary."""
    out = ["Timeline (virtual time)", ""]
    out += [line.render() for line in result.timeline]
    out += ["", "Final state", ""]
    header = ("NODE", "TYPE", "STATE", "ATTEMPT", "HEARTBEATS", "REGISTRY CHECK", "STORED")
    cells = [header] + [
        (r.node, r.node_type, r.state, str(r.attempt), str(r.heartbeats), r.registry, r.stored)
        for r in result.table
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    for row in cells:
        cells_text = "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True))
        out.append(cells_text.rstrip())
    out += ["", *result.summary]
    return "\n".join(out) + "\n"


def postgres_from_env(environ: Mapping[str, str]) -> PostgresSettings | None:
    """The demo's PostgreSQL settings — ``ONEX_POSTGRES_DSN`` in :data:`DEMO_SCHEMA` — or
    None when the variable is unset.

    Raises:
        UsageError: the DSN does not parse (it is never echoed).
    """
    dsn = environ.get("ONEX_POSTGRES_DSN", "")
    if not dsn:
        return None
    from onex_adapters.postgres import PostgresSettings

    return PostgresSettings.from_dsn(dsn, schema=DEMO_SCHEMA)


def main(
    argv: Sequence[str] | None = None,
    out: TextIO | None = None,
    environ: Mapping[str, str] | None = None,
) -> int:
    """Run the demo and print its report. Returns the exit code (0).

    With ``ONEX_POSTGRES_DSN`` in ``environ`` (default: the process environment), state lives
    in PostgreSQL (see the module docstring).
    """
    parser = argparse.ArgumentParser(
        prog="onex demo registration",
        description="Run the node-registration workflow in virtual time, on the embedded "
        "default or, with ONEX_POSTGRES_DSN set, with its state in PostgreSQL (schema "
        f"{DEMO_SCHEMA}, emptied first).",
    )
    parser.parse_args(argv)
    env = os.environ if environ is None else environ
    postgres = postgres_from_env(env)
    if env.get("ONEX_KAFKA_BOOTSTRAP"):  # a real broker needs real time: ten times faster
        from onex_adapters.kafka.wiring import INTERACTIVE, KafkaBuses, run_accelerated

        buses = KafkaBuses.from_env(env, consumer_defaults=INTERACTIVE)
        assert buses is not None
        asyncio.run(buses.provision_contracts(REGISTRATION_CONTRACTS))
        result = run_accelerated(run_demo(postgres=postgres, buses=buses))
    else:
        result = run_on_demo_loop(run_demo(postgres=postgres))
    (out or sys.stdout).write(render(result))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
