"""Reducers: FsmReducer steps, duplicates, restarts, builders, fold, and agreement with fire()."""

from __future__ import annotations

import copy
import pickle
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from onex_core.errors import ContractError, UsageError
from onex_core.fsm import (
    EMPTY,
    Fired,
    GuardSpec,
    Machine,
    Rejected,
    RejectReason,
    StateSpec,
    TransitionSpec,
    build_machine,
    fire,
)
from onex_core.intents import Intent, intent_id_for
from onex_core.messages import Envelope, derive_id
from onex_core.reducers import ActionContext, FsmReducer, FsmState, Reduction, fold
from tests.core.test_fsm import ACTIONS, TRIGGERS, guard_data, machine_specs

ROOT = UUID("0f8fad5b-d9cb-469f-a165-70867728950e")
NOW = datetime(2025, 1, 1, tzinfo=UTC)
T = TransitionSpec


def node_machine() -> Machine:
    return build_machine(
        "node",
        "idle",
        [
            StateSpec("idle"),
            StateSpec("pending", exit_actions=("stop_timer",)),
            StateSpec("active", entry_actions=("announce",)),
            StateSpec("expired", terminal=True),
        ],
        [
            T("idle", "pending", "introspected", 0, (GuardSpec("node_id exists"),), ("register",)),
            T("pending", "active", "registered", 0, (), ("activate",)),
            T("pending", "pending", "timeout", 1, (GuardSpec("state.timeouts < 2"),), ("retry",)),
            T("pending", "expired", "timeout", 0, (), ("give_up",)),
            T("active", "active", "heartbeat", 0, (GuardSpec("node_id exists"),), ("extend",)),
            T("active", "expired", "missed", 0, (), ("expire",)),
        ],
    )


ALL_ACTIONS = (
    "register",
    "stop_timer",
    "activate",
    "announce",
    "retry",
    "give_up",
    "extend",
    "expire",
)


def builder(ctx: ActionContext[Envelope]) -> Intent:
    intent_type = f"test.{ctx.action}"
    return Intent(
        intent_type=intent_type,
        target=f"node://nodes/{ctx.event.entity_id}",
        payload={"state": ctx.after.name},
        intent_id=intent_id_for(ctx.event.envelope_id, intent_type, ctx.index),
        correlation_id=ctx.event.correlation_id,
    )


def trigger_of(event: Envelope) -> str | None:
    prefix, _, name = event.event_type.partition(".")
    return name if prefix == "node" else None


def sequence_of(event: Envelope) -> int:
    sequence: int = event.payload["seq"]
    return sequence


def count_timeouts(before: FsmState, event: Envelope, fired: Fired) -> Mapping[str, Any]:
    if fired.trigger == "timeout":
        return {**before.data, "timeouts": before.data.get("timeouts", 0) + 1}
    return before.data


def reducer(**overrides: Any) -> FsmReducer[Envelope]:
    options: dict[str, Any] = {
        "trigger_of": trigger_of,
        "sequence_of": sequence_of,
        "actions": dict.fromkeys(ALL_ACTIONS, builder),
        "update": count_timeouts,
    }
    options.update(overrides)
    return FsmReducer(node_machine(), **options)


def event(seq: int, name: str, entity: str = "n1", **payload: Any) -> Envelope:
    return Envelope(
        envelope_id=derive_id(ROOT, f"{name}:{seq}"),
        topic="onex.evt.platform.node-event.v1",
        event_type=f"node.{name}",
        payload={"seq": seq, **payload},
        correlation_id=ROOT,
        entity_id=entity,
        emitted_at=NOW,
    )


def intent_types(reduction: Reduction[Any]) -> list[str]:
    return [intent.intent_type for intent in reduction.intents]


# --------------------------------------------------------------------------- one step


