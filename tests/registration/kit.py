"""A registration world on the embedded default, for tests on virtual time.

``make_world()`` (inside a coroutine run by ``run_virtual``) wires the workflow with
``build_registration`` on an in-memory broker, stores, registry and table. Nodes are simulated
by sending their messages; ``settle()`` lets the host handle everything pending, and
``run_to(t)`` moves virtual time to ``t`` seconds after the start, publishing a runtime tick at
every whole second on the way, as the tick source would.
"""

from __future__ import annotations

import asyncio
import json
import math
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from onex_adapters.clock import LoopClock
from onex_adapters.codec import EnvelopeCodec
from onex_adapters.memory import (
    InMemoryIdempotencyStore,
    InMemoryProjectionStore,
    InMemoryServiceRegistry,
)
from onex_adapters.memory_bus import Faults, InMemoryBroker, InMemoryBus
from onex_adapters.registration import (
    InMemoryRegistrationTable,
    Registration,
    build_registration,
)
from onex_adapters.runtime import RuntimeConfig, SeededIds
from onex_contracts import REGISTRATION_CONTRACTS, compile_machine, load
from onex_contracts.schema import NodeContract
from onex_core.fsm import Machine
from onex_core.messages import Envelope
from onex_core.outputs import Projection
from onex_core.registration import RegistrationConfig
from onex_core.registration.model import ACKED, DLQ, HEARTBEAT, INTROSPECTION
from onex_core.topics import parse_topic

START = datetime(2026, 1, 1, tzinfo=UTC)
NAMESPACE = uuid.UUID("00000000-0000-4000-8000-0000000e0e0e")
CODEC = EnvelopeCodec()


def machine() -> Machine:
    contract = load(REGISTRATION_CONTRACTS / "node_registration_reducer" / "contract.yaml")
    assert isinstance(contract, NodeContract)
    return compile_machine(contract)


def at(seconds: float) -> datetime:
    return START + timedelta(seconds=seconds)


def message(topic: str, node: str, payload: dict[str, Any], n: int, when: datetime) -> Envelope:
    message_id = uuid.uuid5(NAMESPACE, f"{node}/{topic}/{n}")
    return Envelope(
        envelope_id=message_id,
        topic=topic,
        event_type=parse_topic(topic).event_type,
        payload=payload,
        correlation_id=message_id,
        entity_id=node,
        emitted_at=when,
    )


def introspection_payload(node: str, node_type: str = "effect", **extra: Any) -> dict[str, Any]:
    return {
        "node_id": node,
        "node_type": node_type,
        "node_version": "1.0.0",
        "endpoints": {"api": "http://10.1.2.3:8080"},
        "capabilities": ["demo"],
        **extra,
    }


@dataclass
class World:
    broker: InMemoryBroker
    registration: Registration
    projections: InMemoryProjectionStore
    idempotency: InMemoryIdempotencyStore
    registry: InMemoryServiceRegistry
    table: InMemoryRegistrationTable
    clock: LoopClock
    sent: int = 0
    producer: InMemoryBus = field(init=False)

    def __post_init__(self) -> None:
        self.producer = InMemoryBus(self.broker, group="nodes")

    @property
    def host(self) -> Any:
        return self.registration.host

    def seconds(self) -> float:
        return (self.clock.now() - START).total_seconds()

    async def send(self, topic: str, node: str, payload: dict[str, Any]) -> Envelope:
        self.sent += 1
        envelope = message(topic, node, payload, self.sent, self.clock.now())
        await self.producer.publish(topic, CODEC.encode(envelope), key=node.encode())
        return envelope

    async def resend(self, envelope: Envelope) -> None:
        await self.producer.publish(
            envelope.topic, CODEC.encode(envelope), key=envelope.entity_id.encode()
        )

    async def introspect(self, node: str, node_type: str = "effect", **extra: Any) -> Envelope:
        return await self.send(INTROSPECTION, node, introspection_payload(node, node_type, **extra))

    async def ack(self, node: str) -> Envelope:
        return await self.send(ACKED, node, {"node_id": node})

    async def heartbeat(self, node: str, timestamp: datetime | None = None) -> Envelope:
        stamp = (timestamp or self.clock.now()).isoformat()
        return await self.send(HEARTBEAT, node, {"node_id": node, "timestamp": stamp})

    async def settle(self) -> int:
        return int(await self.host.run_until_idle())

    async def run_to(self, seconds: float) -> None:
        """Advance virtual time to ``seconds`` after the start, ticking at each whole second."""
        while True:
            next_tick = math.floor(self.seconds() + 1e-9) + 1
            if next_tick > seconds + 1e-9:
                break
            await asyncio.sleep(max(0.0, next_tick - self.seconds()))
            await self.registration.ticks.tick()
            await self.settle()
        remaining = seconds - self.seconds()
        if remaining > 0:
            await asyncio.sleep(remaining)

    def projection(self, node: str) -> Projection | None:
        for projection in self.projections.all(self.registration.config.domain):
            if projection.entity_id == node:
                return projection
        return None

    def state(self, node: str) -> str | None:
        projection = self.projection(node)
        return None if projection is None else projection.state

    def events(self, topic: str, node: str | None = None) -> list[dict[str, Any]]:
        """Payloads published on ``topic`` (for ``node``), each event id once, in log order."""
        seen: set[str] = set()
        out = []
        for record in self.broker.records(topic):
            document = json.loads(record.value)
            if document["envelope_id"] in seen:
                continue
            seen.add(document["envelope_id"])
            if node is None or document["entity_id"] == node:
                out.append(document["payload"])
        return out

    def published(self, topic: str) -> int:
        return len(self.broker.records(topic))

    def dead_letters(self) -> list[dict[str, Any]]:
        return [json.loads(r.value) for r in self.broker.records(DLQ)]


def make_world(
    *,
    broker: InMemoryBroker | None = None,
    faults: Faults | None = None,
    projections: InMemoryProjectionStore | None = None,
    idempotency: InMemoryIdempotencyStore | None = None,
    registry: InMemoryServiceRegistry | None = None,
    table: InMemoryRegistrationTable | None = None,
    clock: LoopClock | None = None,
    config: RegistrationConfig | None = None,
    seed: int = 3,
) -> World:
    """A world; pass the parts of an earlier one to build its restarted host."""
    broker = broker or InMemoryBroker(partitions=4)
    clock = clock or LoopClock(START)
    clock.now()
    projections = projections or InMemoryProjectionStore()
    idempotency = idempotency or InMemoryIdempotencyStore()
    registry = registry or InMemoryServiceRegistry()
    table = table or InMemoryRegistrationTable()
    registration = build_registration(
        InMemoryBus(broker, group="registration", faults=faults),
        projections,
        idempotency,
        registry,
        table,
        clock,
        SeededIds(seed),
        config,
        runtime=RuntimeConfig(name="registration"),
        seed=seed,
    )
    return World(broker, registration, projections, idempotency, registry, table, clock)
