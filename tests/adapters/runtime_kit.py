"""A small workflow for testing the runtime host without the registration domain.

``ThingHandler`` answers ``onex.cmd.test.do-thing.v1`` commands: it asks for one effect
(``ledger.apply``) and announces ``onex.evt.test.thing-done.v1``. ``LedgerEffect`` applies intents
to a list — the ledger a test checks for lost and doubled effects — and fails when its fault
script says so.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from onex_adapters.clock import LoopClock
from onex_adapters.codec import encode_envelope
from onex_adapters.memory import FaultScript, InMemoryIdempotencyStore, InMemoryProjectionStore
from onex_adapters.memory_bus import Faults, InMemoryBroker, InMemoryBus
from onex_adapters.runtime import (
    EffectBinding,
    HandlerContext,
    Outcome,
    RuntimeConfig,
    RuntimeHost,
    SeededIds,
)
from onex_core.dispatch import Route, RouteTable
from onex_core.intents import Intent, intent_id_for
from onex_core.messages import Envelope
from onex_core.outputs import Output
from onex_core.ports import EffectResult, HandlerDescription
from onex_core.resilience import BreakerPolicy, EffectPolicy, RetryPolicy

COMMAND = "onex.cmd.test.do-thing.v1"
DONE = "onex.evt.test.thing-done.v1"
OUTCOME = "onex.evt.test.ledger-outcome.v1"
DLQ = "onex.dlq.test.things.v1"
START = datetime(2026, 11, 21, 5, 0, tzinfo=UTC)
NAMESPACE = uuid.UUID("00000000-0000-4000-8000-00000000abcd")


def command(entity: str, n: int, **payload: Any) -> Envelope:
    envelope_id = uuid.uuid5(NAMESPACE, f"{entity}/{n}")
    return Envelope(
        envelope_id=envelope_id,
        topic=COMMAND,
        event_type="test.do-thing",
        payload={"n": n, **payload},
        correlation_id=envelope_id,
        entity_id=entity,
        emitted_at=START,
    )


class ThingHandler:
    handler_id = "things"

    def __init__(self) -> None:
        self.seen: list[tuple[str, int]] = []

    async def handle(self, envelope: Envelope, context: HandlerContext) -> Outcome:
        self.seen.append((envelope.entity_id, envelope.payload["n"]))
        intent = Intent(
            intent_type="ledger.apply",
            target=f"ledger://things/{envelope.entity_id}",
            payload={"entity": envelope.entity_id, "n": envelope.payload["n"]},
            intent_id=intent_id_for(envelope.envelope_id, "ledger.apply", 0),
            correlation_id=envelope.correlation_id,
        )
        done = envelope.child(
            topic=DONE,
            event_type="test.thing-done",
            payload={"n": envelope.payload["n"]},
            index=0,
            emitted_at=context.now,
        )
        return Outcome.of(Output.orchestrator(events=(done,), intents=(intent,)))


@dataclass
class LedgerEffect:
    """Applies ``ledger.apply`` intents to ``applied``; fails as ``faults`` says."""

    faults: FaultScript = field(default_factory=lambda: FaultScript("ledger"))
    applied: list[tuple[str, int]] = field(default_factory=list)
    handler_type: str = "ledger"

    async def initialize(self, config: Mapping[str, Any]) -> None:
        return None

    async def shutdown(self, timeout: float = 30.0) -> None:
        return None

    async def execute(self, intent: Intent) -> EffectResult:
        self.faults.check()
        self.applied.append((intent.payload["entity"], intent.payload["n"]))
        return EffectResult(intent.intent_id, {"rows": 1})

    def describe(self) -> HandlerDescription:
        return HandlerDescription("ledger", ("ledger.apply",), ("ledger.storage",))


@dataclass
class World:
    broker: InMemoryBroker
    bus: InMemoryBus
    host: RuntimeHost
    handler: ThingHandler
    ledger: LedgerEffect
    projections: InMemoryProjectionStore
    idempotency: InMemoryIdempotencyStore

    async def send(self, *envelopes: Envelope) -> None:
        producer = InMemoryBus(self.broker)
        for envelope in envelopes:
            await producer.publish(
                envelope.topic, encode_envelope(envelope), key=envelope.entity_id.encode()
            )

    def dead_letters(self) -> list[Any]:
        import json

        return [json.loads(r.value) for r in self.broker.records(DLQ)]


def make_world(
    *,
    broker: InMemoryBroker | None = None,
    ledger: LedgerEffect | None = None,
    idempotency: InMemoryIdempotencyStore | None = None,
    faults: Faults | None = None,
    policy: EffectPolicy | None = None,
    config: RuntimeConfig | None = None,
    outcome_topic: str | None = OUTCOME,
) -> World:
    broker = broker or InMemoryBroker(partitions=4)
    bus = InMemoryBus(broker, group="things", faults=faults)
    ledger = ledger or LedgerEffect()
    idempotency = idempotency or InMemoryIdempotencyStore()
    projections = InMemoryProjectionStore()
    handler = ThingHandler()
    policy = policy or EffectPolicy(
        retry=RetryPolicy(max_attempts=3, initial_delay=1.0, max_delay=10.0, jitter=0.25),
        breaker=BreakerPolicy(failure_threshold=5, reset_timeout=60.0),
        timeout=5.0,
    )
    host = RuntimeHost(
        bus=bus,
        routes=RouteTable((Route.to("things", COMMAND),), dlq_topic=DLQ),
        handlers={"things": handler},
        effects=[EffectBinding("ledger.apply", ledger, policy, outcome_topic)],
        projections=projections,
        idempotency=idempotency,
        clock=LoopClock(START),
        ids=SeededIds(1),
        config=config or RuntimeConfig(name="things"),
    )
    return World(broker, bus, host, handler, ledger, projections, idempotency)
