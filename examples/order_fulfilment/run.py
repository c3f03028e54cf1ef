"""Run a few orders through the real runtime host, on the in-memory bus and virtual time.

``python -m examples.order_fulfilment`` prints what happened to each order:

- ``order-1001`` is placed, paid, packed and shipped;
- ``order-1002`` is paid with a wallet; the warehouse first sends a malformed tracking number,
  which the ``ship`` guard refuses, then a good one;
- ``order-1003``'s card issuer is down: the capture exhausts its four attempts, lands in the
  dead-letter queue, and the order ends in ``payment_failed``; packing it is refused;
- ``order-1004`` has no items and a zero total: the ``place`` guards refuse it, by name;
- ``order-1005`` is cancelled before payment;
- ``order-1006``'s card is declined: refused for good at the first attempt, dead-lettered.

The gateway also fails transiently now and then (seeded): those captures are retried with
backoff, and a capture whose answer came too late is retried without charging twice. Everything
runs on a :class:`~onex_adapters.clock.VirtualTimeLoop` with a seeded gateway and jitter, so
every run prints the same report, in a fraction of a second.
"""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, TextIO

from examples.order_fulfilment.app import Shop, build_shop
from examples.order_fulfilment.domain import (
    ANNOUNCEMENTS,
    CANCEL_ORDER,
    CAPTURE_OUTCOME,
    DLQ,
    DOMAIN,
    PACK_ORDER,
    PAY_ORDER,
    PLACE_ORDER,
    REFUSED,
    SHIP_ORDER,
)
from examples.order_fulfilment.gateway import InMemoryPaymentGateway
from onex_adapters.clock import LoopClock, run_virtual
from onex_adapters.codec import EnvelopeCodec
from onex_adapters.memory import InMemoryIdempotencyStore, InMemoryProjectionStore
from onex_adapters.memory_bus import InMemoryBroker, InMemoryBus
from onex_core.messages import Envelope
from onex_core.topics import parse_topic

__all__ = ["ORDERS", "Line", "Report", "Row", "main", "render", "run_shop"]

START: Final = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
_NAMESPACE: Final = uuid.UUID("0e1c4d7a-5b1f-4c53-9a0e-6f7264657273")

ORDERS: Final[dict[str, dict[str, Any]]] = {
    "order-1001": {
        "customer_id": "cust-0001",
        "items": [{"sku": "mug-blue", "quantity": 2}, {"sku": "tea-earl-grey", "quantity": 1}],
        "total": 59.9,
        "currency": "EUR",
    },
    "order-1002": {
        "customer_id": "cust-0002",
        "items": [{"sku": "notebook-a5", "quantity": 3}],
        "total": 12.5,
        "currency": "GBP",
    },
    "order-1003": {
        "customer_id": "cust-0003",
        "items": [{"sku": "lamp-brass", "quantity": 1}, {"sku": "bulb-e27", "quantity": 4}],
        "total": 240,
        "currency": "USD",
    },
    "order-1004": {"customer_id": "cust-0004", "items": [], "total": 0, "currency": "EUR"},
    "order-1005": {
        "customer_id": "cust-0005",
        "items": [{"sku": "poster-map", "quantity": 1}],
        "total": 18,
        "currency": "EUR",
    },
    "order-1006": {
        "customer_id": "cust-0006",
        "items": [{"sku": "chair-oak", "quantity": 2}],
        "total": 310,
        "currency": "EUR",
    },
}
"""The orders the runner places."""

PAYMENTS: Final = {
    "order-1001": {"method": "card", "instrument": "ins_visa_4242"},
    "order-1002": {"method": "wallet", "instrument": "ins_wallet_anna"},
    "order-1003": {"method": "card", "instrument": "ins_issuer_down"},
    "order-1004": {"method": "card", "instrument": "ins_visa_1881"},
    "order-1006": {"method": "card", "instrument": "ins_declined_0006"},
}

# What the shop front end and the warehouse send, phase by phase: (seconds to wait first,
# [(topic, order, payload)]). The host runs until idle after each phase.
SCRIPT: Final[tuple[tuple[float, tuple[tuple[str, str, dict[str, Any]], ...]], ...]] = (
    (0.0, tuple((PLACE_ORDER, order, body) for order, body in ORDERS.items())),
    (
        60.0,
        (
            *((PAY_ORDER, order, body) for order, body in PAYMENTS.items()),
            (CANCEL_ORDER, "order-1005", {"reason": "ordered twice"}),
        ),
    ),
    (
        600.0,
        tuple(
            (PACK_ORDER, order, {"parcels": 1})
            for order in ("order-1001", "order-1002", "order-1003")
        ),
    ),
    (
        3600.0,
        (
            (SHIP_ORDER, "order-1001", {"tracking_number": "GB123456789"}),
            (SHIP_ORDER, "order-1002", {"tracking_number": "gb-1"}),
            (SHIP_ORDER, "order-1002", {"tracking_number": "GB987654321"}),
        ),
    ),
)


@dataclass(frozen=True, slots=True)
class Line:
    """One timeline entry."""

    at: datetime
    rank: int
    order: str
    text: str

    def render(self) -> str:
        return f"{_clock(self.at)}  {self.order:<10}  {self.text}"


@dataclass(frozen=True, slots=True)
class Row:
    """One order in the final table."""

    order: str
    state: str
    total: str
    attempts: int
    charged: int


@dataclass(frozen=True, slots=True)
class Report:
    """What a run produced; ``dead_letters`` are the DLQ documents, ``states`` each order's
    final state, ``charged`` how many captures the gateway made per order."""

    timeline: tuple[Line, ...]
    table: tuple[Row, ...]
    dead_letters: tuple[dict[str, Any], ...]
    states: dict[str, str] = field(default_factory=dict)
    charged: dict[str, int] = field(default_factory=dict)


