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
- **Projections** (:func:`handle`). An order's projection holds its state, the state before
  the last message (to replay that message after a crash), and the ids of the recently applied
  messages (to skip duplicates).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Literal

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
    "REFUSED",
    "Decision",
    "Handled",
    "capture_payment",
    "decide",
    "handle",
    "order_reducer",
    "state_of",
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

APPLIED_WINDOW: Final = 32
"""How many recently applied message ids an order's projection remembers."""


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


@dataclass(frozen=True, slots=True)
class Decision:
    """What one message means for one order: the state after it, the intents to run, the
    events to publish, whether the state changed, and a note for logs."""

    state: FsmState
    intents: tuple[Intent, ...] = ()
    events: tuple[Envelope, ...] = ()
    changed: bool = False
    note: str = ""


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
    state: FsmState, envelope: Envelope, now: datetime, reducer: FsmReducer[Envelope]
) -> Decision:
    """Decide one message for the order in ``state``. Pure.

    A payment outcome for any capture but the one the order waits for (late, duplicated, from
    an earlier attempt) is ignored. A command the machine refuses produces an
    ``order-command-refused`` event naming the state and the failed guards.
    """
    if envelope.event_type == _OUTCOME_TYPE:
        waiting_for = state.data.get("capture_intent")
        if waiting_for is None or envelope.payload.get("intent_id") != waiting_for:
            return Decision(state, note="payment outcome for no pending capture: ignored")
    step = reducer(state, envelope)
    rejected = step.rejected
    if rejected is not None:
        if envelope.event_type == _OUTCOME_TYPE:
            return Decision(state, note=rejected.message)
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
        return Decision(state, events=(refusal,), note=rejected.message)
    if step.state is state:
        return Decision(state, note=f"{envelope.event_type} is not for orders")
    topic = ANNOUNCEMENTS[step.state.name]
    event = envelope.child(
        topic=topic,
        event_type=parse_topic(topic).event_type,
        payload=_announcement(step.state, envelope),
        index=0,
        emitted_at=now,
    )
    note = f"{state.name} -> {step.state.name}"
    return Decision(step.state, step.intents, (event,), changed=True, note=note)


# --------------------------------------------------------------------------- projections


@dataclass(frozen=True, slots=True)
class Handled:
    """What :func:`handle` decided: the decision, the projection to write (or None), and
    whether the message was ``applied``, ``unchanged``, ``replayed`` or a ``duplicate``."""

    decision: Decision
    projection: Projection | None
    kind: Literal["applied", "unchanged", "replayed", "duplicate"]


def state_of(projection: Projection | None, initial: str) -> FsmState:
    """The reducer state an order's projection holds (``initial`` for no projection)."""
    if projection is None:
        return FsmState(initial)
    return FsmState(projection.state, data=dict(projection.data["order"]))


def _previous(projection: Projection, initial: str) -> FsmState:
    previous = projection.data.get("previous")
    if not isinstance(previous, Mapping):
        return FsmState(initial)
    return FsmState(previous["state"], data=dict(previous["order"]))


def handle(
    projection: Projection | None,
    envelope: Envelope,
    now: datetime,
    reducer: FsmReducer[Envelope],
) -> Handled:
    """Handle one message for the order whose stored projection is ``projection``. Pure.

    1. The message is the one that produced the stored projection (the projection was written,
       then the process died before its effects ran or its events went out): decide it again
       from the state before it, at the time it was first decided — the same intents and events,
       with the same ids — and write nothing.
    2. The message was applied recently: do nothing.
    3. Otherwise decide it; when the state changed, return the projection to write first.
    """
    initial = reducer.machine.initial
    if projection is not None:
        if projection.event_id == envelope.envelope_id:
            at = projection.updated_at or now
            decision = decide(_previous(projection, initial), envelope, at, reducer)
            return Handled(decision, None, "replayed")
        if str(envelope.envelope_id) in projection.data.get("applied", ()):
            state = state_of(projection, initial)
            return Handled(Decision(state, note="duplicate: already applied"), None, "duplicate")
    before = state_of(projection, initial)
    decision = decide(before, envelope, now, reducer)
    if not decision.changed:
        return Handled(decision, None, "unchanged")
    applied = [] if projection is None else list(projection.data.get("applied", ()))
    applied = [*applied[-(APPLIED_WINDOW - 1) :], str(envelope.envelope_id)]
    written = Projection(
        entity_id=envelope.entity_id,
        domain=DOMAIN,
        state=decision.state.name,
        data={
            "order": dict(decision.state.data),
            "previous": {"state": before.name, "order": dict(before.data)},
            "applied": applied,
        },
        sequence=0 if projection is None else projection.sequence + 1,
        event_id=envelope.envelope_id,
        updated_at=now,
    )
    return Handled(decision, written, "applied")
