"""onex_contracts.testing: the strategies draw what they claim, and the checks catch broken
reducers."""

from __future__ import annotations

import itertools
import subprocess
import sys
import threading
import tomllib
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any
from uuid import UUID, uuid5

import pytest
from hypothesis import Phase, find, given, settings
from hypothesis import strategies as st

from onex_contracts import (
    REGISTRATION_CONTRACTS,
    LintReport,
    compile_machine,
    lint,
    load,
    parse,
)
from onex_contracts.schema import NodeContract
from onex_contracts.testing import (
    Event,
    any_triggers,
    check_deterministic,
    check_every_intent_has_an_effect,
    check_illegal_triggers_leave_state_untouched,
    check_terminal_states_are_final,
    clone,
    event_sequences,
    executors,
    invalid_sequences,
    payloads_breaking,
    payloads_satisfying,
    reducer_properties,
)
from onex_core.conditions import parse_condition
from onex_core.errors import UsageError
from onex_core.fsm import Machine, fire
from onex_core.intents import Intent, intent_id_for
from onex_core.reducers import ActionContext, FsmReducer, FsmState, Reduction

ROOT = Path(__file__).resolve().parents[2]

# A ticket machine with priorities, a wildcard, dotted fields and every guard operator.
TICKETS = """\
name: ticket_reducer
node_type: REDUCER_GENERIC
contract_version: {major: 1, minor: 0, patch: 0}
node_version: "1.0.0"
description: Support tickets, for testing the testing helpers.
state_machine:
  state_machine_name: tickets
  initial_state: open
  states:
    - state_name: open
    - state_name: triaged
    - state_name: escalated
    - state_name: assigned
    - {state_name: resolved, is_terminal: true}
    - {state_name: closed, is_terminal: true}
    - {state_name: spam, is_terminal: true}
  transitions:
    - from_state: open
      to_state: triaged
      trigger: triage
      priority: 1
      conditions:
        - expression: level in [1, 2, 3]
        - expression: reporter.email matches ^[a-z]{1,8}@example[.]org$
        - expression: labels min_length 1
        - expression: labels max_length 4
    - {from_state: open, to_state: spam, trigger: triage, priority: 0}
    - from_state: triaged
      to_state: escalated
      trigger: escalate
      conditions:
        - expression: severity >= 3
        - expression: severity < 10
        - expression: customer.tier == gold
    - from_state: triaged
      to_state: assigned
      trigger: assign
      conditions:
        - expression: assignee exists
        - expression: assignee != nobody
        - expression: team not_in [legacy, archive]
    - from_state: escalated
      to_state: assigned
      trigger: assign
      conditions:
        - expression: pager is_true
        - expression: minutes > 0
        - expression: minutes <= 30.5
    - from_state: assigned
      to_state: resolved
      trigger: resolve
      priority: 1
      conditions:
        - expression: resolution contains fixed
        - expression: duplicate_of not_exists
        - expression: reopened is_false
      actions:
        - {action_name: notify_reporter, action_type: intent_emission}
    - {from_state: assigned, to_state: escalated, trigger: resolve, priority: 0}
    - from_state: "*"
      to_state: closed
      trigger: close
      conditions:
        - expression: tags contains 7
        - expression: state.sla < 48
  terminal_states: [resolved, closed, spam]
intent_emission:
  enabled: true
  intents:
    - intent_type: tickets.notify
      target_pattern: "mail://reporter/{ticket_id}"
      action: notify_reporter
"""

NOTIFIER = """\
name: notifier_effect
node_type: EFFECT_GENERIC
contract_version: {major: 1, minor: 0, patch: 0}
node_version: "1.0.0"
description: Sends mail.
handler_routing:
  routing_strategy: operation_match
  handlers:
    - operation: tickets.notify
      handler: {name: Mailer}
      handler_id: effect.mailer
"""


def _machine(text: str) -> Machine:
    contract = parse(text, kind="node")
    assert isinstance(contract, NodeContract)
    return compile_machine(contract)