def test_a_step_moves_the_state_and_builds_intents_with_derived_ids() -> None:
    step = reducer()(FsmState("idle"), event(1, "introspected", node_id="n1"))
    assert step.state == FsmState("pending", 1, 0, EMPTY)
    assert step.rejected is None
    e = event(1, "introspected", node_id="n1")
    assert step.intents == (
        Intent(
            intent_type="test.register",
            target="node://nodes/n1",
            payload={"state": "pending"},
            intent_id=intent_id_for(e.envelope_id, "test.register", 0),
            correlation_id=ROOT,
        ),
    )


def test_intents_follow_exit_then_transition_then_entry_with_increasing_indexes() -> None:
    e = event(2, "registered")
    step = reducer()(FsmState("pending", 1), e)
    assert step.state.name == "active"
    assert intent_types(step) == ["test.stop_timer", "test.activate", "test.announce"]
    assert [i.intent_id for i in step.intents] == [
        intent_id_for(e.envelope_id, "test.stop_timer", 0),
        intent_id_for(e.envelope_id, "test.activate", 1),
        intent_id_for(e.envelope_id, "test.announce", 2),
    ]


def test_builders_see_the_step() -> None:
    seen: list[ActionContext[Envelope]] = []

    def spy(ctx: ActionContext[Envelope]) -> None:
        seen.append(ctx)

    before = FsmState("pending", 1)
    e = event(2, "registered")
    step = reducer(actions=dict.fromkeys(ALL_ACTIONS, spy))(before, e)
    assert step.intents == ()
    assert [(c.action, c.index) for c in seen] == [
        ("stop_timer", 0),
        ("activate", 0),
        ("announce", 0),
    ]
    for ctx in seen:
        assert ctx.event is e
        assert ctx.before is before
        assert ctx.after is step.state
        assert ctx.fired == fire(node_machine(), "pending", "registered")


@pytest.mark.parametrize("seq", [1, 0, -3])
def test_a_duplicate_or_late_event_returns_the_same_state_and_nothing_else(seq: int) -> None:
    state = FsmState("idle", 1)
    step = reducer()(state, event(seq, "introspected", node_id="n1"))
    assert step.state is state
    assert step.intents == ()
    assert step.rejected is None


def test_without_sequence_of_nothing_is_a_duplicate_and_the_sequence_stays() -> None:
    state = FsmState("active", 7)
    step = reducer(sequence_of=None)(state, event(1, "heartbeat", node_id="n1"))
    assert step.state == FsmState("active", 7)
    assert intent_types(step) == ["test.extend", "test.announce"]  # re-entered: entry runs


def test_an_event_for_another_machine_changes_nothing() -> None:
    state = FsmState("idle")
    other = Envelope(
        envelope_id=ROOT,
        topic="onex.evt.platform.other.v1",
        event_type="other.thing",
        payload={"seq": 9},
        correlation_id=ROOT,
        entity_id="n1",
        emitted_at=NOW,
    )
    step = reducer()(state, other)
    assert step.state is state
    assert step == Reduction(state)


@pytest.mark.parametrize(
    ("state", "name", "payload", "reason", "failed"),
    [
        (FsmState("idle"), "introspected", {}, RejectReason.GUARD_FAILED, ("node_id exists",)),
        (FsmState("idle"), "heartbeat", {}, RejectReason.NO_TRANSITION, ()),
        (FsmState("idle"), "nonsense", {}, RejectReason.NO_TRANSITION, ()),
        (FsmState("limbo"), "heartbeat", {}, RejectReason.UNKNOWN_STATE, ()),
        (FsmState("expired"), "introspected", {"node_id": 1}, RejectReason.TERMINAL_STATE, ()),
    ],
)
def test_a_rejected_event_leaves_the_state_untouched_and_says_why(
    state: FsmState,
    name: str,
    payload: dict[str, Any],
    reason: RejectReason,
    failed: tuple[str, ...],
) -> None:
    step = reducer()(state, event(1, name, **payload))
    assert step.state is state
    assert step.intents == ()
    assert step.rejected == Rejected(state.name, name, reason, failed)


# --------------------------------------------------------------------------- extended state


