"""The tick source: the runtime's heartbeat, published as envelopes.

Deadlines (an ACK that never came, a node that stopped heartbeating) are noticed on ticks. The
tick source publishes ``onex.intent.platform.runtime-tick.v1`` every ``interval`` seconds of
the host's clock, carrying the authority time ``now``; handlers compare deadlines with that
``now`` (strictly: a deadline has passed when ``now > deadline``), never with their own clock,
so the decision is reproducible from the log.
"""

from __future__ import annotations

import asyncio

from onex_adapters.clock import Clock
from onex_adapters.codec import EnvelopeCodec
from onex_adapters.runtime.ids import IdSource
from onex_core.messages import Envelope
from onex_core.ports import EventBus
from onex_core.topics import parse_topic

__all__ = ["RUNTIME_TICK_TOPIC", "TickSource"]

RUNTIME_TICK_TOPIC = "onex.intent.platform.runtime-tick.v1"


class TickSource:
    """Publishes runtime ticks.

    Args:
        interval: seconds between ticks (default 1 s).
        entity_id: the partition key of ticks; one key keeps ticks in order.
    """

    def __init__(
        self,
        bus: EventBus,
        clock: Clock,
        ids: IdSource,
        *,
        interval: float = 1.0,
        topic: str = RUNTIME_TICK_TOPIC,
        entity_id: str = "runtime-tick",
        codec: EnvelopeCodec | None = None,
    ) -> None:
        if interval <= 0:
            raise ValueError("tick interval must be positive")
        self.bus = bus
        self.clock = clock
        self.ids = ids
        self.interval = interval
        self.topic = topic
        self.event_type = parse_topic(topic).event_type
        self.entity_id = entity_id
        self.codec = codec or EnvelopeCodec()
        self.sequence = 0

    def make_tick(self) -> Envelope:
        """The next tick envelope (does not publish it)."""
        now = self.clock.now()
        self.sequence += 1
        tick_id = self.ids.new_id()
        return Envelope(
            envelope_id=tick_id,
            topic=self.topic,
            event_type=self.event_type,
            payload={
                "now": now.isoformat(),
                "sequence": self.sequence,
                "interval_ms": round(self.interval * 1000),
            },
            correlation_id=tick_id,
            entity_id=self.entity_id,
            emitted_at=now,
        )

    async def tick(self) -> Envelope:
        """Publish one tick now and return it."""
        envelope = self.make_tick()
        await self.bus.publish(self.topic, self.codec.encode(envelope), key=self.entity_id.encode())
        return envelope

    async def run(self) -> None:
        """Tick every ``interval`` seconds until cancelled."""
        while True:
            await asyncio.sleep(self.interval)
            await self.tick()