MACHINE = _machine(TICKETS)
REGISTRATION = compile_machine(
    load(REGISTRATION_CONTRACTS / "node_registration_reducer" / "contract.yaml")  # type: ignore[arg-type]
)
CAUSE = UUID("00000000-0000-4000-8000-0000000000c1")


def notify(ctx: ActionContext[Event]) -> Intent:
    return Intent(
        "tickets.notify",
        "mail://reporter/t-1",
        {"resolution": ctx.event.payload.get("resolution")},
        intent_id_for(CAUSE, "tickets.notify", ctx.index),
        CAUSE,
    )


# Drawn events fold directly: their payload is what the guards read.
REDUCER: FsmReducer[Event] = FsmReducer(
    MACHINE,
    trigger_of=lambda event: event.trigger,
    actions={"notify_reporter": notify},
    guard_data=lambda state, event: {**event.payload, "state": event.payload.get("state", {})},
)


def replay(machine: Machine, walk: tuple[Event, ...], start: str | None = None) -> None:
    """Every event is annotated with what fire() says, from the state the walk is in."""
    state = machine.initial if start is None else start
    for event in walk:
        assert event.before == state
        result = fire(machine, state, event.trigger, event.payload)
        assert result.ok == event.accepted
        if result.ok:
            assert event.after == result.target
            state = result.target


# --------------------------------------------------------------------------- packaging


def test_importing_onex_contracts_does_not_import_hypothesis() -> None:
    code = "import sys, onex_contracts, onex_core; sys.exit('hypothesis' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=False).returncode == 0


def test_without_hypothesis_the_import_error_names_the_extra() -> None:
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'hypothesis':\n"
        "            raise ImportError('blocked')\n"
        "sys.meta_path.insert(0, Block())\n"
        "import onex_contracts.testing\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert done.returncode != 0
    assert "pip install 'onex-workflows[testing]'" in done.stderr


def test_the_testing_extra_installs_hypothesis_and_is_part_of_all() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    extras = project["optional-dependencies"]
    assert any(spec.startswith("hypothesis") for spec in extras["testing"])
    assert "testing" in extras["all"][0]


# --------------------------------------------------------------------------- guard payloads

GUARDS = [
    "x == 5",
    "x equals 2.5",
    "x == true",
    "x == null",
    'x == "two words"',
    "x != 5",
    "x not_equals word",
    "x < 3",
    "x less_than -1.5",
    "x <= 3.5",
    "x > -2",
    "x greater_than_or_equal 0",
    'x < "m"',
    'x >= "m"',
    "x in [a, 2, true, null]",
    "x not_in [a, 2]",
    "x contains ab",
    "x contains 3",
    "x matches ^[A-Z]{2}[0-9]{3}$",
    "x matches .*",
    "x exists",
    "x is_present",
    "x not_exists",
    "x is_true",
    "x is_false",
    "x min_length 2",
    "x min_length 0",
    "x max_length 3",
    "x max_length 0",
    "a.b.c == 1",
    "a.b not_exists",
    "a.b exists",
    "a.b min_length 1",
]


@pytest.mark.parametrize("guard", GUARDS)
def test_payloads_satisfying_make_the_guard_true(guard: str) -> None:
    condition = parse_condition(guard)

    @settings(max_examples=40, deadline=None)
    @given(payloads_satisfying(guard))
    def holds(payload: dict[str, Any]) -> None:
        assert condition.evaluate(payload), payload

    holds()


@pytest.mark.parametrize("guard", GUARDS)
def test_payloads_breaking_make_the_guard_false(guard: str) -> None:
    condition = parse_condition(guard)

    @settings(max_examples=40, deadline=None)
    @given(payloads_breaking(guard))
    def fails(payload: dict[str, Any]) -> None:
        assert not condition.evaluate(payload), payload

    fails()


