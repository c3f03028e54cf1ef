"""Machines: structural validation with paths, and fire() as a pure table lookup."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from onex_core.conditions import parse_condition
from onex_core.errors import ContractError, MachineError, Problem
from onex_core.fsm import (
    EMPTY,
    WILDCARD,
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

T = TransitionSpec


def door() -> Machine:
    """A small machine with entry/exit actions, guards, priorities and a wildcard."""
    return build_machine(
        "door",
        "closed",
        [
            StateSpec("closed", entry_actions=("log_closed",), exit_actions=("unlatch",)),
            StateSpec("open", entry_actions=("log_open",), exit_actions=("check_clear",)),
            StateSpec("locked", entry_actions=("beep",)),
            StateSpec("broken", terminal=True, entry_actions=("alarm",)),
        ],
        [
            T("closed", "open", "push", actions=("swing",)),
            T(
                "closed",
                "locked",
                "lock",
                priority=1,
                conditions=(GuardSpec("key == brass", name="right key"),),
                actions=("turn",),
            ),
            T(
                "closed",
                "closed",
                "lock",
                conditions=(
                    GuardSpec("key exists"),
                    GuardSpec("polite is_true", required=False),
                ),
                actions=("jiggle",),
            ),
            T("open", "closed", "push", actions=("swing",), name="shut"),
            T("locked", "closed", "unlock", conditions=(GuardSpec("key == brass"),)),
            T("*", "broken", "kick", actions=("crack",)),
            T("*", "closed", "push", priority=5),
        ],
    )


# --------------------------------------------------------------------------- the compiled machine


def test_a_machine_keeps_its_declaration() -> None:
    machine = door()
    assert machine.name == "door"
    assert machine.initial == "closed"
    assert machine.states == ("closed", "open", "locked", "broken")
    assert machine.terminal_states == frozenset({"broken"})
    assert machine.triggers == ("push", "lock", "unlock", "kick")
    assert [t.name for t in machine.transitions] == [
        "closed--push-->open",
        "closed--lock-->locked",
        "closed--lock-->closed",
        "shut",
        "locked--unlock-->closed",
        "*--kick-->broken",
        "*--push-->closed",
    ]
    assert machine.spec("locked").entry_actions == ("beep",)
    with pytest.raises(KeyError):
        machine.spec("ajar")


def test_equal_declarations_build_equal_machines() -> None:
    assert door() == door()
    assert hash(door()) == hash(door())
    with pytest.raises(dataclasses.FrozenInstanceError):
        door().initial = "open"  # type: ignore[misc]


def test_candidates_are_exact_by_priority_then_wildcards_by_priority() -> None:
    machine = door()
    assert [t.name for t in machine.candidates("closed", "lock")] == [
        "closed--lock-->locked",
        "closed--lock-->closed",
    ]
    # The exact transition comes first although the wildcard has the higher priority.
    assert [t.name for t in machine.candidates("closed", "push")] == [
        "closed--push-->open",
        "*--push-->closed",
    ]
    assert [t.name for t in machine.candidates("locked", "push")] == ["*--push-->closed"]
    assert machine.candidates("broken", "kick") == ()
    assert machine.candidates("ajar", "push") == ()
    assert machine.candidates("open", "lock") == ()


# --------------------------------------------------------------------------- fire


def test_fire_returns_the_target_and_actions_exit_then_transition_then_entry() -> None:
    result = fire(door(), "closed", "push")
    assert result == Fired(
        source="closed",
        target="open",
        trigger="push",
        transition="closed--push-->open",
        actions=("unlatch", "swing", "log_open"),
    )
    assert result.ok
    assert result.failed_advisories == ()


def test_a_self_transition_runs_exit_and_entry_actions() -> None:
    result = fire(door(), "closed", "lock", {"key": "iron"})
    assert result.ok
    assert (result.source, result.target) == ("closed", "closed")
    assert result.actions == ("unlatch", "jiggle", "log_closed")


def test_priority_decides_and_a_failing_guard_falls_through_to_the_next_candidate() -> None:
    machine = door()
    first = fire(machine, "closed", "lock", {"key": "brass"})
    assert first.ok
    assert first.target == "locked"
    fallback = fire(machine, "closed", "lock", {"key": "iron"})
    assert fallback.ok
    assert fallback.target == "closed"


def test_priority_not_declaration_order_decides() -> None:
    machine = build_machine(
        "order",
        "a",
        [StateSpec("a"), StateSpec("b"), StateSpec("c")],
        [T("a", "b", "go", priority=0), T("a", "c", "go", priority=2), T("a", "a", "go", 1)],
    )
    assert [t.target for t in machine.candidates("a", "go")] == ["c", "a", "b"]
    assert fire(machine, "a", "go") == fire(machine, "a", "go", {"any": "data"})
    assert fire(machine, "a", "go").target == "c"  # type: ignore[union-attr]


def test_wildcards_leave_every_non_terminal_state() -> None:
    machine = door()
    for state in ("closed", "open", "locked"):
        result = fire(machine, state, "kick")
        assert result.ok
        assert result.source == state
        assert result.target == "broken"
        assert result.transition == "*--kick-->broken"
    assert fire(machine, "open", "push").transition == "shut"  # type: ignore[union-attr]


def test_a_guard_rejection_names_every_failed_required_guard() -> None:
    machine = door()
    result = fire(machine, "closed", "lock", {})
    assert result == Rejected(
        "closed", "lock", RejectReason.GUARD_FAILED, ("right key", "key exists")
    )
    assert not result.ok
    assert result.message == (
        "trigger 'lock' in state 'closed' blocked by failed guards: right key, key exists"
    )


def test_a_guard_rejection_carries_the_declared_messages_of_the_failed_guards() -> None:
    machine = build_machine(
        "m",
        "a",
        [StateSpec("a"), StateSpec("b")],
        [
            T(
                "a",
                "b",
                "go",
                priority=1,
                conditions=(
                    GuardSpec("x exists", message="x is missing"),
                    GuardSpec("y exists"),
                    GuardSpec("z exists", required=False, message="advisory, never reported"),
                ),
            ),
            T(
                "a",
                "b",
                "go",
                conditions=(
                    GuardSpec("x exists", message="x is missing"),
                    GuardSpec("w == 1"),
                ),
            ),
        ],
    )
    result = fire(machine, "a", "go", {})
    assert isinstance(result, Rejected)
    assert result.failed_guards == ("x exists", "y exists", "w == 1")
    assert result.failed_messages == ("x is missing",)  # once, though it failed in both
    assert result.message == (
        "trigger 'go' in state 'a' blocked: x is missing "
        "(failed guards: x exists, y exists, w == 1)"
    )
    no_message = fire(machine, "a", "go", {"x": 1, "w": 0})
    assert isinstance(no_message, Rejected)
    assert no_message.failed_messages == ()
    assert (
        no_message.message == "trigger 'go' in state 'a' blocked by failed guards: y exists, w == 1"
    )


def test_advisory_guards_are_reported_and_never_block() -> None:
    machine = door()
    impolite = fire(machine, "closed", "lock", {"key": "iron"})
    assert impolite.ok
    assert impolite.failed_advisories == ("polite is_true",)
    polite = fire(machine, "closed", "lock", {"key": "iron", "polite": True})
    assert polite.ok
    assert polite.failed_advisories == ()


@pytest.mark.parametrize(
    ("state", "trigger", "reason", "message"),
    [
        (
            "ajar",
            "push",
            RejectReason.UNKNOWN_STATE,
            "unknown state 'ajar'; trigger 'push' ignored",
        ),
        (
            "broken",
            "kick",
            RejectReason.TERMINAL_STATE,
            "state 'broken' is terminal; trigger 'kick' ignored",
        ),
        (
            "broken",
            "push",
            RejectReason.TERMINAL_STATE,
            "state 'broken' is terminal; trigger 'push' ignored",
        ),
        (
            "open",
            "lock",
            RejectReason.NO_TRANSITION,
            "no transition from state 'open' on trigger 'lock'",
        ),
        (
            "open",
            "fly",
            RejectReason.NO_TRANSITION,
            "no transition from state 'open' on trigger 'fly'",
        ),
    ],
)
def test_rejections_say_why(state: str, trigger: str, reason: RejectReason, message: str) -> None:
    result = fire(door(), state, trigger, {"key": "brass"})
    assert result == Rejected(state, trigger, reason)
    assert result.message == message
    assert reason.value == reason  # a StrEnum: logs and JSON read it as text


@pytest.mark.parametrize(
    ("state", "trigger"),
    [(["closed"], "push"), ("closed", {"push": 1}), (None, None), (3, "push"), ("closed", 3)],
)
def test_fire_never_raises_on_a_bad_state_or_trigger(state: Any, trigger: Any) -> None:
    result = fire(door(), state, trigger)
    assert isinstance(result, Rejected)
    assert isinstance(result.message, str)


@pytest.mark.parametrize(
    ("data", "ok"),
    [
        (None, False),
        ([1, 2], False),
        ("key", False),
        ({"key": ["brass"]}, True),
        ({"key": 1}, True),
    ],
)
def test_fire_never_raises_on_bad_guard_data(data: Any, ok: bool) -> None:
    result = fire(door(), "closed", "lock", data)
    assert result.ok is ok


def test_fire_leaves_machine_and_data_untouched() -> None:
    machine = door()
    data = {"key": "iron"}
    fire(machine, "closed", "lock", data)
    fire(machine, "closed", "lock", {})
    fire(machine, "broken", "kick", data)
    assert data == {"key": "iron"}
    assert machine == door()


def test_the_same_question_gets_an_equal_answer() -> None:
    machine = door()
    for state in (*machine.states, "ajar"):
        for trigger in (*machine.triggers, "fly"):
            for data in (EMPTY, {"key": "brass"}, {"key": "iron", "polite": True}):
                assert fire(machine, state, trigger, data) == fire(door(), state, trigger, data)


# --------------------------------------------------------------------------- validation


def problems_of(*args: Any) -> tuple[Problem, ...]:
    with pytest.raises(MachineError) as caught:
        build_machine(*args)
    assert isinstance(caught.value, ContractError)
    return caught.value.problems


def paths(problems: Sequence[Problem]) -> list[tuple[str | int, ...]]:
    return [p.path for p in problems]


S = StateSpec
OK_STATES = [S("a"), S("b"), S("z", terminal=True)]
OK_TRANSITIONS = [T("a", "b", "go"), T("b", "z", "end")]


def test_the_reference_machine_is_valid() -> None:
    build_machine("m", "a", OK_STATES, OK_TRANSITIONS)


@pytest.mark.parametrize(
    ("name", "initial", "states", "transitions", "path", "message"),
    [
        ("", "a", OK_STATES, OK_TRANSITIONS, ("name",), "machine name must be a non-empty"),
        ("m", "q", OK_STATES, OK_TRANSITIONS, ("initial",), "initial state 'q' is not a declared"),
        ("m", "", OK_STATES, OK_TRANSITIONS, ("initial",), "initial state '' is not"),
        ("m", "a", [], [], ("states",), "at least one state"),
        (
            "m",
            "a",
            [*OK_STATES, S("b")],
            OK_TRANSITIONS,
            ("states", 3, "name"),
            "duplicate state 'b'; first declared as states[1]",
        ),
        ("m", "a", [*OK_STATES, S(" ")], OK_TRANSITIONS, ("states", 3, "name"), "non-empty"),
        ("m", "a", [*OK_STATES, S("*")], OK_TRANSITIONS, ("states", 3, "name"), "reserved"),
        (
            "m",
            "a",
            [*OK_STATES, S("orphan")],
            OK_TRANSITIONS,
            ("states", 3),
            "state 'orphan' is unreachable from initial state 'a'",
        ),
        (
            "m",
            "a",
            [S("a", entry_actions=("",)), *OK_STATES[1:]],
            OK_TRANSITIONS,
            ("states", 0, "entry_actions", 0),
            "action name must be a non-empty",
        ),
        (
            "m",
            "a",
            [S("a", exit_actions=("ok", "")), *OK_STATES[1:]],
            OK_TRANSITIONS,
            ("states", 0, "exit_actions", 1),
            "action name",
        ),
        (
            "m",
            "a",
            [S("a", timeout_ms=0), *OK_STATES[1:]],
            OK_TRANSITIONS,
            ("states", 0, "timeout_ms"),
            "positive integer",
        ),
        (
            "m",
            "a",
            OK_STATES,
            [*OK_TRANSITIONS, T("a", "actve", "go2")],
            ("transitions", 2, "to_state"),
            "to_state 'actve' is not a declared state",
        ),
        (
            "m",
            "a",
            OK_STATES,
            [*OK_TRANSITIONS, T("q", "b", "go2")],
            ("transitions", 2, "from_state"),
            "from_state 'q' is not a declared state",
        ),
        (
            "m",
            "a",
            OK_STATES,
            [*OK_TRANSITIONS, T("a", "*", "go2")],
            ("transitions", 2, "to_state"),
            "to_state '*' is not",
        ),
        (
            "m",
            "a",
            OK_STATES,
            [*OK_TRANSITIONS, T("z", "a", "again")],
            ("transitions", 2, "from_state"),
            "transition out of terminal state 'z'; terminal states are final",
        ),
        (
            "m",
            "a",
            OK_STATES,
            [*OK_TRANSITIONS, T("a", "z", "go")],
            ("transitions", 2),
            "same from_state 'a', trigger 'go' and priority 0 as transitions[0]",
        ),
        (
            "m",
            "a",
            OK_STATES,
            [*OK_TRANSITIONS, T("*", "a", "reset"), T("*", "b", "reset")],
            ("transitions", 3),
            "as transitions[2]: which one fires is ambiguous",
        ),
        (
            "m",
            "a",
            OK_STATES,
            [*OK_TRANSITIONS, T("a", "b", "")],
            ("transitions", 2, "trigger"),
            "trigger must be a non-empty",
        ),
        (
            "m",
            "a",
            OK_STATES,
            [*OK_TRANSITIONS, T("a", "b", "go2", name="")],
            ("transitions", 2, "name"),
            "transition name must be a non-empty string when given",
        ),
        (
            "m",
            "a",
            OK_STATES,
            [T("a", "b", "go", name="n"), T("b", "z", "end", name="n")],
            ("transitions", 1, "name"),
            "duplicate transition name 'n'; first used by transitions[0]",
        ),
        (
            "m",
            "a",
            OK_STATES,
            [*OK_TRANSITIONS, T("a", "b", "go2", conditions=(GuardSpec("x = 1"),))],
            ("transitions", 2, "conditions", 0),
            "unknown operator '='; did you mean ==?",
        ),
        (
            "m",
            "a",
            OK_STATES,
            [*OK_TRANSITIONS, T("a", "b", "go2", conditions=(GuardSpec("x exists", name=""),))],
            ("transitions", 2, "conditions", 0, "name"),
            "guard name must be a non-empty",
        ),
        (
            "m",
            "a",
            OK_STATES,
            [*OK_TRANSITIONS, T("a", "b", "go2", conditions=(GuardSpec("x exists", message=" "),))],
            ("transitions", 2, "conditions", 0, "message"),
            "guard message must be a non-empty",
        ),
        (
            "m",
            "a",
            OK_STATES,
            [*OK_TRANSITIONS, T("a", "b", "go2", actions=("",))],
            ("transitions", 2, "actions", 0),
            "action name must be a non-empty",
        ),
        (
            "m",
            "a",
            OK_STATES,
            [*OK_TRANSITIONS, T("a", "b", "go2", priority=True)],
            ("transitions", 2, "priority"),
            "priority must be an integer",
        ),
    ],
)
def test_each_structural_problem_is_reported_with_its_path(
    name: str,
    initial: str,
    states: list[StateSpec],
    transitions: list[TransitionSpec],
    path: tuple[str | int, ...],
    message: str,
) -> None:
    problems = problems_of(name, initial, states, transitions)
    matching = [p for p in problems if p.path == path]
    assert matching, paths(problems)
    assert any(message in p.message for p in matching), [p.message for p in matching]


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(MachineError) as caught:
        build_machine(
            "messy",
            "nowhere",
            [S("a"), S("a"), S("z", terminal=True), S("lost")],
            [
                T("a", "missing", "go"),
                T("z", "a", "back"),
                T("a", "z", "", conditions=(GuardSpec("x ~ 1"), GuardSpec("_y exists"))),
                T("a", "z", "end"),
                T("a", "a", "end"),
            ],
        )
    error = caught.value
    assert error.machine == "messy"
    assert paths(error.problems) == [
        ("states", 1, "name"),
        ("initial",),
        ("transitions", 0, "to_state"),
        ("transitions", 1, "from_state"),
        ("transitions", 2, "trigger"),
        ("transitions", 2, "conditions", 0),
        ("transitions", 2, "conditions", 1),
        ("transitions", 4),
    ]
    text = str(error)
    assert text.startswith("state machine 'messy': states[1].name: duplicate state 'a'")
    assert "transitions[2].conditions[1]: guard '_y exists'" in text


def test_unreachable_states_are_found_breadth_first_with_wildcards_leaving_non_terminals() -> None:
    states = [S("a"), S("b"), S("end", terminal=True), S("via_wildcard"), S("island")]
    transitions = [
        T("a", "b", "go"),
        T("b", "end", "stop"),
        T("*", "via_wildcard", "jump"),
        T("island", "a", "back"),
    ]
    problems = problems_of("m", "a", states, transitions)
    assert [(p.path, p.message) for p in problems] == [
        (("states", 4), "state 'island' is unreachable from initial state 'a'")
    ]


def test_a_wildcard_does_not_leave_a_terminal_initial_state() -> None:
    problems = problems_of("m", "done", [S("done", terminal=True), S("x")], [T("*", "x", "go")])
    assert paths(problems) == [("states", 1)]


# --------------------------------------------------------------------------- properties

TRIGGERS = ("go", "stop", "retry", "reset")
GUARDS = ("x == 1", "x > 1", "y is_true", "z exists", "x in [1, 2]", "y is_false", "z not_exists")
ACTIONS = ("a1", "a2", "a3")


@st.composite
def machine_specs(draw: st.DrawFn) -> tuple[list[StateSpec], list[TransitionSpec]]:
    """A valid machine: every state reachable from s0, no transition out of a terminal state,
    no ambiguous (from_state, trigger, priority)."""
    count = draw(st.integers(1, 6))
    actions = st.lists(st.sampled_from(ACTIONS), max_size=2).map(tuple)
    terminal = [False] + [draw(st.booleans()) for _ in range(count - 1)]
    states = [
        StateSpec(
            f"s{i}", terminal=terminal[i], entry_actions=draw(actions), exit_actions=draw(actions)
        )
        for i in range(count)
    ]
    guards = st.lists(st.builds(GuardSpec, st.sampled_from(GUARDS), st.booleans()), max_size=2).map(
        tuple
    )
    transitions: list[TransitionSpec] = []
    keys: set[tuple[str, str, int]] = set()

    def add(source: str, target: str) -> bool:
        trigger = draw(st.sampled_from(TRIGGERS))
        priority = draw(st.integers(0, 2))
        if (source, trigger, priority) in keys:
            return False
        keys.add((source, trigger, priority))
        transitions.append(T(source, target, trigger, priority, draw(guards), draw(actions)))
        return True

    for i in range(1, count):  # a spanning tree, so nothing is unreachable
        parent = draw(st.sampled_from([j for j in range(i) if not terminal[j]]))
        if not add(f"s{parent}", f"s{i}"):
            free = next(
                (trigger, priority)
                for trigger in TRIGGERS
                for priority in range(3)
                if (f"s{parent}", trigger, priority) not in keys
            )
            keys.add((f"s{parent}", *free))
            transitions.append(T(f"s{parent}", f"s{i}", *free))
    for _ in range(draw(st.integers(0, 6))):
        sources = [f"s{j}" for j in range(count) if not terminal[j]] + [WILDCARD]
        add(draw(st.sampled_from(sources)), f"s{draw(st.integers(0, count - 1))}")
    return states, transitions


guard_data = st.fixed_dictionaries(
    {},
    optional={
        "x": st.sampled_from([0, 1, 2, 3, "1", True]),
        "y": st.sampled_from([True, False, 1, None]),
        "z": st.sampled_from([None, 0, "z"]),
    },
)


def oracle(
    states: list[StateSpec],
    transitions: list[TransitionSpec],
    state: str,
    trigger: str,
    data: dict[str, Any],
) -> Fired | Rejected:
    """fire(), written again from the specs, as plainly as possible."""
    specs = {s.name: s for s in states}
    if state not in specs:
        return Rejected(state, trigger, RejectReason.UNKNOWN_STATE)
    if specs[state].terminal:
        return Rejected(state, trigger, RejectReason.TERMINAL_STATE)

    def by_priority(source: str) -> list[TransitionSpec]:
        found = [t for t in transitions if t.from_state == source and t.trigger == trigger]
        return sorted(found, key=lambda t: -t.priority)  # stable: declaration order on ties

    candidates = by_priority(state) + by_priority(WILDCARD)
    if not candidates:
        return Rejected(state, trigger, RejectReason.NO_TRANSITION)
    failed: list[str] = []
    for t in candidates:
        required = [g for g in t.conditions if g.required]
        failing = [
            g.expression for g in required if not parse_condition(g.expression).evaluate(data)
        ]
        if not failing:
            advisories = tuple(
                g.expression
                for g in t.conditions
                if not g.required and not parse_condition(g.expression).evaluate(data)
            )
            return Fired(
                source=state,
                target=t.to_state,
                trigger=trigger,
                transition=t.name or f"{t.from_state}--{trigger}-->{t.to_state}",
                actions=specs[state].exit_actions + t.actions + specs[t.to_state].entry_actions,
                failed_advisories=advisories,
            )
        for name in failing:
            if name not in failed:
                failed.append(name)
    return Rejected(state, trigger, RejectReason.GUARD_FAILED, tuple(failed))


@settings(max_examples=150, deadline=None)
@given(machine_specs(), st.lists(guard_data, min_size=1, max_size=3))
def test_fire_follows_the_table_or_rejects_and_never_raises(
    spec: tuple[list[StateSpec], list[TransitionSpec]], datas: list[dict[str, Any]]
) -> None:
    states, transitions = spec
    machine = build_machine("generated", "s0", states, transitions)
    for state in (*machine.states, "nowhere"):
        for trigger in (*TRIGGERS, "unknown"):
            for data in datas:
                assert fire(machine, state, trigger, data) == oracle(
                    states, transitions, state, trigger, data
                )


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.builds(
            StateSpec,
            st.sampled_from(["a", "b", "c", "", "*"]),
            st.booleans(),
            st.lists(st.sampled_from(["x", ""]), max_size=1).map(tuple),
        ),
        max_size=4,
    ),
    st.lists(
        st.builds(
            TransitionSpec,
            st.sampled_from(["a", "b", "c", "*", "q"]),
            st.sampled_from(["a", "b", "c", "*", "q"]),
            st.sampled_from(["go", "", "stop"]),
            st.integers(0, 1),
            st.lists(
                st.builds(GuardSpec, st.sampled_from(["x == 1", "x = 1", "_x exists"])), max_size=1
            ).map(tuple),
        ),
        max_size=5,
    ),
    st.sampled_from(["a", "b", "q", ""]),
)
def test_building_any_machine_gives_a_machine_or_one_machine_error(
    states: list[StateSpec], transitions: list[TransitionSpec], initial: str
) -> None:
    problems: tuple[Problem, ...] = ()
    try:
        machine = build_machine("any", initial, states, transitions)
    except MachineError as error:
        problems = error.problems
    else:
        assert machine.initial == initial
        for state in machine.states:
            for trigger in machine.triggers:
                assert isinstance(fire(machine, state, trigger, {}), Fired | Rejected)
        return
    assert problems
    assert all(isinstance(p, Problem) and p.path for p in problems)
