"""Compiling contracts into the core: machines, route tables, operations, effect policies."""

from __future__ import annotations

import pytest

from onex_contracts import (
    EffectPolicy,
    HandlerContract,
    NodeContract,
    compile_effect_policy,
    compile_machine,
    compile_operations,
    compile_routes,
    parse,
)
from onex_core.dispatch import Plan, Unroutable, route_topic
from onex_core.errors import ContractError, MachineError
from onex_core.fsm import Fired, Rejected, fire
from onex_core.resilience import BreakerPolicy, RetryPolicy
from onex_core.topics import Category
from tests.contracts.samples import EFFECT, HANDLER, ORCHESTRATOR, REDUCER, edit


def _node(text: str) -> NodeContract:
    contract = parse(text)
    assert isinstance(contract, NodeContract)
    return contract


def test_a_machine_compiles_with_its_guards() -> None:
    machine = compile_machine(_node(REDUCER))
    assert machine.name == "door"
    assert machine.initial == "closed"
    assert machine.states == ("closed", "open", "locked")
    assert machine.terminal_states == frozenset({"locked"})
    pushed = fire(machine, "closed", "push", {"state": {"jammed": False}})
    assert isinstance(pushed, Fired)
    assert (pushed.target, pushed.actions) == ("open", ("announce_open",))
    jammed = fire(machine, "closed", "push", {"state": {"jammed": True}})
    assert isinstance(jammed, Rejected)
    assert jammed.failed_guards == ("state.jammed is_false",)
    assert machine.spec("open").timeout_ms == 5000


def test_a_condition_error_message_reaches_the_rejection() -> None:
    text = edit(
        REDUCER,
        "        - expression: state.jammed is_false\n",
        "        - expression: state.jammed is_false\n"
        "          error_message: the door is jammed\n",
    )
    machine = compile_machine(_node(text))
    jammed = fire(machine, "closed", "push", {"state": {"jammed": True}})
    assert isinstance(jammed, Rejected)
    assert jammed.failed_messages == ("the door is jammed",)
    assert "the door is jammed" in jammed.message
    silent = fire(compile_machine(_node(REDUCER)), "closed", "push", {"state": {"jammed": True}})
    assert isinstance(silent, Rejected)
    assert silent.failed_messages == ()


def test_a_machine_compiles_from_its_section_alone() -> None:
    section = _node(REDUCER).state_machine
    assert section is not None
    assert compile_machine(section).name == "door"


def test_machine_problems_carry_contract_paths() -> None:
    contract = _node(REDUCER)
    section = contract.state_machine
    assert section is not None
    broken = section.model_copy(
        update={
            "transitions": (
                section.transitions[0].model_copy(update={"to_state": "shut"}),
                *section.transitions[1:],
            )
        }
    )
    with pytest.raises(MachineError) as caught:
        compile_machine(broken)
    [problem] = caught.value.problems
    assert problem.path == ("state_machine", "transitions", 0, "to_state")
    assert problem.message == "unknown state 'shut'"


def test_a_contract_without_a_machine_is_refused() -> None:
    with pytest.raises(ContractError, match="has no state_machine"):
        compile_machine(_node(ORCHESTRATOR))


def test_routes_follow_the_assigned_topics() -> None:
    table = compile_routes(_node(ORCHESTRATOR))
    assert [(r.handler_id, r.pattern, r.category, r.message_types) for r in table.routes] == [
        ("handler-door-pushed", "onex.evt.doors.door-pushed.v1", Category.EVENT, frozenset()),
        (
            "handler-door-pulled",
            "onex.evt.doors.door-pulled.v1",
            Category.EVENT,
            frozenset({"doors.door-pulled"}),
        ),
    ]
    assert table.dlq_topic == "onex.dlq.doors.events.v1"
    plan = route_topic(table, "onex.evt.doors.door-pulled.v1", "doors.door-pulled")
    assert isinstance(plan, Plan)
    assert plan.handler_ids == ("handler-door-pulled",)
    miss = route_topic(table, "onex.evt.doors.door-kicked.v1", "doors.door-kicked")
    assert isinstance(miss, Unroutable)
    assert miss.dlq_topic == "onex.dlq.doors.events.v1"


def test_a_pattern_entry_becomes_a_pattern_route() -> None:
    text = edit(ORCHESTRATOR, "topic: onex.evt.doors.door-pushed.v1", "topic: onex.evt.doors.*.v1")
    table = compile_routes(_node(text))
    assert table.routes[0].pattern == "onex.evt.doors.*.v1"
    plan = route_topic(table, "onex.evt.doors.door-pulled.v1", "doors.door-pulled")
    assert isinstance(plan, Plan)
    assert plan.handler_ids == ("handler-door-pushed", "handler-door-pulled")


def test_an_effect_routes_intents_not_topics() -> None:
    effect = _node(EFFECT)
    assert compile_routes(effect).routes == ()
    assert dict(compile_operations(effect)) == {"doors.announce": "effect.speaker"}
    assert dict(compile_operations(_node(ORCHESTRATOR))) == {}


def test_a_node_effect_policy_is_in_core_units() -> None:
    assert compile_effect_policy(_node(EFFECT)) == EffectPolicy(
        retry=RetryPolicy(
            max_attempts=3, initial_delay=0.2, max_delay=2.0, multiplier=3.0, jitter=0.2
        ),
        breaker=BreakerPolicy(failure_threshold=4, reset_timeout=30.0, success_threshold=2),
        timeout=1.5,
    )
    assert compile_effect_policy(_node(ORCHESTRATOR)) == EffectPolicy()


def test_a_handler_effect_policy_is_in_core_units() -> None:
    handler = parse(HANDLER)
    assert isinstance(handler, HandlerContract)
    assert compile_effect_policy(handler) == EffectPolicy(
        retry=RetryPolicy(
            max_attempts=3, initial_delay=0.5, max_delay=0.5, multiplier=1.0, jitter=0.1
        ),
        breaker=BreakerPolicy(failure_threshold=3, reset_timeout=10.0, success_threshold=1),
        timeout=2.0,
    )


def test_disabled_retry_and_breaker() -> None:
    text = edit(HANDLER, "{enabled: true, max_retries: 2", "{enabled: false, max_retries: 2")
    text = edit(text, "circuit_breaker: {enabled: true", "circuit_breaker: {enabled: false")
    text = edit(text, "  timeout_ms: 2000\n", "")
    policy = compile_effect_policy(parse(text))
    assert policy.retry is not None
    assert policy.retry.max_attempts == 1
    assert policy.breaker is None
    assert policy.timeout is None
