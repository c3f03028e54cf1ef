"""The shipped registration family: valid, lint-clean, and a machine that behaves as designed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from onex_contracts import (
    REGISTRATION_CONTRACTS,
    HandlerContract,
    NodeContract,
    compile_effect_policy,
    compile_machine,
    compile_operations,
    compile_routes,
    lint,
    load,
)
from onex_core.dispatch import Plan, route_topic
from onex_core.fsm import Fired, Machine, Rejected, RejectReason, fire
from onex_core.topics import parse_topic

FILES = sorted(REGISTRATION_CONTRACTS.rglob("*.yaml"))
UPSTREAM_R1 = Path(__file__).parent / "fixtures" / "upstream_r1" / "contract.yaml"


def _node(name: str) -> NodeContract:
    contract = load(REGISTRATION_CONTRACTS / name / "contract.yaml")
    assert isinstance(contract, NodeContract)
    return contract


@pytest.fixture(scope="module")
def machine() -> Machine:
    return compile_machine(_node("node_registration_reducer"))


def test_the_family_is_complete() -> None:
    assert [str(p.relative_to(REGISTRATION_CONTRACTS)) for p in FILES] == [
        "handlers/registration_storage/handler_contract.yaml",
        "handlers/service_registry/handler_contract.yaml",
        "node_registration_orchestrator/contract.yaml",
        "node_registration_reducer/contract.yaml",
        "node_registration_storage_effect/contract.yaml",
        "node_service_registry_effect/contract.yaml",
    ]


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.parent.name)
def test_each_shipped_contract_is_valid(path: Path) -> None:
    load(path)


def test_the_family_lints_clean_even_when_strict() -> None:
    report = lint(REGISTRATION_CONTRACTS)
    assert (report.errors, report.warnings) == ((), ())


def test_the_orchestrator_routes_every_registration_message() -> None:
    table = compile_routes(_node("node_registration_orchestrator"))
    expected = {
        "onex.evt.platform.node-introspection.v1": "handler-node-introspected",
        "onex.cmd.platform.node-registration-acked.v1": "handler-node-registration-acked",
        "onex.evt.platform.node-heartbeat.v1": "handler-node-heartbeat",
        "onex.intent.platform.runtime-tick.v1": "handler-runtime-tick",
        "onex.evt.platform.service-registry-outcome.v1": "handler-effect-outcome",
        "onex.evt.platform.registration-storage-outcome.v1": "handler-effect-outcome",
    }
    for topic, handler in expected.items():
        plan = route_topic(table, topic, parse_topic(topic).event_type)
        assert plan == Plan((handler,)), topic
    assert table.dlq_topic == "onex.dlq.platform.node-registration.v1"


def test_the_effects_execute_every_intent_the_reducer_emits() -> None:
    reducer = _node("node_registration_reducer")
    assert reducer.intent_emission is not None
    emitted = {i.intent_type for i in reducer.intent_emission.intents}
    executed = {
        **compile_operations(_node("node_service_registry_effect")),
        **compile_operations(_node("node_registration_storage_effect")),
    }
    assert emitted <= set(executed)
    assert set(executed.values()) == {"effect.service_registry", "effect.registration_storage"}


@pytest.mark.parametrize("name", ["service_registry", "registration_storage"])
def test_handler_descriptors(name: str) -> None:
    handler = load(REGISTRATION_CONTRACTS / "handlers" / name / "handler_contract.yaml")
    assert isinstance(handler, HandlerContract)
    policy = compile_effect_policy(handler)
    assert policy.retry is not None
    assert policy.retry.max_attempts == 4  # three retries
    assert policy.breaker is not None
    assert (policy.breaker.failure_threshold, policy.breaker.reset_timeout) == (5, 60.0)
    assert policy.timeout == 5.0


def test_every_emitting_action_has_intents_and_every_intent_an_action(machine: Machine) -> None:
    reducer = _node("node_registration_reducer")
    assert reducer.intent_emission is not None
    by_action: dict[str, set[str]] = {}
    for intent in reducer.intent_emission.intents:
        assert intent.action is not None
        by_action.setdefault(intent.action, set()).add(intent.intent_type)
    actions = {a for t in machine.transitions for a in t.actions}
    assert set(by_action) == actions
    assert by_action["retry_failed_backend"] == {"consul.register", "postgres.upsert_registration"}


INTROSPECTION = {"node_id": "n-1", "node_type": "effect"}

# (state, trigger, data, expected target or None for a rejection, expected actions)
STEPS: list[tuple[str, str, dict[str, Any], str | None, tuple[str, ...]]] = [
    (
        "unregistered",
        "introspection_received",
        INTROSPECTION,
        "pending_registration",
        ("register_service", "store_registration"),
    ),
    ("unregistered", "introspection_received", {"node_id": "n-1"}, "rejected", ()),
    (
        "unregistered",
        "introspection_received",
        {"node_id": "n-1", "node_type": "gateway"},
        "rejected",
        (),
    ),
    ("unregistered", "introspection_received", {"node_type": "effect"}, "rejected", ()),
    (
        "pending_registration",
        "service_registered",
        {"state": {"storage_registered": False}},
        "pending_registration",
        (),
    ),
    (
        "pending_registration",
        "service_registered",
        {"state": {"storage_registered": True}},
        "accepted",
        (),
    ),
    (
        "pending_registration",
        "storage_registered",
        {"state": {"service_registered": True}},
        "accepted",
        (),
    ),
    (
        "pending_registration",
        "backend_failed",
        {"state": {"backend_retries": 2}},
        "pending_registration",
        ("retry_failed_backend",),
    ),
    ("pending_registration", "backend_failed", {"state": {"backend_retries": 3}}, "failed", ()),
    ("accepted", "ack_requested", {}, "awaiting_ack", ()),
    ("accepted", "ack_received", {}, "ack_received", ("store_ack",)),
    ("awaiting_ack", "ack_received", {}, "ack_received", ("store_ack",)),
    ("ack_received", "activated", {}, "active", ()),
    (
        "awaiting_ack",
        "ack_deadline_passed",
        {"state": {"ack_timeouts": 1}},
        "ack_timed_out",
        (),
    ),
    ("awaiting_ack", "ack_deadline_passed", {"state": {"ack_timeouts": 2}}, "failed", ()),
    ("ack_timed_out", "ack_retried", {}, "awaiting_ack", ()),
    (
        "active",
        "heartbeat_received",
        {},
        "active",
        ("store_heartbeat", "pass_health_check"),
    ),
    ("active", "liveness_deadline_passed", {}, "liveness_expired", ("store_expiry",)),
    ("active", "ack_received", {}, None, ()),
    ("pending_registration", "ack_received", {}, None, ()),
]


@pytest.mark.parametrize(("state", "trigger", "data", "target", "actions"), STEPS)
def test_the_registration_machine(
    machine: Machine,
    state: str,
    trigger: str,
    data: dict[str, Any],
    target: str | None,
    actions: tuple[str, ...],
) -> None:
    result = fire(machine, state, trigger, data)
    if target is None:
        assert isinstance(result, Rejected)
        assert result.reason is RejectReason.NO_TRANSITION
    else:
        assert isinstance(result, Fired)
        assert (result.target, result.actions) == (target, actions)


@pytest.mark.parametrize("state", ["rejected", "liveness_expired", "failed"])
def test_terminal_states_are_final(machine: Machine, state: str) -> None:
    for trigger in machine.triggers:
        result = fire(machine, state, trigger, INTROSPECTION)
        assert isinstance(result, Rejected)
        assert result.reason is RejectReason.TERMINAL_STATE


def test_the_upstream_shaped_reducer_validates_and_compiles() -> None:
    contract = load(UPSTREAM_R1)
    assert isinstance(contract, NodeContract)
    machine = compile_machine(contract)
    assert machine.states == ("idle", "pending", "complete", "failed")
    fired = fire(machine, "idle", "introspection_received", INTROSPECTION)
    assert isinstance(fired, Fired)
    assert fired.actions == ("build_postgres_intent", "emit_postgres_intent")
    refused = fire(machine, "idle", "introspection_received", {"node_id": "n", "node_type": "x"})
    assert isinstance(refused, Rejected)
    assert refused.failed_guards == ("node_type in [effect, compute, reducer, orchestrator]",)