@pytest.mark.parametrize(
    ("guard", "found"),
    [
        ("x == 5", {"x": "5"}),  # the typed twin
        ("x is_true", {"x": 1}),
        ("x > 10", {"x": 10}),  # the boundary
        ("x min_length 3", {"x": ""}),
        ("a.b == 1", {"a": 0}),  # a parent that is not a mapping
        ("x not_exists", {"x": None}),
    ],
)
def test_breaking_payloads_include_present_values_not_only_missing_fields(
    guard: str, found: dict[str, Any]
) -> None:
    assert find(payloads_breaking(guard), lambda payload: payload == found) == found


def test_several_guards_are_satisfied_together_on_shared_and_nested_fields() -> None:
    guards = ["total > 0", "total <= 100", "items min_length 1", "items max_length 2"]
    guards += ["a exists", "a.b == 1", "x != 1", "x in [1, 2]"]
    conditions = [parse_condition(g) for g in guards]

    @settings(max_examples=60, deadline=None)
    @given(payloads_satisfying(*guards))
    def holds(payload: dict[str, Any]) -> None:
        assert all(c.evaluate(payload) for c in conditions), payload

    holds()


def test_breaking_one_guard_can_keep_the_others_and_a_base_payload() -> None:
    keep = ["items min_length 1", "currency in [EUR]"]
    base = st.fixed_dictionaries({"order_id": st.just("o-1"), "total": st.just(10)})

    @settings(max_examples=40, deadline=None)
    @given(payloads_breaking("total > 0", keep=keep, base=base))
    def breaks(payload: dict[str, Any]) -> None:
        assert not parse_condition("total > 0").evaluate(payload)
        assert all(parse_condition(g).evaluate(payload) for g in keep)
        assert payload["order_id"] == "o-1"

    breaks()


def test_guards_come_compiled_from_a_machine_or_as_text() -> None:
    guard = MACHINE.candidates("triaged", "escalate")[0].guards[2]
    assert guard.name == "customer.tier == gold"
    assert find(payloads_satisfying(guard), lambda p: True) == {"customer": {"tier": "gold"}}
    assert find(payloads_satisfying(guard.condition), lambda p: True) == {
        "customer": {"tier": "gold"}
    }


@pytest.mark.parametrize("bad", [(), ('x < ""',), (42,)])
def test_impossible_or_missing_guards_are_usage_errors(bad: tuple[Any, ...]) -> None:
    with pytest.raises(UsageError):
        payloads_satisfying(*bad)


# --------------------------------------------------------------------------- walks


@pytest.mark.parametrize("machine", [MACHINE, REGISTRATION], ids=["tickets", "registration"])
def test_valid_walks_are_accepted_step_by_step_by_fire(machine: Machine) -> None:
    @settings(max_examples=80, deadline=None)
    @given(event_sequences(machine, max_size=8))
    def accepted(walk: tuple[Event, ...]) -> None:
        assert all(event.accepted for event in walk)
        replay(machine, walk)
        assert len(walk) <= 8

    accepted()


# Derandomized, so these coverage claims are checked on the same examples every run.
COVERAGE = settings(max_examples=200, deadline=None, derandomize=True, database=None)


@pytest.mark.parametrize("machine", [MACHINE, REGISTRATION], ids=["tickets", "registration"])
def test_valid_walks_reach_every_state_including_low_priority_alternatives(
    machine: Machine,
) -> None:
    # reaching "spam" (tickets) or "rejected" (registration) needs the walk to break a guard of
    # the higher-priority transition for the same trigger
    reached = {machine.initial}

    @COVERAGE
    @given(event_sequences(machine, max_size=10))
    def collect(walk: tuple[Event, ...]) -> None:
        reached.update(event.after for event in walk if event.after is not None)

    collect()
    assert reached == set(machine.states)


