"""The order workflow's pure domain: the reducer around the contract's machine, and decisions.

The state machine — states, triggers, guards, the one action — is in
``contracts/order_reducer/contract.yaml``. This module adds what a contract cannot say, and
nothing here reads a clock, makes a random id or does I/O (``now`` comes in as an argument):

- **Triggers** (:func:`trigger_of`). The reducer folds :class:`~onex_core.messages.Envelope`\\ s:
  each command's event type names its trigger; a payment outcome means ``payment_captured`` or
  ``payment_failed`` by its ``ok`` field.
- **Extended state** (:func:`update`). What the order remembers in ``FsmState.data``: the
  order itself, the payment details, and the id of the capture intent it waits for.
- **The intent builder** (:func:`capture_payment`). One ``payment.capture`` intent, whose id is
  derived from the pay command's id: a redelivered command asks for the very same capture,
  which the runtime then skips as done.
- **Decisions** (:func:`decide`). One message → the new state, the intents, and one event
  announcing what happened, or one ``order-command-refused`` event naming the failed guards.
- **Projections** (:data:`LAYOUT`, :func:`handle`). What to do with a message delivered again
  — replay the last one after a crash, skip the recently applied — is not the order's business:
  :mod:`onex_core.entities` does it for every workflow. The order only says where its projection
  lives (the ``orders`` domain, the order's fields under ``data["order"]``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final

from onex_core.entities import Decide, EntityDecision, Handled, Layout, apply_to_projection
from onex_core.fsm import Fired, Machine
from onex_core.intents import Intent, intent_id_for, make_target
from onex_core.messages import Envelope
from onex_core.outputs import Projection
from onex_core.reducers import ActionContext, FsmReducer, FsmState
from onex_core.topics import parse_topic

__all__ = [
    "ANNOUNCEMENTS",
    "CAPTURE",
    "CAPTURE_OUTCOME",
    "COMMANDS",
    "DLQ",
    "DOMAIN",
    "LAYOUT",
    "REFUSED",
    "capture_payment",
    "decide",
    "decider",
    "handle",
    "order_reducer",
    "trigger_of",
    "update",
]

DOMAIN: Final = "orders"
"""The projection domain of orders."""

CAPTURE: Final = "payment.capture"
"""The intent type of a payment capture."""

PLACE_ORDER: Final = "onex.cmd.shop.place-order.v1"
PAY_ORDER: Final = "onex.cmd.shop.pay-order.v1"
CANCEL_ORDER: Final = "onex.cmd.shop.cancel-order.v1"
PACK_ORDER: Final = "onex.cmd.warehouse.pack-order.v1"
SHIP_ORDER: Final = "onex.cmd.warehouse.ship-order.v1"
CAPTURE_OUTCOME: Final = "onex.evt.payments.payment-capture-outcome.v1"
REFUSED: Final = "onex.evt.shop.order-command-refused.v1"
DLQ: Final = "onex.dlq.shop.orders.v1"

COMMANDS: Final[Mapping[str, str]] = {
    PLACE_ORDER: "place",
    PAY_ORDER: "pay",
    CANCEL_ORDER: "cancel",
    PACK_ORDER: "pack",
    SHIP_ORDER: "ship",
}
"""The trigger of each command topic."""

_TRIGGERS: Final[Mapping[str, str]] = {
    parse_topic(topic).event_type: trigger for topic, trigger in COMMANDS.items()
}
_OUTCOME_TYPE: Final = parse_topic(CAPTURE_OUTCOME).event_type

ANNOUNCEMENTS: Final[Mapping[str, str]] = {
    "placed": "onex.evt.shop.order-placed.v1",
    "payment_pending": "onex.evt.shop.order-payment-started.v1",
    "paid": "onex.evt.shop.order-paid.v1",
    "payment_failed": "onex.evt.shop.order-payment-failed.v1",
    "packed": "onex.evt.shop.order-packed.v1",
    "shipped": "onex.evt.shop.order-shipped.v1",
    "cancelled": "onex.evt.shop.order-cancelled.v1",
}
"""The event announcing that an order reached each state."""

LAYOUT: Final = Layout(DOMAIN, window=32, nest="order")
"""Where an order's projection lives: the ``orders`` domain, its fields under ``data["order"]``,
and the ids of the last 32 messages that changed it."""


# --------------------------------------------------------------------------- the reducer


def trigger_of(envelope: Envelope) -> str | None:
    """The trigger an envelope means, or ``None`` for messages of no concern to orders."""
    if envelope.event_type == _OUTCOME_TYPE:
        return "payment_captured" if envelope.payload.get("ok") is True else "payment_failed"
    return _TRIGGERS.get(envelope.event_type)


def update(before: FsmState, envelope: Envelope, fired: Fired) -> Mapping[str, Any]:
    """The order's extended state after ``fired``. Pure: a new mapping every time."""
    payload = envelope.payload
    data = dict(before.data)
    trigger = fired.trigger
    if trigger == "place":
        items = payload["items"]
        return {
            "customer_id": payload["customer_id"],
            "items": len(items),
            "total": payload["total"],
            "currency": payload["currency"],
        }
    if trigger == "pay":
        data["method"] = payload["method"]
        data["instrument"] = payload["instrument"]
        index = fired.actions.index("capture_payment")
        data["capture_intent"] = str(intent_id_for(envelope.envelope_id, CAPTURE, index))
    elif trigger == "payment_captured":
        data.pop("capture_intent", None)
        detail = payload.get("detail")
        if isinstance(detail, Mapping) and isinstance(detail.get("capture_id"), str):
            data["capture_id"] = detail["capture_id"]
    elif trigger == "payment_failed":
        data.pop("capture_intent", None)
        data["payment_error"] = str(payload.get("reason", "the payment failed"))
    elif trigger == "ship":
        data["tracking_number"] = payload["tracking_number"]
    elif trigger == "cancel":
        data["cancel_reason"] = str(payload.get("reason", "cancelled by the customer"))
    return data


