"""What a node says about itself, the workflow's timing, and the code matching its contracts."""

from __future__ import annotations

from typing import Any

import pytest

from onex_adapters.registration import load_registration_contracts
from onex_contracts import REGISTRATION_CONTRACTS, NodeContract, load
from onex_core.dispatch import Plan, route_topic
from onex_core.errors import ContentError, UsageError
from onex_core.registration import NodeInfo, RegistrationConfig, model, parse_introspection
from onex_core.topics import parse_topic

VALID = {"node_id": "node-7", "node_type": "reducer"}


def test_a_minimal_introspection() -> None:
    assert parse_introspection(VALID) == NodeInfo("node-7", "reducer")


def test_a_full_introspection() -> None:
    info = parse_introspection(
        {
            **VALID,
            "node_version": "2.1.0",
            "endpoints": {"health": "https://h.example:9000/health", "api": "http://a.example"},
            "capabilities": ["b.cap", "a.cap", "b.cap"],
            "anything_else": {"is": "ignored"},
        },
        entity_id="node-7",
    )
    assert info.endpoints == (
        ("api", "http://a.example"),
        ("health", "https://h.example:9000/health"),
    )
    assert (info.address, info.port) == ("a.example", 80)  # api first; http's default port
    assert info.capabilities == ("a.cap", "b.cap")
    assert NodeInfo.from_data(info.as_data()) == info


SECRET = "s3cr3t-" + "x" * 5000


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"node_id": None}, "node_id"),
        ({"node_id": ""}, "node_id"),
        ({"node_id": "a b"}, "node_id"),
        ({"node_id": SECRET}, "node_id"),
        ({"node_type": "gateway"}, "node_type"),
        ({"node_type": None}, "node_type"),
        ({"node_version": "1 2"}, "node_version"),
        ({"endpoints": ["http://x"]}, "endpoints"),
        ({"endpoints": {"api": SECRET}}, "endpoints.api"),
        ({"endpoints": {"api": "ftp://host"}}, "endpoints.api"),
        ({"endpoints": {"api": "http://host:99999"}}, "endpoints.api"),
        ({"endpoints": {f"e{i}": "http://h" for i in range(17)}}, "endpoints"),
        ({"capabilities": "one"}, "capabilities"),
        ({"capabilities": [SECRET]}, "capabilities"),
        ({"capabilities": ["c"] * 65}, "capabilities"),
    ],
)
def test_bad_introspections_name_the_field_and_never_echo_the_value(
    change: dict[str, Any], field: str
) -> None:
    payload = {**VALID, **change}
    if change.get("node_id", "") is None:
        del payload["node_id"]
    with pytest.raises(ContentError) as raised:
        parse_introspection(payload)
    message = str(raised.value)
    assert f"'{field}'" in message
    assert "s3cr3t" not in message
    assert len(message) < 200


def test_an_introspection_must_be_about_its_own_key() -> None:
    with pytest.raises(ContentError, match="entity_id"):
        parse_introspection(VALID, entity_id="node-8")
    with pytest.raises(ContentError, match="JSON object"):
        parse_introspection(["node-7"])


def test_the_default_config_is_the_design() -> None:
    config = RegistrationConfig()
    assert (config.ack_timeout, config.liveness_window, config.heartbeat_interval) == (30, 30, 10)
    assert (config.tick_interval, config.max_ack_timeouts, config.max_backend_retries) == (1, 3, 3)
    assert config.domain == "registration"


@pytest.mark.parametrize(
    "bad",
    [{"ack_timeout": 0}, {"liveness_window": -1}, {"max_ack_timeouts": 0}, {"domain": ""}],
)
def test_a_bad_config_is_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(UsageError):
        RegistrationConfig(**bad)


def _node(name: str) -> NodeContract:
    contract = load(REGISTRATION_CONTRACTS / name / "contract.yaml")
    assert isinstance(contract, NodeContract)
    return contract


def test_the_topics_are_the_contracts_topics() -> None:
    bus = _node("node_registration_orchestrator").event_bus
    assert bus is not None
    for topic in (model.INTROSPECTION, model.ACKED, model.HEARTBEAT, model.RUNTIME_TICK):
        assert topic in bus.subscribe_topics
    for topic in (model.SERVICE_OUTCOME, model.STORAGE_OUTCOME):
        assert topic in bus.subscribe_topics
    published = (
        model.INITIATED,
        model.ACCEPTED,
        model.REJECTED,
        model.ACK_RECEIVED,
        model.ACK_TIMED_OUT,
        model.FAILED,
        model.BECAME_ACTIVE,
        model.LIVENESS_EXPIRED,
    )
    assert set(published) <= set(bus.publish_topics)
    assert bus.dlq_topics == (model.DLQ,)
    reducer = _node("node_registration_reducer")
    assert reducer.intent_emission is not None
    declared = {i.intent_type for i in reducer.intent_emission.intents}
    assert declared == {
        model.REGISTER_SERVICE,
        model.STORE_REGISTRATION,
        model.UPDATE_REGISTRATION,
        model.PASS_CHECK,
    }


def test_the_compiled_family_routes_every_message_the_orchestrator_decides() -> None:
    compiled = load_registration_contracts()
    for topic in (
        model.INTROSPECTION,
        model.ACKED,
        model.HEARTBEAT,
        model.RUNTIME_TICK,
        model.SERVICE_OUTCOME,
        model.STORAGE_OUTCOME,
        model.DEADLINE_CHECK,
    ):
        plan = route_topic(compiled.routes, topic, parse_topic(topic).event_type)
        assert isinstance(plan, Plan), topic
    assert compiled.operations[model.REGISTER_SERVICE] == (
        "effect.service_registry",
        model.SERVICE_OUTCOME,
    )
    assert compiled.operations[model.PASS_CHECK] == ("effect.service_registry", None)
    assert compiled.operations[model.STORE_REGISTRATION][1] == model.STORAGE_OUTCOME
    policy = compiled.policies["effect.service_registry"]
    assert (policy.retry.max_attempts, policy.breaker.failure_threshold, policy.timeout) == (
        4,
        5,
        5.0,
    )