def test_walks_start_where_asked_and_carry_the_base_payloads() -> None:
    base = {"triage": st.fixed_dictionaries({"ticket_id": st.just("t-1")})}

    @settings(max_examples=40, deadline=None)
    @given(event_sequences(MACHINE, start="triaged", min_size=1, max_size=4, payloads=base))
    def walks(walk: tuple[Event, ...]) -> None:
        assert walk[0].before == "triaged"
        replay(MACHINE, walk, start="triaged")

    walks()
    walk = find(event_sequences(MACHINE, payloads=base), lambda w: len(w) > 0)
    assert walk[0].trigger == "triage"
    assert walk[0].payload["ticket_id"] == "t-1"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"start": "nowhere"},
        {"min_size": 3, "max_size": 2},
        {"min_size": -1},
        {"payloads": {"triage": {"ticket_id": "t-1"}}},  # a payload, not a strategy of them
    ],
)
def test_bad_walk_arguments_are_usage_errors(kwargs: dict[str, Any]) -> None:
    with pytest.raises(UsageError):
        event_sequences(MACHINE, **kwargs)


@pytest.mark.parametrize("machine", [MACHINE, REGISTRATION], ids=["tickets", "registration"])
def test_invalid_walks_hold_a_refused_event_and_are_annotated_by_fire(machine: Machine) -> None:
    @settings(max_examples=80, deadline=None)
    @given(invalid_sequences(machine, max_size=8))
    def refused(walk: tuple[Event, ...]) -> None:
        assert any(not event.accepted for event in walk)
        replay(machine, walk)

    refused()


def test_invalid_walks_use_unknown_unmatched_and_guard_refused_triggers() -> None:
    kinds: set[str] = set()

    @COVERAGE
    @given(invalid_sequences(MACHINE, max_size=6))
    def collect(walk: tuple[Event, ...]) -> None:
        for event in walk:
            result = fire(MACHINE, event.before, event.trigger, event.payload)
            if result.ok:
                continue
            known = "known" if event.trigger in MACHINE.triggers else "unknown"
            kinds.add(f"{known} {result.reason.value}")

    collect()
    assert kinds == {
        "unknown no_transition",
        "known no_transition",
        "known guard_failed",
        "known terminal_state",
        "unknown terminal_state",
    }


def test_any_triggers_are_annotated_by_fire() -> None:
    @settings(max_examples=60, deadline=None)
    @given(any_triggers(MACHINE, max_size=8))
    def annotated(walk: tuple[Event, ...]) -> None:
        replay(MACHINE, walk)

    annotated()


# --------------------------------------------------------------------------- the checks

WALK = (
    Event("triage", {"level": 1, "reporter": {"email": "ann@example.org"}, "labels": ["x"]},
          "open", "triaged"),
    Event("assign", {"assignee": "bob", "team": "core"}, "triaged", "assigned"),
    Event("escalate", {}, "assigned", None),
    Event("resolve", {"resolution": "fixed it", "reopened": False}, "assigned", "resolved"),
)  # fmt: skip
START = FsmState(MACHINE.initial)


def test_a_sound_reducer_passes_every_check(tmp_path: Path) -> None:
    replay(MACHINE, WALK)
    check_deterministic(REDUCER, START, WALK)
    check_illegal_triggers_leave_state_untouched(REDUCER, START, WALK)
    check_terminal_states_are_final(REDUCER, MACHINE, WALK)
    (tmp_path / "tickets").mkdir()
    (tmp_path / "tickets" / "contract.yaml").write_text(TICKETS, encoding="utf-8")
    (tmp_path / "notifier").mkdir()
    (tmp_path / "notifier" / "contract.yaml").write_text(NOTIFIER, encoding="utf-8")
    steps = [REDUCER(START, WALK[0])]
    for event in WALK[1:]:
        steps.append(REDUCER(steps[-1].state, event))
    assert [i.intent_type for s in steps for i in s.intents] == ["tickets.notify"]
    check_every_intent_has_an_effect(tmp_path, steps)
    check_every_intent_has_an_effect(lint(tmp_path), [i for s in steps for i in s.intents])