def capture_payment(ctx: ActionContext[Envelope]) -> Intent:
    """The ``payment.capture`` intent of a pay command (the contract's one action)."""
    envelope, order = ctx.event, ctx.after.data
    return Intent(
        intent_type=CAPTURE,
        target=make_target("payment", "capture", envelope.entity_id),
        payload={
            "order_id": envelope.entity_id,
            "amount": order.get("total"),
            "currency": order.get("currency"),
            "method": order.get("method"),
            "instrument": order.get("instrument"),
        },
        intent_id=intent_id_for(envelope.envelope_id, CAPTURE, ctx.index),
        correlation_id=envelope.correlation_id,
    )


def order_reducer(machine: Machine) -> FsmReducer[Envelope]:
    """The order reducer over ``machine`` (compiled from ``order_reducer/contract.yaml``).

    Raises:
        ContractError: the machine uses an action other than ``capture_payment``.
    """
    return FsmReducer(
        machine,
        trigger_of=trigger_of,
        actions={"capture_payment": capture_payment},
        update=update,
    )


# --------------------------------------------------------------------------- decisions


def _announcement(state: FsmState, envelope: Envelope) -> dict[str, Any]:
    order = state.data
    payload: dict[str, Any] = {"order_id": envelope.entity_id, "state": state.name}
    for key in ("customer_id", "total", "currency", "method", "capture_id", "tracking_number"):
        if key in order:
            payload[key] = order[key]
    if state.name == "payment_failed":
        payload["reason"] = order.get("payment_error")
        payload["dead_lettered"] = True
    if state.name == "cancelled":
        payload["reason"] = order.get("cancel_reason")
    return payload


def decide(
    state: FsmState | None, envelope: Envelope, now: datetime, reducer: FsmReducer[Envelope]
) -> EntityDecision:
    """Decide one message for the order in ``state`` (None: a new order). Pure.

    A payment outcome for any capture but the one the order waits for (late, duplicated, from
    an earlier attempt) is ignored. A command the machine refuses produces an
    ``order-command-refused`` event naming the state and the failed guards.
    """
    if state is None:
        state = FsmState(reducer.machine.initial)
    if envelope.event_type == _OUTCOME_TYPE:
        waiting_for = state.data.get("capture_intent")
        if waiting_for is None or envelope.payload.get("intent_id") != waiting_for:
            return EntityDecision(state, note="payment outcome for no pending capture: ignored")
    step = reducer(state, envelope)
    rejected = step.rejected
    if rejected is not None:
        if envelope.event_type == _OUTCOME_TYPE:
            return EntityDecision(state, note=rejected.message)
        refusal = envelope.child(
            topic=REFUSED,
            event_type=parse_topic(REFUSED).event_type,
            payload={
                "order_id": envelope.entity_id,
                "command": envelope.event_type,
                "state": state.name,
                "reason": rejected.reason.value,
                "failed_guards": list(rejected.failed_guards),
            },
            index=0,
            emitted_at=now,
        )
        return EntityDecision(state, events=(refusal,), note=rejected.message)
    if step.state is state:
        return EntityDecision(state, note=f"{envelope.event_type} is not for orders")
    topic = ANNOUNCEMENTS[step.state.name]
    event = envelope.child(
        topic=topic,
        event_type=parse_topic(topic).event_type,
        payload=_announcement(step.state, envelope),
        index=0,
        emitted_at=now,
    )
    note = f"{state.name} -> {step.state.name}"
    return EntityDecision(step.state, step.intents, (event,), note=note, changed=True)


def decider(reducer: FsmReducer[Envelope]) -> Decide:
    """:func:`decide` over ``reducer``, as the entity orchestrator calls it."""

    def decide_order(state: FsmState | None, envelope: Envelope, now: datetime) -> EntityDecision:
        return decide(state, envelope, now, reducer)

    return decide_order


# --------------------------------------------------------------------------- projections


def handle(
    projection: Projection | None,
    envelope: Envelope,
    now: datetime,
    reducer: FsmReducer[Envelope],
) -> Handled:
    """Handle one message for the order whose stored projection is ``projection``, as the
    orchestrator does. Pure.

    1. The message is the one that produced the stored projection (the projection was written,
       then the process died before its effects ran or its events went out): decide it again
       from the state before it, at the time it was first decided — the same intents and events,
       with the same ids — and write nothing.
    2. The message was applied recently: do nothing.
    3. Otherwise decide it; when the state changed, return the projection to write first.
    """
    return apply_to_projection(projection, envelope, now, decider(reducer), layout=LAYOUT)
