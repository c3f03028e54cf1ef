"""A simulated fleet of nodes, for ``--simulate``: the other side of the registration workflow.

Each node behaves as a real one would, reacting to what the service publishes rather than
following a timetable: it announces itself (introspection), acknowledges once it hears that its
registration was accepted, and heartbeats once it hears that it is active. It talks to the
service over the service's own bus — a second and a third member of it — so the run exercises
exactly the path real nodes take, on the embedded default as on Kafka.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from typing import Any, Final

from onex_adapters.app import message, send
from onex_adapters.clock import Clock
from onex_adapters.codec import EnvelopeCodec
from onex_core.ports import EventBus
from onex_core.registration.model import (
    ACCEPTED,
    ACKED,
    BECAME_ACTIVE,
    HEARTBEAT,
    INTROSPECTION,
    NODE_TYPES,
)

__all__ = ["Fleet"]

_HEARD: Final = (ACCEPTED, BECAME_ACTIVE)


class Fleet:
    """``count`` simulated nodes, ``sim-node-01`` onwards.

    Args:
        make_bus: makes a bus of the service's broker or cluster (``group=``, ``member_id=``).
        clock: the service's clock (message timestamps).
        count: how many nodes.
        heartbeat_interval: seconds between a node's heartbeats.
        spacing: seconds between two nodes' introspections.
    """

    def __init__(
        self,
        make_bus: Callable[..., EventBus],
        clock: Clock,
        count: int,
        *,
        heartbeat_interval: float,
        spacing: float = 0.5,
    ) -> None:
        self.names = tuple(f"sim-node-{index:02d}" for index in range(1, count + 1))
        self.clock = clock
        self.heartbeat_interval = heartbeat_interval
        self.spacing = spacing
        self.out = make_bus(group="fleet-out", member_id="fleet-out")
        self.inbox = make_bus(group="fleet-in", member_id="fleet-in")
        self.acked: set[str] = set()
        self.heartbeats: dict[str, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._codec = EnvelopeCodec()

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def run(self) -> None:
        """Introspect every node, then react to the service until cancelled."""
        await self.inbox.subscribe(_HEARD)
        for index, name in enumerate(self.names):
            self._spawn(self._introspect(name, index))
        while True:
            records = await self.inbox.poll(100, 0.5)
            for record in records:
                envelope = self._codec.decode(record.value, arrived_on=record.topic)
                node = envelope.entity_id
                if node not in self.names:
                    continue
                if envelope.topic == ACCEPTED and node not in self.acked:
                    self.acked.add(node)
                    await self._send(ACKED, node, {"node_id": node, "timestamp": self._stamp()})
                elif envelope.topic == BECAME_ACTIVE and node not in self.heartbeats:
                    self.heartbeats[node] = 0
                    self._spawn(self._heartbeat(node))
            if records:
                await self.inbox.commit(records)

    async def close(self) -> None:
        """Stop every node and leave the bus."""
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.inbox.close()
        await self.out.close()

    def _stamp(self) -> str:
        return self.clock.now().isoformat()

    async def _send(self, topic: str, node: str, payload: dict[str, Any]) -> None:
        await send(self.out, message(topic, payload, entity_id=node, at=self.clock.now()))

    async def _introspect(self, node: str, index: int) -> None:
        await asyncio.sleep(index * self.spacing)
        node_type = NODE_TYPES[index % len(NODE_TYPES)]
        address = f"http://10.1.0.{index + 1}:8080"
        payload = {
            "node_id": node,
            "node_type": node_type,
            "node_version": "1.0.0",
            "endpoints": {"api": address, "health": f"{address}/health"},
            "capabilities": [f"{node_type}.simulated"],
        }
        await self._send(INTROSPECTION, node, payload)

    async def _heartbeat(self, node: str) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_interval)
            self.heartbeats[node] += 1
            uptime = self.heartbeats[node] * self.heartbeat_interval
            payload = {"node_id": node, "uptime_seconds": uptime, "timestamp": self._stamp()}
            await self._send(HEARTBEAT, node, payload)
