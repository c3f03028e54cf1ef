"""The registration workflow end to end with the Consul adapter, against the in-process fake.

The runtime host carries out ``consul.register`` and ``consul.pass_check`` through
:class:`~onex_adapters.consul.ConsulServiceRegistry` — the real py-consul client, over HTTP — on
the Consul fake, whose TTL checks run on the wall clock like the workflow (so a check lapses
when heartbeats stop, exactly as on an agent). Registration storage and projections are in
memory. The workflow never deregisters: an expired node's check goes critical, and Consul itself
reaps the service once it stayed critical past ``DeregisterCriticalServiceAfter``.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from onex_adapters.clock import SystemClock
from onex_adapters.consul import ConsulServiceRegistry
from onex_adapters.memory import InMemoryIdempotencyStore, InMemoryProjectionStore
from onex_adapters.memory_bus import InMemoryBroker, InMemoryBus
from onex_adapters.registration import (
    InMemoryRegistrationTable,
    Registration,
    build_registration,
)
from onex_adapters.runtime import RandomIds, RuntimeConfig
from onex_core.messages import Envelope
from onex_core.registration import Handled
from onex_core.registration.model import DLQ, SERVICE_OUTCOME
from tests.adapters.fakes.base import FakeClock, Fault
from tests.adapters.fakes.consul_fake import ConsulFake
from tests.registration.live import CONFIG, Nodes, eventually, fast_contracts, running

TOKEN = f"consul-acl-{uuid.uuid4().hex}"
REGISTER = "/v1/agent/service/register"
NODES = (("n1", "effect", 11), ("n2", "compute", 12), ("n3", "reducer", 13))


class WallClock(FakeClock):
    """The fake's clock on the real monotonic clock, plus whatever the test advances."""

    def __init__(self) -> None:
        super().__init__()
        self._origin = time.monotonic()

    def __call__(self) -> float:
        return time.monotonic() - self._origin + super().__call__()


@dataclass
class World:
    fake: ConsulFake
    broker: InMemoryBroker
    registration: Registration
    projections: InMemoryProjectionStore
    table: InMemoryRegistrationTable
    nodes: Nodes
    notes: list[str] = field(default_factory=list)

    async def state(self, node: str) -> str | None:
        projection = await self.projections.get(node, CONFIG.domain)
        return None if projection is None else projection.state

    async def states(self, names: list[str], wanted: str) -> bool:
        return all([await self.state(name) == wanted for name in names])

    def check(self, node: str, node_type: str) -> str | None:
        return self.fake.check_status(f"service:onex-{node_type}-{node}")

    def registers(self) -> int:
        return len(self.fake.requests.matching("PUT", REGISTER))


@asynccontextmanager
async def world(tmp_path: Path, fake: ConsulFake) -> AsyncIterator[World]:
    consul = ConsulServiceRegistry()
    await consul.initialize({"url": fake.url, "token": TOKEN, "timeout": 1.0})
    broker = InMemoryBroker(partitions=4)
    clock = SystemClock()
    projections = InMemoryProjectionStore()
    table = InMemoryRegistrationTable()
    notes: list[str] = []

    def observe(envelope: Envelope, handled: Handled) -> None:
        notes.append(f"{envelope.entity_id}: {handled.decision.note}")

    registration = build_registration(
        InMemoryBus(broker, group="registration"),
        projections,
        InMemoryIdempotencyStore(),
        consul,
        table,
        clock,
        RandomIds(),
        CONFIG,
        runtime=RuntimeConfig(name="registration", poll_timeout=0.05),
        observe=observe,
        contracts=fast_contracts(tmp_path),
    )
    nodes = Nodes(broker, clock)
    try:
        async with running(registration):
            yield World(fake, broker, registration, projections, table, nodes, notes)
            await nodes.stop_heartbeats()
    finally:
        await consul.shutdown(1.0)