def test_an_impure_reducer_reading_a_counter_is_not_deterministic() -> None:
    counter = itertools.count()

    def impure(state: FsmState, event: Event) -> Reduction[FsmState]:
        step = REDUCER(state, event)
        return step._replace(state=step.state._replace(data={"calls": next(counter)}))

    with pytest.raises(AssertionError, match=r"not deterministic: event 0 .* two different"):
        check_deterministic(impure, START, WALK)


def test_a_reducer_depending_on_identity_fails_the_copy_check() -> None:
    def by_identity(state: FsmState, event: Event) -> Reduction[FsmState]:
        step = REDUCER(state, event)
        return step._replace(state=step.state._replace(data={"seen": id(event) % 1000}))

    with pytest.raises(AssertionError, match="equal copy of the same input"):
        check_deterministic(by_identity, START, WALK)


def test_a_reducer_changing_its_input_is_caught() -> None:
    def mutating(state: FsmState, event: Event) -> Reduction[FsmState]:
        if isinstance(event.payload, dict):
            event.payload["touched"] = True
        return REDUCER(state, event)

    state = FsmState(MACHINE.initial, data={"sla": 1})
    events = [Event(e.trigger, dict(e.payload), e.before, e.after) for e in WALK]
    with pytest.raises(AssertionError, match="changed its input event"):
        check_deterministic(mutating, state, events)


def test_deep_copies_handle_read_only_mappings() -> None:
    state = FsmState("open", data=MappingProxyType({"inner": MappingProxyType({"n": [1]})}))
    copied = clone(state)
    assert copied == state
    assert copied.data["inner"]["n"] is not state.data["inner"]["n"]
    with pytest.raises(TypeError, match="deep-copy"):
        clone(FsmState("open", data={"lock": threading.Lock()}))


@pytest.mark.parametrize("hidden", [False, True], ids=["reported", "hidden"])
def test_a_reducer_moving_on_an_illegal_trigger_is_caught(hidden: bool) -> None:
    def leaky(state: FsmState, event: Event) -> Reduction[FsmState]:
        step = REDUCER(state, event)
        if step.rejected is not None:
            # hidden: claims the event fired, so only the walk's annotation can tell
            return Reduction(state._replace(name="closed"), (), None if hidden else step.rejected)
        return step

    with pytest.raises(AssertionError, match="illegal trigger changed the state: event 2"):
        check_illegal_triggers_leave_state_untouched(leaky, START, WALK)


def test_declared_restarts_are_not_illegal_triggers() -> None:
    restarting = FsmReducer(
        MACHINE,
        trigger_of=lambda event: event.trigger,
        actions={"notify_reporter": notify},
        restart_on=frozenset({"triage"}),
    )
    spam = Event("triage", {}, "open", "spam")
    again = Event("triage", {}, "spam", None)  # the machine refuses it; the reducer restarts
    with pytest.raises(AssertionError, match="illegal trigger changed the state: event 1"):
        check_illegal_triggers_leave_state_untouched(restarting, START, [spam, again])
    check_illegal_triggers_leave_state_untouched(
        restarting, START, [spam, again], restart_on={"triage"}
    )


def test_a_reducer_asking_for_effects_on_an_illegal_trigger_is_caught() -> None:
    def noisy(state: FsmState, event: Event) -> Reduction[FsmState]:
        step = REDUCER(state, event)
        if step.rejected is not None:
            return step._replace(intents=(notify(_context(event, state)),))
        return step

    with pytest.raises(AssertionError, match=r"asked for effects.*tickets\.notify"):
        check_illegal_triggers_leave_state_untouched(noisy, START, WALK)


def _context(event: Event, state: FsmState) -> ActionContext[Event]:
    fired = fire(MACHINE, "assigned", "resolve", {"resolution": "fixed"})
    assert fired.ok
    return ActionContext(event, state, state, fired, "notify_reporter", 0)


