"""The schema's rules: strict shapes, per-kind sections, routing, handler descriptors."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from onex_contracts import ContractInvalid, HandlerContract, NodeContract, parse
from onex_contracts.schema import kebab_case
from tests.contracts.samples import EFFECT, HANDLER, ORCHESTRATOR, REDUCER, edit

# (case id, sample, old text, new text, expected code, expected field path)
RULES: list[tuple[str, str, str, str, str, str]] = [
    # which sections each kind may have
    (
        "orchestrator with a state machine",
        ORCHESTRATOR,
        "event_bus:",
        "state_machine:\n  state_machine_name: m\n  initial_state: a\n"
        "  states: [{state_name: a}]\nevent_bus:",
        "section",
        "state_machine",
    ),
    (
        "reducer without a state machine",
        REDUCER,
        REDUCER[REDUCER.index("state_machine:") : REDUCER.index("intent_emission:")],
        "",
        "missing",
        "node_type",
    ),
    (
        "effect without routing",
        EFFECT,
        EFFECT[EFFECT.index("handler_routing:") : EFFECT.index("error_handling:")],
        "",
        "missing",
        "node_type",
    ),
    (
        "effect routed by topic",
        EFFECT,
        "routing_strategy: operation_match",
        "routing_strategy: topic_match",
        "routing-strategy",
        "handler_routing.routing_strategy",
    ),
    (
        "io_operations on a reducer",
        REDUCER,
        "intent_emission:",
        "io_operations:\n  - {operation: x, description: y}\nintent_emission:",
        "section",
        "io_operations",
    ),
    (
        "error_handling on an orchestrator",
        ORCHESTRATOR,
        "event_bus:",
        "error_handling: {timeout_ms: 5}\nevent_bus:",
        "section",
        "error_handling",
    ),
    (
        "unknown routing strategy",
        ORCHESTRATOR,
        "topic_match",
        "payload_match",
        "enum",
        "handler_routing.routing_strategy",
    ),
    # routing entries must get a topic
    (
        "entry without topic or event type",
        ORCHESTRATOR,
        "      event_type: doors.door-pulled\n",
        "",
        "unassigned",
        "handler_routing.handlers[1]",
    ),
    (
        "event type that no subscribed topic carries",
        ORCHESTRATOR,
        "event_type: doors.door-pulled",
        "event_type: doors.door-kicked",
        "unassigned",
        "handler_routing.handlers[1].event_type",
    ),
    (
        "event type carried by two subscribed topics",
        ORCHESTRATOR,
        "    - onex.evt.doors.door-pulled.v1\n  publish_topics:",
        "    - onex.evt.doors.door-pulled.v1\n    - onex.evt.doors.door-pulled.v2\n"
        "  publish_topics:",
        "unassigned",
        "handler_routing.handlers[1].event_type",
    ),
    (
        "topic not subscribed",
        ORCHESTRATOR,
        "topic: onex.evt.doors.door-pushed.v1",
        "topic: onex.evt.doors.door-shoved.v1",
        "unsubscribed",
        "handler_routing.handlers[0].topic",
    ),
    (
        "pattern matching nothing subscribed",
        ORCHESTRATOR,
        "topic: onex.evt.doors.door-pushed.v1",
        "topic: onex.cmd.doors.*.v1",
        "unsubscribed",
        "handler_routing.handlers[0].topic",
    ),
    (
        "category contradicting the topic",
        ORCHESTRATOR,
        "      event_type: doors.door-pulled\n",
        "      event_type: doors.door-pulled\n      message_category: command\n",
        "category",
        "handler_routing.handlers[1].message_category",
    ),
    (
        "uppercase category",
        ORCHESTRATOR,
        "      event_type: doors.door-pulled\n",
        "      event_type: doors.door-pulled\n      message_category: EVENT\n",
        "enum",
        "handler_routing.handlers[1].message_category",
    ),
    (
        "output event not published",
        ORCHESTRATOR,
        "output_events: [onex.evt.doors.door-opened.v1]",
        "output_events: [onex.evt.doors.door-closed.v1]",
        "unpublished",
        "handler_routing.handlers[0].output_events[0]",
    ),
    (
        "payload entry without event type",
        ORCHESTRATOR,
        "routing_strategy: topic_match",
        "routing_strategy: payload_type_match",
        "routing",
        "handler_routing.handlers[0]",
    ),
    (
        "operation on a topic entry",
        ORCHESTRATOR,
        "      event_type: doors.door-pulled\n",
        "      event_type: doors.door-pulled\n      operation: doors.pull\n",
        "routing",
        "handler_routing.handlers[1].operation",
    ),
    (
        "topic on an operation entry",
        EFFECT,
        "      handler_id: effect.speaker\n",
        "      handler_id: effect.speaker\n      topic: onex.evt.doors.x.v1\n",
        "routing",
        "handler_routing.handlers[0].topic",
    ),
    (
        "operation routed twice",
        EFFECT,
        "      handler_id: effect.speaker\n",
        "      handler_id: effect.speaker\n    - operation: doors.announce\n"
        "      handler: {name: OtherHandler}\n",
        "duplicate",
        "handler_routing.handlers[1].operation",
    ),
    (
        "one handler id for two classes",
        EFFECT,
        "      handler_id: effect.speaker\n",
        "      handler_id: effect.speaker\n    - operation: doors.chime\n"
        "      handler: {name: OtherHandler}\n      handler_id: effect.speaker\n",
        "handler-id",
        "handler_routing.handlers[1].handler",
    ),
    (
        "operation that is not an intent type",
        EFFECT,
        "operation: doors.announce",
        "operation: Announce",
        "intent-type",
        "handler_routing.handlers[0].operation",
    ),
    # the event bus
    (
        "external topic not subscribed",
        ORCHESTRATOR,
        "  external_topics:\n",
        "  external_topics:\n    - onex.evt.doors.door-kicked.v1\n",
        "external-topic",
        "event_bus.external_topics[0]",
    ),
    (
        "dead-letter topic of the wrong kind",
        ORCHESTRATOR,
        "dlq_topics: [onex.dlq.doors.events.v1]",
        "dlq_topics: [onex.evt.doors.events.v1]",
        "topic-kind",
        "event_bus.dlq_topics[0]",
    ),
    (
        "two dead-letter topics",
        ORCHESTRATOR,
        "dlq_topics: [onex.dlq.doors.events.v1]",
        "dlq_topics: [onex.dlq.doors.events.v1, onex.dlq.doors.more.v1]",
        "length",
        "event_bus.dlq_topics",
    ),
    (
        "subscribing to a snapshot topic",
        ORCHESTRATOR,
        "    - onex.evt.doors.door-pulled.v1\n  publish_topics:",
        "    - onex.evt.doors.door-pulled.v1\n    - onex.snapshot.doors.state.v1\n"
        "  publish_topics:",
        "topic-kind",
        "event_bus.subscribe_topics[2]",
    ),
    (
        "publishing a dead-letter topic",
        ORCHESTRATOR,
        "    - onex.evt.doors.door-opened.v1\n",
        "    - onex.evt.doors.door-opened.v1\n    - onex.dlq.doors.events.v1\n",
        "topic-kind",
        "event_bus.publish_topics[1]",
    ),
    (
        "topic listed twice",
        ORCHESTRATOR,
        "    - onex.evt.doors.door-opened.v1\n",
        "    - onex.evt.doors.door-opened.v1\n    - onex.evt.doors.door-opened.v1\n",
        "duplicate",
        "event_bus.publish_topics[1]",
    ),
    # state machines and intents
    (
        "terminal state not listed",
        REDUCER,
        "  terminal_states: [locked]",
        "  terminal_states: []",
        "terminal",
        "state_machine.states[2].is_terminal",
    ),
    (
        "listed terminal state that is not terminal",
        REDUCER,
        "  terminal_states: [locked]",
        "  terminal_states: [locked, open]",
        "terminal",
        "state_machine.states[1].is_terminal",
    ),
    (
        "unknown terminal state",
        REDUCER,
        "  terminal_states: [locked]",
        "  terminal_states: [locked, lockd]",
        "unknown-state",
        "state_machine.terminal_states[1]",
    ),
    (
        "intent naming an unknown action",
        REDUCER,
        "      action: announce_open",
        "      action: anounce_open",
        "unknown-action",
        "intent_emission.intents[0].action",
    ),
    (
        "emitting action without an intent",
        REDUCER,
        "      action: announce_open\n",
        "",
        "unlinked-action",
        "state_machine.transitions[0].actions[0].action_name",
    ),
    (
        "bad target pattern",
        REDUCER,
        'target_pattern: "speaker://lobby/{door_id}"',
        'target_pattern: "speaker:lobby/{door_id}"',
        "target",
        "intent_emission.intents[0].target_pattern",
    ),
    (
        "bad placeholder",
        REDUCER,
        'target_pattern: "speaker://lobby/{door_id}"',
        'target_pattern: "speaker://lobby/{Door Id}"',
        "target",
        "intent_emission.intents[0].target_pattern",
    ),
    (
        "unknown action type",
        REDUCER,
        "action_type: intent_emission",
        "action_type: emit",
        "enum",
        "state_machine.transitions[0].actions[0].action_type",
    ),
    (
        "state name not snake_case",
        REDUCER,
        "    - state_name: open\n",
        "    - state_name: Open\n",
        "name",
        "state_machine.states[1].state_name",
    ),
    # shapes
    (
        "capabilities as strings",
        EFFECT,
        "  - name: announcements.play",
        "  - announcements.play",
        "type",
        "capabilities[0]",
    ),
    (
        "duplicate capability",
        EFFECT,
        "  - name: announcements.play",
        "  - name: announcements.play\n  - name: announcements.play",
        "duplicate",
        "capabilities[1].name",
    ),
    (
        "node_version as a mapping",
        REDUCER,
        'node_version: "1.0.0"',
        "node_version: {major: 1, minor: 0, patch: 0}",
        "type",
        "node_version",
    ),
    (
        "retry delays out of order",
        EFFECT,
        "max_delay_ms: 2000",
        "max_delay_ms: 100",
        "range",
        "error_handling.retry_policy.max_delay_ms",
    ),
    (
        "jitter above one half",
        EFFECT,
        "jitter: 0.2",
        "jitter: 0.75",
        "range",
        "error_handling.retry_policy.jitter",
    ),
    (
        "metadata with a null key",
        REDUCER,
        "intent_emission:",
        "metadata:\n  ~: 1\nintent_emission:",
        "key-type",
        "metadata",
    ),
    # handler contracts
    (
        "handler id prefix against archetype",
        HANDLER,
        "handler_id: effect.speaker",
        "handler_id: compute.speaker",
        "handler-id",
        "handler_id",
    ),
    (
        "handler id with an unknown prefix",
        HANDLER,
        "handler_id: effect.speaker",
        "handler_id: speakers.lobby",
        "handler-id",
        "handler_id",
    ),
    (
        "handler id of one segment",
        HANDLER,
        "handler_id: effect.speaker",
        "handler_id: speaker",
        "handler-id",
        "handler_id",
    ),
    (
        "intents on a compute handler",
        edit(HANDLER, "handler_id: effect.speaker", "handler_id: handler.speaker"),
        "node_archetype: effect",
        "node_archetype: compute",
        "section",
        "intent_types",
    ),
    (
        "linear backoff",
        HANDLER,
        "backoff_strategy: fixed",
        "backoff_strategy: linear",
        "enum",
        "descriptor.retry_policy.backoff_strategy",
    ),
    (
        "more than one half-open probe",
        HANDLER,
        "timeout_ms: 10000}",
        "timeout_ms: 10000, half_open_requests: 3}",
        "range",
        "descriptor.circuit_breaker.half_open_requests",
    ),
    (
        "breaker reset below a second",
        HANDLER,
        "timeout_ms: 10000}",
        "timeout_ms: 10}",
        "range",
        "descriptor.circuit_breaker.timeout_ms",
    ),
    (
        "base delay above max delay",
        HANDLER,
        "max_delay_ms: 500",
        "max_delay_ms: 400",
        "range",
        "descriptor.retry_policy.max_delay_ms",
    ),
    (
        "class path with a private module",
        HANDLER,
        "doorapp.handlers.speaker:SpeakerHandler",
        "doorapp._private:SpeakerHandler",
        "class-path",
        "handler_class",
    ),
    (
        "class path that is a file path",
        HANDLER,
        "doorapp.handlers.speaker:SpeakerHandler",
        "../evil:X",
        "class-path",
        "handler_class",
    ),
    (
        "version key instead of contract_version",
        HANDLER,
        "contract_version: {major: 1, minor: 0, patch: 0}",
        "version: {major: 1, minor: 0, patch: 0}",
        "unknown-field",
        "version",
    ),
]


@pytest.mark.parametrize(
    ("sample", "old", "new", "code", "path"),
    [r[1:] for r in RULES],
    ids=[r[0] for r in RULES],
)
def test_rule(sample: str, old: str, new: str, code: str, path: str) -> None:
    with pytest.raises(ContractInvalid) as caught:
        parse(edit(sample, old, new))
    found = [(i.code, i.path) for i in caught.value.errors]
    assert (code, path) in found, found
    assert all(i.line >= 1 and i.column >= 1 for i in caught.value.errors)


@pytest.mark.parametrize("text", [REDUCER, ORCHESTRATOR, EFFECT, HANDLER])
def test_the_samples_are_valid(text: str) -> None:
    parse(text)


def _data(text: str) -> dict[str, Any]:
    """Plain data as the strict reader would give it (sequences as tuples)."""

    def tuples(value: Any) -> Any:
        if isinstance(value, list):
            return tuple(tuples(v) for v in value)
        if isinstance(value, dict):
            return {k: tuples(v) for k, v in value.items()}
        return value

    result: dict[str, Any] = tuples(yaml.safe_load(text))
    return result


def test_a_contract_built_in_python_runs_the_cross_field_rules() -> None:
    data = _data(REDUCER)
    assert NodeContract.model_validate(data).name == "door_reducer"
    broken = _data(edit(REDUCER, "  terminal_states: [locked]", "  terminal_states: []"))
    with pytest.raises(ValidationError, match="is terminal but not in terminal_states"):
        NodeContract.model_validate(broken)
    assert HandlerContract.model_validate(_data(HANDLER)).kind == "effect"
    with pytest.raises(ValidationError, match="handler_id starts with 'compute'"):
        HandlerContract.model_validate(
            _data(edit(HANDLER, "handler_id: effect.speaker", "handler_id: compute.speaker"))
        )


def test_a_contract_built_in_python_is_scanned_for_secrets() -> None:
    data = _data(REDUCER + "metadata:\n  password: hunter2\n")
    with pytest.raises(ValidationError, match="must not contain secrets") as caught:
        NodeContract.model_validate(data)
    assert "hunter2" not in str(caught.value)


def test_models_are_frozen_and_strict() -> None:
    contract = parse(REDUCER)
    with pytest.raises(ValidationError):
        contract.name = "other"
    with pytest.raises(ValidationError, match="valid tuple"):
        NodeContract.model_validate({**_data(REDUCER), "capabilities": []})


def test_defaults_and_derived_values() -> None:
    orchestrator = parse(ORCHESTRATOR)
    assert isinstance(orchestrator, NodeContract)
    assert orchestrator.kind == "orchestrator"
    routing = orchestrator.handler_routing
    assert routing is not None
    assert [e.effective_id for e in routing.handlers] == [
        "handler-door-pushed",
        "handler-door-pulled",
    ]
    handler = parse(HANDLER)
    assert isinstance(handler, HandlerContract)
    assert handler.descriptor.purity == "side_effecting"
    assert handler.descriptor.concurrency_policy == "serialized"
    assert handler.descriptor.circuit_breaker.half_open_requests == 1


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("HandlerNodeIntrospected", "handler-node-introspected"),
        ("HTTPHandler", "http-handler"),
        ("Handler2FA", "handler2-fa"),
        ("snake_case_name", "snake-case-name"),
        ("A", "a"),
    ],
)
def test_kebab_case(name: str, expected: str) -> None:
    assert kebab_case(name) == expected