def _clock(at: datetime) -> str:
    seconds = (at - START).total_seconds()
    whole = int(seconds)
    return (
        f"{whole // 3600:02d}:{whole % 3600 // 60:02d}:{whole % 60:02d}"
        f".{round((seconds - whole) * 1000):03d}"
    )


def _describe(envelope: Envelope) -> tuple[int, str] | None:
    p, topic = envelope.payload, envelope.topic
    if topic == REFUSED:
        guards = ", ".join(p.get("failed_guards") or ()) or p.get("reason")
        return 0, f"{p.get('command')} refused in state {p.get('state')}: {guards}"
    if topic == CAPTURE_OUTCOME:
        if p.get("ok"):
            detail = p.get("detail") or {}
            text = (
                f"payment captured after {p.get('attempts')} attempt(s): {detail.get('capture_id')}"
            )
            if detail.get("repeat"):
                text += " (an earlier attempt charged but answered too late; not charged twice)"
            return 3, text
        return 3, f"payment capture failed after {p.get('attempts')} attempt(s): {p.get('reason')}"
    state = p.get("state")
    if topic == ANNOUNCEMENTS["placed"]:
        return 0, f"placed: {p.get('total')} {p.get('currency')} by {p.get('customer_id')}"
    if topic == ANNOUNCEMENTS["shipped"]:
        return 5, f"shipped: {p.get('tracking_number')}"
    if topic == ANNOUNCEMENTS["cancelled"]:
        return 1, f"cancelled: {p.get('reason')}"
    if topic == ANNOUNCEMENTS["payment_failed"]:
        return 4, "-> payment_failed"
    if topic == ANNOUNCEMENTS["payment_pending"]:
        return 1, f"-> payment_pending ({p.get('method')})"
    if isinstance(state, str):
        return 4 if state == "paid" else 1, f"-> {state}"
    return None


def _timeline(broker: InMemoryBroker) -> list[Line]:
    codec = EnvelopeCodec()
    lines = []
    for topic in (*ANNOUNCEMENTS.values(), REFUSED, CAPTURE_OUTCOME):
        for record in broker.records(topic):
            envelope = codec.decode(record.value, arrived_on=topic)
            described = _describe(envelope)
            if described is not None:
                lines.append(
                    Line(envelope.emitted_at, described[0], envelope.entity_id, described[1])
                )
    for record in broker.records(DLQ):
        letter = json.loads(record.value)
        intent = letter.get("intent") or {}
        text = (
            f"DEAD-LETTERED {intent.get('intent_type')} after {len(letter['attempts'])} "
            f"attempt(s) ({letter['failure_class']}: {letter['error_type']})"
        )
        order = (letter["original_message"].get("key")) or "?"
        lines.append(Line(datetime.fromisoformat(letter["failure_timestamp"]), 2, order, text))
    return sorted(lines, key=lambda line: (line.at, line.order, line.rank))


async def run_shop(seed: int = 18) -> Report:
    """Run :data:`SCRIPT` on the embedded default (call it on a virtual-time loop)."""
    broker = InMemoryBroker(partitions=4)
    clock = LoopClock(START)
    clock.now()  # virtual time starts now
    projections = InMemoryProjectionStore()
    gateway = InMemoryPaymentGateway(
        seed=seed,
        issuer_down=frozenset({"ins_issuer_down"}),
        declined=frozenset({"ins_declined_0006"}),
    )
    shop: Shop = build_shop(
        InMemoryBus(broker, group="orders", member_id="orders"),
        projections,
        InMemoryIdempotencyStore(),
        gateway,
        clock,
        seed=seed,
    )
    front = InMemoryBus(broker, group="front-end", member_id="front-end")
    codec = EnvelopeCodec()
    sent = 0
    await shop.host.start()
    for wait, messages in SCRIPT:
        await asyncio.sleep(wait)
        for topic, order, body in messages:
            sent += 1
            message_id = uuid.uuid5(_NAMESPACE, f"{order}/{sent}")
            envelope = Envelope(
                envelope_id=message_id,
                topic=topic,
                event_type=parse_topic(topic).event_type,
                payload=body,
                correlation_id=message_id,
                entity_id=order,
                emitted_at=clock.now(),
            )
            await front.publish(topic, codec.encode(envelope), key=order.encode())
        await shop.host.run_until_idle()
    await shop.host.stop()

    states = {p.entity_id: p.state for p in projections.all(DOMAIN)}
    charged = {order: len(gateway.charged(order)) for order in ORDERS}
    table = tuple(
        Row(
            order=order,
            state=states.get(order, "-"),
            total=f"{body['total']} {body['currency']}",
            attempts=gateway.attempts.get(order, 0),
            charged=charged[order],
        )
        for order, body in ORDERS.items()
    )
    letters = tuple(json.loads(record.value) for record in broker.records(DLQ))
    return Report(tuple(_timeline(broker)), table, letters, states, charged)


def render(report: Report) -> str:
    """The printed report: the timeline, then the final table."""
    out = ["Timeline (virtual time)", ""]
    out += [line.render() for line in report.timeline]
    out += ["", "Final state", ""]
    header = ("ORDER", "STATE", "TOTAL", "CAPTURE ATTEMPTS", "CHARGED")
    cells = [header] + [
        (r.order, r.state, r.total, str(r.attempts), str(r.charged)) for r in report.table
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    out += [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    ]
    out += ["", f"{len(report.dead_letters)} dead letter(s) on {DLQ}"]
    return "\n".join(out) + "\n"


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """Run the orders and print the report. Returns the exit code (0)."""
    del argv
    report = run_virtual(run_shop())
    (out or sys.stdout).write(render(report))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