def test_update_and_state_guards_count_retries_until_giving_up() -> None:
    events = [event(1, "introspected", node_id="n1")] + [event(i, "timeout") for i in (2, 3, 4)]
    # A missing counter fails "state.timeouts < 2", so the count starts at zero.
    assert fold(reducer(), FsmState("idle"), events[:2]).state.name == "expired"
    result = fold(reducer(), FsmState("idle", data={"timeouts": 0}), events)
    assert result.state == FsmState("expired", 4, 0, {"timeouts": 3})
    assert intent_types(result) == [
        "test.register",
        "test.stop_timer",
        "test.retry",
        "test.stop_timer",
        "test.retry",
        "test.stop_timer",
        "test.give_up",
    ]


def test_the_default_guard_data_is_the_payload_plus_state() -> None:
    machine = build_machine(
        "view",
        "a",
        [StateSpec("a"), StateSpec("b")],
        [
            T("a", "b", "go", 0, (GuardSpec("state.flag is_true"), GuardSpec("n == 1"))),
            T("b", "a", "back"),
        ],
    )
    fsm: FsmReducer[Any] = FsmReducer(machine, trigger_of=lambda e: "go", actions={})
    flagged = FsmState("a", data={"flag": True})
    assert fsm(flagged, {"n": 1}).state.name == "b"  # a mapping event is its own payload
    assert fsm(flagged, {"n": 1, "state": {"flag": False}}).state.name == "b"  # state wins
    assert fsm(FsmState("a"), {"n": 1}).rejected is not None

    @dataclass
    class Carrier:
        payload: Mapping[str, Any]

    assert fsm(flagged, Carrier({"n": 1})).state.name == "b"
    no_payload = fsm(flagged, object()).rejected
    assert no_payload is not None
    assert no_payload.failed_guards == ("n == 1",)


def test_guard_data_can_be_replaced_and_is_only_asked_for_when_a_guard_needs_it() -> None:
    calls: list[str] = []

    def data_of(state: FsmState, e: Envelope) -> Mapping[str, Any]:
        calls.append(state.name)
        return {"node_id": "from guard_data", "state": {"timeouts": 0}}

    fsm = reducer(guard_data=data_of)
    assert fsm(FsmState("idle"), event(1, "introspected")).state.name == "pending"
    assert fsm(FsmState("pending"), event(2, "registered")).state.name == "active"  # no guard
    assert calls == ["idle"]


# --------------------------------------------------------------------------- restarts


def test_restart_on_brings_a_terminal_state_back_through_the_initial_state() -> None:
    expired = FsmState("expired", 4, 0, {"timeouts": 3})
    seen: list[ActionContext[Envelope]] = []

    def spy(ctx: ActionContext[Envelope]) -> Intent:
        seen.append(ctx)
        return builder(ctx)

    fsm = reducer(restart_on=frozenset({"introspected"}), actions=dict.fromkeys(ALL_ACTIONS, spy))
    step = fsm(expired, event(5, "introspected", node_id="n1"))
    assert step.state == FsmState("pending", 5, 1, {})
    assert intent_types(step) == ["test.register"]
    assert seen[0].before == FsmState("idle", 4, 1, EMPTY)
    assert seen[0].fired.source == "idle"


def test_a_restart_whose_guards_fail_leaves_the_terminal_state_alone() -> None:
    expired = FsmState("expired", 4)
    step = reducer(restart_on=frozenset({"introspected"}))(expired, event(5, "introspected"))
    assert step.state is expired
    assert step.rejected == Rejected(
        "idle", "introspected", RejectReason.GUARD_FAILED, ("node_id exists",)
    )


def test_restart_triggers_only_restart_from_terminal_states() -> None:
    fsm = reducer(restart_on=frozenset({"introspected"}))
    active = FsmState("active", 1)
    step = fsm(active, event(2, "introspected", node_id="n1"))
    assert step.state is active
    assert step.rejected == Rejected("active", "introspected", RejectReason.NO_TRANSITION)
    assert fsm(FsmState("expired"), event(2, "missed")).rejected == Rejected(
        "expired", "missed", RejectReason.TERMINAL_STATE
    )


# --------------------------------------------------------------------------- builders