async def _lifecycle(tmp_path: Path) -> None:
    with ConsulFake(tokens={TOKEN}, clock=WallClock()) as fake:
        assert isinstance(fake, ConsulFake)
        async with world(tmp_path, fake) as w:
            names = [name for name, _, _ in NODES]
            for name, node_type, host in NODES:
                await w.nodes.introspect(name, node_type, host)
            await eventually(lambda: w.states(names, "awaiting_ack"), "all three accepted")

            # Registered under the upstream id, with the node's address, port and tags; the
            # TTL check stays critical until the first heartbeat passes it.
            for name, node_type, host in NODES:
                service = w.fake.state.services[f"onex-{node_type}-{name}"]
                assert (service.name, service.address, service.port) == (
                    f"onex-{node_type}",
                    f"10.0.0.{host}",
                    8080,
                )
                assert service.tags == [
                    "onex",
                    f"node-type:{node_type}",
                    "version:1.0.0",
                    "capability:demo",
                ]
                assert w.check(name, node_type) == "critical"

            for name in names:
                await w.nodes.ack(name)
            await eventually(lambda: w.states(names, "active"), "all three active")
            for name in names:
                w.nodes.start_heartbeats(name)

            async def all_passing() -> bool:
                return all(w.check(n, t) == "passing" for n, t, _ in NODES)

            await eventually(all_passing, "heartbeats pass every check")

            # An agent restart that lost every service: the next heartbeats register them again.
            before = w.registers()
            w.fake.forget_services()
            await eventually(all_passing, "the next heartbeats restore every service")
            assert w.registers() == before + 3

            # n3 goes quiet: the workflow expires it and its TTL check lapses to critical; the
            # workflow does not deregister it, the others stay passing.
            await w.nodes.stop_heartbeats("n3")
            await eventually(lambda: w.states(["n3"], "liveness_expired"), "n3 expired")

            async def n3_critical() -> bool:
                return w.check("n3", "reducer") == "critical"

            await eventually(n3_critical, "n3's check lapsed")
            assert w.fake.has_service("onex-reducer-n3")
            assert w.fake.requests.matching("PUT", "/v1/agent/service/deregister/") == []
            assert w.check("n1", "effect") == w.check("n2", "compute") == "passing"

            # Consul reaps a service critical for longer than DeregisterCriticalServiceAfter.
            w.fake.clock.advance(61.0)
            assert not w.fake.has_service("onex-reducer-n3")

            # n3 comes back: a new registration attempt, and a passing check again.
            await w.nodes.introspect("n3", "reducer", 13)
            await eventually(lambda: w.states(["n3"], "awaiting_ack"), "n3 accepted again")
            projection = await w.projections.get("n3", CONFIG.domain)
            assert projection is not None
            assert projection.data["attempt"] == 1
            await w.nodes.ack("n3")
            await eventually(lambda: w.states(["n3"], "active"), "n3 active again")
            w.nodes.start_heartbeats("n3")
            await eventually(_passing(w, "n3", "reducer"), "n3 passing again")
            assert w.fake.has_service("onex-reducer-n3")


def _passing(w: World, node: str, node_type: str) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return w.check(node, node_type) == "passing"

    return check


def test_nodes_register_in_consul_and_their_checks_follow_their_heartbeats(
    tmp_path: Path,
) -> None:
    asyncio.run(_lifecycle(tmp_path))


async def _outage(tmp_path: Path) -> None:
    with ConsulFake(tokens={TOKEN}, clock=WallClock()) as fake:
        assert isinstance(fake, ConsulFake)
        # Every attempt of the first registration fails (1 + 3 retries), then Consul is back.
        fake.faults.add(Fault(method="PUT", path=REGISTER, status=503, body="No leader", times=4))
        async with world(tmp_path, fake) as w:
            await w.nodes.introspect("n1", "effect", 11)
            await eventually(lambda: w.states(["n1"], "awaiting_ack"), "n1 accepted")

            # Partial: the store registered the node, Consul did not; only Consul was retried.
            assert any(note.startswith("n1: partial:") for note in w.notes), w.notes
            assert w.registers() == 5
            assert w.table.upserts == 1
            outcomes = [json.loads(r.value)["payload"] for r in w.broker.records(SERVICE_OUTCOME)]
            assert [(o["ok"], o["attempts"]) for o in outcomes] == [(False, 4), (True, 1)]
            [letter] = [json.loads(r.value) for r in w.broker.records(DLQ)]
            assert letter["intent"]["intent_type"] == "consul.register"
            assert [a["error_type"] for a in letter["attempts"]] == ["EffectUnavailable"] * 4
            projection = await w.projections.get("n1", CONFIG.domain)
            assert projection is not None
            assert projection.data["backend_retries"] == 1

            # …and complete: ACKed, heartbeating, its check passing.
            await w.nodes.ack("n1")
            await eventually(lambda: w.states(["n1"], "active"), "n1 active")
            w.nodes.start_heartbeats("n1")
            await eventually(_passing(w, "n1", "effect"), "n1's check passing")
            assert w.table.rows["n1"].state == "active"


def test_a_consul_outage_makes_the_registration_partial_and_only_consul_is_retried(
    tmp_path: Path,
) -> None:
    asyncio.run(_outage(tmp_path))
