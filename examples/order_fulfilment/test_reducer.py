"""Property tests of the order reducer, written with ``onex_contracts.testing``.

The reducer is tested in isolation: no bus, no runtime, no clock. The contract's machine tells
the strategies which triggers are legal where and what payloads the guards accept; ``envelope``
turns each drawn event into the message the reducer really folds.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from examples.order_fulfilment.app import CONTRACTS
from examples.order_fulfilment.domain import CAPTURE, CAPTURE_OUTCOME, COMMANDS, order_reducer
from onex_contracts import compile_machine, load
from onex_contracts.schema import NodeContract
from onex_contracts.testing import (
    Event,
    event_sequences,
    payloads_breaking,
    reducer_properties,
)
from onex_core.messages import Envelope
from onex_core.reducers import FsmState, fold
from onex_core.topics import parse_topic

CONTRACT = load(CONTRACTS / "order_reducer" / "contract.yaml")
assert isinstance(CONTRACT, NodeContract)
MACHINE = compile_machine(CONTRACT)
REDUCER = order_reducer(MACHINE)
NAMESPACE = uuid.UUID("5d1b1f0e-9c4e-4a8e-8f00-0000000000aa")
TOPIC_OF = {trigger: topic for topic, trigger in COMMANDS.items()}
AT = datetime(2026, 3, 2, tzinfo=UTC)


def envelope(event: Event, index: int) -> Envelope:
    """The message a drawn event stands for: a command, a payment outcome, or (for a trigger
    the machine does not know) a message of some other workflow."""
    envelope_id = uuid.uuid5(NAMESPACE, f"{index}:{event.trigger}")
    payload: dict[str, Any] = dict(event.payload)
    if event.trigger in TOPIC_OF:
        topic = TOPIC_OF[event.trigger]
    elif event.trigger in ("payment_captured", "payment_failed"):
        topic = CAPTURE_OUTCOME
        payload["ok"] = event.trigger == "payment_captured"
    else:
        topic = "onex.evt.elsewhere.something-happened.v1"
    event_type = parse_topic(topic).event_type
    return Envelope(envelope_id, topic, event_type, payload, envelope_id, "order-1", AT)


# Determinism, illegal triggers, every emitted intent served by exactly one effect of the
# contract directory, terminal states final: one line.
test_order_reducer_properties = reducer_properties(
    REDUCER, MACHINE, make=envelope, contracts=CONTRACTS, max_examples=60
)


@settings(max_examples=80, deadline=None)
@given(walk=event_sequences(MACHINE, max_size=8))
def test_every_legal_walk_is_followed_by_the_reducer(walk: tuple[Event, ...]) -> None:
    state = FsmState(MACHINE.initial)
    for index, event in enumerate(walk):
        step = REDUCER(state, envelope(event, index))
        assert step.rejected is None
        assert step.state.name == event.after
        # Only paying asks for an effect: one capture of the order's total.
        if event.trigger == "pay":
            (intent,) = step.intents
            assert intent.intent_type == CAPTURE
            assert intent.payload["amount"] == state.data["total"]
        else:
            assert step.intents == ()
        state = step.state
    messages = [envelope(event, index) for index, event in enumerate(walk)]
    assert fold(REDUCER, FsmState(MACHINE.initial), messages).state == state


PLACE = next(t for t in MACHINE.transitions if t.trigger == "place")


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_breaking_one_place_guard_refuses_the_order_by_that_guards_name(
    data: st.DataObject,
) -> None:
    broken = data.draw(st.sampled_from(PLACE.guards))
    others = [g for g in PLACE.guards if g is not broken]
    payload = data.draw(payloads_breaking(broken, keep=others))
    event = Event("place", payload, "new", None)
    step = REDUCER(FsmState("new"), envelope(event, 0))
    assert step.rejected is not None
    assert step.rejected.failed_guards == (broken.name,)
    assert step.state == FsmState("new")
