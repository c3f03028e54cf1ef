"""The FSM interpreter and reducer against a hand-written transition table.

The machine is registration-shaped: 9 states, 14 transitions, guards on several of them and one
intent per transition. The subject is one :class:`~onex_core.reducers.FsmReducer` step over a
pre-built cycle of ``(state, event)`` pairs, each taking a guarded transition and building one
:class:`~onex_core.intents.Intent` with a derived id. The floor does the least a hand-written
reducer could: look up ``(state name, trigger) -> target`` in a dict, then build the same frozen
state and the same intent the same way (same classes, same id derivation).

For scale, other Python state-machine libraries, measured earlier on the reference machine for
one transition: transitions 0.9.3 ≈ 94,000/s, python-statemachine 3.2 ≈ 7,600/s.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from itertools import cycle, islice
from typing import Any
from uuid import UUID

from benchmarks._harness import Figure, compare
from onex_core.fsm import GuardSpec, StateSpec, TransitionSpec, build_machine, fire
from onex_core.intents import Intent, intent_id_for
from onex_core.messages import Envelope, derive_id
from onex_core.reducers import ActionContext, FsmReducer, FsmState

__all__ = ["run"]

N = 200_000

STATES = (
    StateSpec("unregistered"),
    StateSpec("pending_registration"),
    StateSpec("accepted"),
    StateSpec("awaiting_ack"),
    StateSpec("ack_received"),
    StateSpec("active"),
    StateSpec("ack_timed_out"),
    StateSpec("liveness_expired", terminal=True),
    StateSpec("failed", terminal=True),
)

HAS_NODE = (GuardSpec("node_id exists"),)
T = TransitionSpec
TRANSITIONS = (
    T("unregistered", "pending_registration", "introspected", 0, HAS_NODE, ("register",)),
    T(
        "pending_registration",
        "accepted",
        "registered",
        0,
        (GuardSpec("consul_ok is_true"), GuardSpec("postgres_ok is_true")),
        ("publish_accepted",),
    ),
    T("pending_registration", "failed", "registration_failed", 0, (), ("alert",)),
    T("accepted", "awaiting_ack", "ack_requested", 0, (), ("start_ack_timer",)),
    T("accepted", "ack_received", "acked", 0, HAS_NODE, ("record_ack",)),
    T("awaiting_ack", "ack_received", "acked", 0, HAS_NODE, ("record_ack",)),
    T(
        "awaiting_ack",
        "ack_timed_out",
        "ack_timeout",
        1,
        (GuardSpec("state.ack_timeouts < 2"),),
        ("retry_ack",),
    ),
    T("awaiting_ack", "failed", "ack_timeout", 0, (), ("alert",)),
    T("ack_timed_out", "awaiting_ack", "ack_requested", 0, (), ("start_ack_timer",)),
    T("ack_timed_out", "ack_received", "acked", 0, HAS_NODE, ("record_ack",)),
    T("ack_received", "active", "activated", 0, (), ("publish_active",)),
    T("active", "active", "heartbeat", 0, HAS_NODE, ("extend_liveness",)),
    T("active", "liveness_expired", "liveness_missed", 0, (), ("publish_expired",)),
    T("*", "unregistered", "deregistered", 0, (), ("deregister",)),
)

INTENT_TYPES = {
    "register": "consul.register",
    "publish_accepted": "events.publish_accepted",
    "alert": "ops.alert",
    "start_ack_timer": "timers.start_ack",
    "record_ack": "postgres.record_ack",
    "retry_ack": "timers.retry_ack",
    "publish_active": "events.publish_active",
    "extend_liveness": "postgres.extend_liveness",
    "publish_expired": "events.publish_expired",
    "deregister": "consul.deregister",
}
TARGET = "consul://service/node-7"
TRIGGERS = {f"platform.{trigger}": trigger for trigger in {t.trigger for t in TRANSITIONS}}


def _builder(intent_type: str) -> Any:
    def build(ctx: ActionContext[Envelope]) -> Intent:
        event = ctx.event
        return Intent(
            intent_type=intent_type,
            target=TARGET,
            payload=event.payload,
            intent_id=intent_id_for(event.envelope_id, intent_type, ctx.index),
            correlation_id=event.correlation_id,
        )

    return build


def _trigger_of(event: Envelope) -> str | None:
    return TRIGGERS.get(event.event_type)


def _sequence_of(event: Envelope) -> int:
    sequence: int = event.payload["sequence"]
    return sequence


MACHINE = build_machine("registration", "unregistered", STATES, TRANSITIONS)
REDUCER: FsmReducer[Envelope] = FsmReducer(
    MACHINE,
    trigger_of=_trigger_of,
    sequence_of=_sequence_of,
    actions={name: _builder(intent_type) for name, intent_type in INTENT_TYPES.items()},
)

# The floor's table: what a hand-written reducer would keep.
FLOOR_TABLE = {
    (t.from_state, t.trigger): (t.to_state, INTENT_TYPES[t.actions[0]])
    for t in TRANSITIONS
    if t.from_state != "*"
    and t.priority
    == max(
        u.priority for u in TRANSITIONS if (u.from_state, u.trigger) == (t.from_state, t.trigger)
    )
}

ROOT = UUID("9f1b2c3d-4e5f-4a6b-8c7d-0e1f2a3b4c5d")
NOW = datetime(2025, 1, 1, tzinfo=UTC)


def _pairs() -> list[tuple[FsmState, Envelope]]:
    """Guarded transitions, each building one intent; every event has a fresh id."""
    steps: list[tuple[str, str, Mapping[str, Any]]] = [
        ("unregistered", "introspected", {}),
        ("pending_registration", "registered", {}),
        ("awaiting_ack", "acked", {}),
        ("active", "heartbeat", {}),
        ("awaiting_ack", "ack_timeout", {"ack_timeouts": 1}),
        ("ack_timed_out", "acked", {}),
        ("accepted", "acked", {}),
    ]
    pairs = []
    for i in range(1000):
        name, trigger, data = steps[i % len(steps)]
        state = FsmState(name, i, 0, data)
        event = Envelope(
            envelope_id=derive_id(ROOT, f"event:{i}"),
            topic=f"onex.evt.platform.{trigger.replace('_', '-')}.v1",
            event_type=f"platform.{trigger}",
            payload={
                "node_id": "node-7",
                "sequence": i + 1,
                "consul_ok": True,
                "postgres_ok": True,
            },
            correlation_id=ROOT,
            entity_id="node-7",
            emitted_at=NOW,
        )
        pairs.append((state, event))
    return pairs


PAIRS = _pairs()


def _check() -> None:
    """The subject and the floor agree on every pair before anything is timed."""
    for state, event in PAIRS:
        step = REDUCER(state, event)
        trigger = TRIGGERS[event.event_type]
        target, intent_type = FLOOR_TABLE[(state.name, trigger)]
        assert step.state.name == target, (state, trigger, step)
        assert len(step.intents) == 1
        assert step.intents[0].intent_id == intent_id_for(event.envelope_id, intent_type, 0)


def _subject(n: int) -> None:
    reducer = REDUCER
    for state, event in islice(cycle(PAIRS), n):
        reducer(state, event)


def _floor(n: int) -> None:
    table = FLOOR_TABLE
    triggers = TRIGGERS
    for state, event in islice(cycle(PAIRS), n):
        sequence = event.payload["sequence"]
        if sequence <= state.sequence:
            continue
        target, intent_type = table[(state.name, triggers[event.event_type])]
        FsmState(target, sequence, state.attempt, state.data)
        Intent(
            intent_type=intent_type,
            target=TARGET,
            payload=event.payload,
            intent_id=intent_id_for(event.envelope_id, intent_type, 0),
            correlation_id=event.correlation_id,
        )


def _bare_fire(n: int) -> None:
    machine = MACHINE
    data = {"node_id": "node-7", "consul_ok": True}
    for _ in range(n):
        fire(machine, "active", "heartbeat", data)


def _bare_floor(n: int) -> None:
    table = FLOOR_TABLE
    data = {"node_id": "node-7", "consul_ok": True}
    for _ in range(n):
        if "node_id" in data:
            table[("active", "heartbeat")]


def run() -> list[Figure]:
    _check()
    rate, floor_rate = compare(_subject, _floor, N)
    fire_rate, bare_rate = compare(_bare_fire, _bare_floor, N * 5)
    return [
        Figure(
            "FsmReducer step: guarded transition + 1 intent "
            "(for scale: transitions 0.9.3 ≈ 94,000/s, python-statemachine 3.2 ≈ 7,600/s)",
            rate,
            "dict lookup + FsmState + Intent",
            floor_rate,
            min_rate=400_000,
            min_ratio=0.5,
        ),
        Figure(
            "bare fire() with one guard",
            fire_rate,
            "dict lookup + key test",
            bare_rate,
        ),
    ]
