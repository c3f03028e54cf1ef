"""The registration workflow against real adapters, in real time, for the end-to-end tests.

Real servers and the HTTP fakes do real I/O and run clients in threads, so these tests run on
a normal event loop with the system clock, on a compressed timeline (:data:`CONFIG`: a 2 s
liveness window, heartbeats every 0.2 s, ticks every 0.1 s) and with the effect retries of a
copy of the shipped contracts shortened to a tenth of a second (:func:`fast_contracts`).
Nodes are simulated by publishing their messages on the in-memory bus (:class:`Nodes`), and
:func:`eventually` waits for a condition with a deadline instead of sleeping a fixed time.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from onex_adapters.clock import Clock
from onex_adapters.codec import EnvelopeCodec
from onex_adapters.memory_bus import InMemoryBroker, InMemoryBus
from onex_adapters.registration import Registration
from onex_contracts import REGISTRATION_CONTRACTS
from onex_core.messages import Envelope
from onex_core.registration import RegistrationConfig
from onex_core.registration.model import ACKED, HEARTBEAT, INTROSPECTION
from onex_core.topics import parse_topic
from tests.registration.kit import introspection_payload

__all__ = ["CONFIG", "Nodes", "eventually", "fast_contracts", "running"]

CONFIG = RegistrationConfig(
    ack_timeout=2.0, liveness_window=2.0, heartbeat_interval=0.2, tick_interval=0.1
)
_CODEC = EnvelopeCodec()


def fast_contracts(directory: Path) -> Path:
    """A copy of the shipped registration contracts whose effect retries wait 100 ms (the
    schema's least), doubling up to 400 ms, instead of 1 s up to 30 s; the rest as shipped."""
    target = directory / "registration"
    shutil.copytree(REGISTRATION_CONTRACTS, target)
    for path in target.rglob("handler_contract.yaml"):
        text = path.read_text()
        assert "base_delay_ms: 1000" in text
        assert "max_delay_ms: 30000" in text
        text = text.replace("base_delay_ms: 1000", "base_delay_ms: 100")
        path.write_text(text.replace("max_delay_ms: 30000", "max_delay_ms: 400"))
    return target


async def eventually(
    check: Callable[[], Awaitable[bool]], what: str, *, timeout: float = 10.0
) -> None:
    """Wait until ``check()`` is true, polling every 20 ms; fail naming ``what`` after
    ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():
        if loop.time() > deadline:
            raise AssertionError(f"not within {timeout:g} s: {what}")
        await asyncio.sleep(0.02)


@asynccontextmanager
async def running(registration: Registration) -> AsyncIterator[None]:
    """The host and its tick source running for the block; drained and stopped after it."""
    await registration.host.start()
    host = registration.host.start_background()
    ticks = asyncio.ensure_future(registration.ticks.run())
    try:
        yield
    finally:
        ticks.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ticks
        await registration.host.stop()
        await host


class Nodes:
    """Simulated nodes: they introspect, ACK and heartbeat by publishing on the bus."""

    def __init__(self, broker: InMemoryBroker, clock: Clock) -> None:
        self.out = InMemoryBus(broker, group="nodes")
        self.clock = clock
        self.sent: list[Envelope] = []
        self.beating: dict[str, asyncio.Task[None]] = {}

    async def send(self, topic: str, node: str, payload: dict[str, Any]) -> Envelope:
        message_id = uuid.uuid4()
        envelope = Envelope(
            envelope_id=message_id,
            topic=topic,
            event_type=parse_topic(topic).event_type,
            payload=payload,
            correlation_id=message_id,
            entity_id=node,
            emitted_at=self.clock.now(),
        )
        await self.resend(envelope)
        self.sent.append(envelope)
        return envelope

    async def resend(self, envelope: Envelope) -> None:
        """Publish ``envelope`` (again: a redelivery or a duplicate)."""
        await self.out.publish(
            envelope.topic, _CODEC.encode(envelope), key=envelope.entity_id.encode()
        )

    async def introspect(self, node: str, node_type: str = "effect", host: int = 7) -> Envelope:
        payload = introspection_payload(node, node_type)
        payload["endpoints"] = {"api": f"http://10.0.0.{host}:8080"}
        return await self.send(INTROSPECTION, node, payload)

    async def ack(self, node: str) -> Envelope:
        return await self.send(ACKED, node, {"node_id": node})

    def start_heartbeats(self, node: str, interval: float = CONFIG.heartbeat_interval) -> None:
        async def beat() -> None:
            while True:
                await self.send(HEARTBEAT, node, {"node_id": node})
                await asyncio.sleep(interval)

        self.beating[node] = asyncio.ensure_future(beat())

    async def stop_heartbeats(self, node: str | None = None) -> None:
        """Stop ``node``'s heartbeats (every node's when None)."""
        names = list(self.beating) if node is None else [node]
        for name in names:
            task = self.beating.pop(name)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