def test_every_missing_builder_is_named_at_construction() -> None:
    with pytest.raises(ContractError) as caught:
        reducer(actions={"register": builder, "retry": builder})
    message = str(caught.value)
    assert message.startswith("reducer for machine 'node': no builder for action(s) ")
    for name in ("stop_timer", "activate", "announce", "give_up", "extend", "expire"):
        assert repr(name) in message
    assert "'register'" not in message
    reducer(actions={}, ignore_actions=frozenset(ALL_ACTIONS))


def test_restart_on_must_name_triggers_that_leave_the_initial_state() -> None:
    with pytest.raises(ContractError) as caught:
        reducer(restart_on=frozenset({"reborn", "heartbeat", "introspected"}))
    assert str(caught.value) == (
        "reducer for machine 'node': restart_on names trigger(s) that do not leave initial "
        "state 'idle': 'heartbeat', 'reborn'"
    )


def test_ignored_actions_build_nothing_even_when_a_builder_is_given() -> None:
    fsm = reducer(ignore_actions=frozenset({"stop_timer", "announce"}))
    step = fsm(FsmState("pending", 1), event(2, "registered"))
    assert intent_types(step) == ["test.activate"]
    assert step.intents[0].intent_id == intent_id_for(
        event(2, "registered").envelope_id, "test.activate", 0
    )


def test_builders_may_return_none_or_several_intents() -> None:
    def several(ctx: ActionContext[Envelope]) -> Iterator[Intent]:
        yield builder(ctx)
        yield builder(ctx._replace(index=ctx.index + 1))

    actions: dict[str, Any] = dict.fromkeys(ALL_ACTIONS, builder)
    actions["stop_timer"] = lambda ctx: None
    actions["activate"] = several
    step = reducer(actions=actions)(FsmState("pending", 1), event(2, "registered"))
    assert intent_types(step) == ["test.activate", "test.activate", "test.announce"]
    assert len({i.intent_id for i in step.intents}) == 3
    assert step.intents[2].intent_id == intent_id_for(
        event(2, "registered").envelope_id, "test.announce", 2
    )


@pytest.mark.parametrize(
    ("built", "message"),
    [
        ("test.register", "built a str, not an Intent"),
        (42, "built a int, not an Intent"),
        ([1], "built a int inside an iterable"),
    ],
)
def test_a_builder_returning_something_else_is_a_usage_error(built: Any, message: str) -> None:
    actions: dict[str, Any] = dict.fromkeys(ALL_ACTIONS, builder)
    actions["register"] = lambda ctx: built
    state = FsmState("idle")
    with pytest.raises(UsageError, match=message):
        reducer(actions=actions)(state, event(1, "introspected", node_id="n1"))
    assert state == FsmState("idle")


# --------------------------------------------------------------------------- values


def test_states_reductions_and_contexts_are_strict_immutable_values() -> None:
    state = FsmState("idle")
    assert state == FsmState(name="idle", sequence=-1, attempt=0, data=EMPTY)
    assert state != ("idle", -1, 0, EMPTY)
    assert state != ("idle", -1, 0, EMPTY)
    assert hash(state) == hash(FsmState("idle"))  # the default, empty data is hashable
    assert state._replace(attempt=2) == FsmState("idle", -1, 2)
    assert repr(state) == "FsmState(name='idle', sequence=-1, attempt=0, data={})"
    assert copy.deepcopy(state) == state
    assert pickle.loads(pickle.dumps(state)) == state
    with pytest.raises(AttributeError):
        state.name = "active"  # type: ignore[misc]
    reduction = Reduction(state)
    assert reduction == Reduction(state, (), None)
    assert reduction != (state, (), None)
    assert Reduction(FsmState("a")) != Reduction(FsmState("b"))
    with pytest.raises(AttributeError):
        reduction.state = state  # type: ignore[misc]
    fired = fire(node_machine(), "pending", "registered")
    assert isinstance(fired, Fired)
    ctx = ActionContext(1, state, state, fired, "x", 0)
    assert ctx.index == 0
    assert ctx != (1, state, state, fired, "x", 0)
    assert ctx == ActionContext(1, state, state, fired, "x", 0)