def test_an_intent_without_exactly_one_effect_is_caught(tmp_path: Path) -> None:
    (tmp_path / "notifier").mkdir()
    (tmp_path / "notifier" / "contract.yaml").write_text(NOTIFIER, encoding="utf-8")
    stray = Intent("tickets.refund", "pay://refund/t-1", {}, CAUSE, CAUSE)
    with pytest.raises(AssertionError, match=r"'tickets\.refund' .* executed by no effect"):
        check_every_intent_has_an_effect(tmp_path, [Reduction(START, (stray,))])
    (tmp_path / "second").mkdir()
    second = NOTIFIER.replace("notifier_effect", "second_effect").replace("mailer", "pager")
    (tmp_path / "second" / "contract.yaml").write_text(second, encoding="utf-8")
    served = Intent("tickets.notify", "mail://reporter/t-1", {}, CAUSE, CAUSE)
    with pytest.raises(
        AssertionError, match=r"executed by 2 handlers .*effect\.mailer, effect\.pager"
    ):
        check_every_intent_has_an_effect(tmp_path, [served])


def test_effect_executors_follow_the_lint_rules() -> None:
    report = lint(REGISTRATION_CONTRACTS)
    assert isinstance(report, LintReport)
    assert report.ok
    served = executors(report)
    assert served["consul.register"] == ("effect.service_registry",)
    assert served["postgres.upsert_registration"] == ("effect.registration_storage",)


def test_a_transition_out_of_a_terminal_state_is_caught() -> None:
    def undead(state: FsmState, event: Event) -> Reduction[FsmState]:
        if state.name == "resolved" and event.trigger == "reopen":
            return Reduction(state._replace(name="assigned"))
        return REDUCER(state, event)

    events = [*WALK, Event("reopen", {}, "resolved", None)]
    with pytest.raises(AssertionError, match="terminal state 'resolved' is not final: event 4"):
        check_terminal_states_are_final(undead, MACHINE, events)
    # unless that trigger is a declared restart
    check_terminal_states_are_final(undead, MACHINE, events, restart_on={"reopen"})


# --------------------------------------------------------------------------- the runner


def _envelope_like(event: Event, index: int) -> Event:
    return Event(event.trigger, {**event.payload, "n": index}, event.before, event.after)


def test_reducer_properties_pass_for_a_sound_reducer(tmp_path: Path) -> None:
    (tmp_path / "tickets").mkdir()
    (tmp_path / "tickets" / "contract.yaml").write_text(TICKETS, encoding="utf-8")
    (tmp_path / "notifier").mkdir()
    (tmp_path / "notifier" / "contract.yaml").write_text(NOTIFIER, encoding="utf-8")
    test = reducer_properties(
        REDUCER, MACHINE, make=_envelope_like, contracts=tmp_path, max_examples=30
    )
    assert test.__name__ == "test_reducer_properties[tickets]"
    test()


def test_reducer_properties_fail_for_a_reducer_that_leaves_a_terminal_state() -> None:
    def undead(state: FsmState, event: Event) -> Reduction[FsmState]:
        if state.name in MACHINE.terminal_states:
            return Reduction(state._replace(name="open"))
        return REDUCER(state, event)

    fast = settings(database=None, phases=[Phase.generate], report_multiple_bugs=False)
    test = reducer_properties(undead, MACHINE, max_examples=20, hypothesis_settings=fast)
    with pytest.raises(AssertionError, match=r"is not final|illegal trigger changed the state"):
        test()


def _uuid(event: Event, index: int) -> UUID:
    return uuid5(CAUSE, f"{index}:{event.trigger}")


def test_make_turns_drawn_events_into_the_reducers_own() -> None:
    seen: list[Mapping[str, Any]] = []

    def on_payloads(state: FsmState, payload: Mapping[str, Any]) -> Reduction[FsmState]:
        seen.append(payload)
        return Reduction(state)

    check_deterministic(on_payloads, START, WALK, make=lambda e, i: {"id": _uuid(e, i)})
    assert seen[0] == {"id": _uuid(WALK[0], 0)}