# --------------------------------------------------------------------------- fold


def test_fold_keeps_every_intent_in_order_and_the_last_rejection() -> None:
    events = [
        event(1, "introspected", node_id="n1"),
        event(2, "registered"),
        event(2, "registered"),  # duplicate: skipped
        event(3, "heartbeat", node_id="n1"),
        event(4, "introspected", node_id="n1"),  # no transition from active
    ]
    result = fold(reducer(), FsmState("idle"), events)
    assert result.state == FsmState("active", 3)
    assert intent_types(result) == [
        "test.register",
        "test.stop_timer",
        "test.activate",
        "test.announce",
        "test.extend",
        "test.announce",
    ]
    assert result.rejected == Rejected("active", "introspected", RejectReason.NO_TRANSITION)
    assert fold(reducer(), FsmState("idle"), events[:-1]).rejected is None


def test_fold_over_nothing_returns_the_start() -> None:
    start = FsmState("idle")
    result = fold(reducer(), start, [])
    assert result.state is start
    assert result == Reduction(start)


def test_redelivered_events_give_the_same_result_and_the_same_intent_ids() -> None:
    events = [event(1, "introspected", node_id="n1"), event(2, "registered"), event(3, "missed")]
    once = fold(reducer(), FsmState("idle"), events)
    with_redeliveries = fold(
        reducer(),
        FsmState("idle"),
        [events[0], events[0], events[1], events[0], events[2], events[1]],
    )
    assert with_redeliveries.state == once.state
    assert with_redeliveries.intents == once.intents


# --------------------------------------------------------------------------- properties


def generic_builder(ctx: ActionContext[Any]) -> Intent:
    intent_type = f"gen.{ctx.action}"
    return Intent(
        intent_type=intent_type,
        target="gen://thing/1",
        payload={"to": ctx.after.name},
        intent_id=intent_id_for(ROOT, intent_type, ctx.index),
        correlation_id=ROOT,
    )


events = st.lists(st.tuples(st.sampled_from((*TRIGGERS, "unknown")), guard_data), max_size=6).map(
    lambda pairs: [{"trigger": trigger, **data} for trigger, data in pairs]
)


def generated_reducer(machine: Machine) -> FsmReducer[Mapping[str, Any]]:
    return FsmReducer(
        machine,
        trigger_of=lambda e: e["trigger"],
        actions=dict.fromkeys(ACTIONS, generic_builder),
    )


@settings(max_examples=150, deadline=None)
@given(machine_specs(), events)
def test_each_reducer_step_is_what_fire_says(
    spec: tuple[list[StateSpec], list[TransitionSpec]], stream: list[dict[str, Any]]
) -> None:
    machine = build_machine("generated", "s0", *spec)
    step_of = generated_reducer(machine)
    state = FsmState("s0")
    for e in stream:
        expected = fire(machine, state.name, e["trigger"], e)
        step = step_of(state, e)
        if expected.ok:
            assert step.state == FsmState(expected.target, -1, 0, EMPTY)
            assert intent_types(step) == [f"gen.{action}" for action in expected.actions]
            assert step.rejected is None
        else:
            assert step.state is state
            assert step.intents == ()
            assert step.rejected == expected
        state = step.state


@settings(max_examples=150, deadline=None)
@given(machine_specs(), events, st.sampled_from(["s0", "s1", "nowhere"]))
def test_fold_is_deterministic(
    spec: tuple[list[StateSpec], list[TransitionSpec]], stream: list[dict[str, Any]], start: str
) -> None:
    machine = build_machine("generated", "s0", *spec)
    first = fold(generated_reducer(machine), FsmState(start), stream)
    again = fold(
        generated_reducer(build_machine("generated", "s0", *spec)), FsmState(start), stream
    )
    assert first == again
    step_of = generated_reducer(machine)
    state, intents = FsmState(start), ()
    for e in stream:
        step = step_of(state, e)
        state, intents = step.state, intents + step.intents
    assert (first.state, first.intents) == (state, intents)
