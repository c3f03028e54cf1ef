"""The sections of a node contract: small strict models, one per part of ``contract.yaml``.

:mod:`onex_contracts.schema` assembles them into :class:`~onex_contracts.schema.NodeContract` and
holds the rules between sections; each model here checks only its own fields (types, ranges,
grammars). Every model is frozen, refuses unknown keys and coerces nothing (see
:class:`onex_contracts._fields.Model`).
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field

from onex_contracts._fields import (
    CapabilityName,
    ClassName,
    Description,
    EventType,
    FieldName,
    HandlerKey,
    IntentType,
    Model,
    ModulePath,
    Name,
    OperationName,
    PathT,
    StateRef,
    TargetPattern,
    Topic,
    TopicOrPattern,
    Version,
)

__all__ = [
    "Action",
    "Capability",
    "Category",
    "CircuitBreaker",
    "Condition",
    "Dependency",
    "EmittedIntent",
    "ErrorHandling",
    "EventBus",
    "EventModel",
    "HandlerRef",
    "HandlerRouting",
    "IntentEmission",
    "IoOperation",
    "ModelRef",
    "RetryPolicy",
    "RoutingEntry",
    "RoutingStrategy",
    "State",
    "StateMachine",
    "Transition",
    "kebab_case",
]

RoutingStrategy = Literal["topic_match", "payload_type_match", "operation_match"]
Category = Literal["event", "command", "intent"]


# --------------------------------------------------------------------------- small parts


class ModelRef(Model):
    """A payload model, by name and module (documentation; never imported)."""

    name: ClassName
    module: ModulePath
    description: Description | None = None


class Capability(Model):
    """What a node can do, named by function: ``registration.storage``."""

    name: CapabilityName
    description: Description | None = None
    version: Version | None = None


class Dependency(Model):
    """Something the node needs at run time (documentation; never imported)."""

    name: Name
    type: Name | None = None
    module: ModulePath | None = None
    class_name: ClassName | None = None
    description: Description | None = None


class EventBus(Model):
    """The topics a node reads and writes."""

    version: Version | None = None
    subscribe_topics: tuple[Topic, ...] = ()
    publish_topics: tuple[Topic, ...] = ()
    dlq_topics: tuple[Topic, ...] = Field(default=(), max_length=1)
    external_topics: tuple[Topic, ...] = ()


# --------------------------------------------------------------------------- routing


class HandlerRef(Model):
    """The class that handles an entry's messages: its name, and optionally its module."""

    name: ClassName
    module: ModulePath | None = None


class EventModel(Model):
    """The payload model of an entry's messages (documentation; never imported)."""

    name: ClassName
    module: ModulePath | None = None


def kebab_case(name: str) -> str:
    """``HandlerNodeIntrospected`` → ``handler-node-introspected`` (the default handler id)."""
    words = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "-", name)
    return re.sub(r"[-_]+", "-", words).strip("-").lower()


class RoutingEntry(Model):
    """One handler and what it takes: a topic, a message type, or an operation (intent type)."""

    handler: HandlerRef
    handler_id: HandlerKey | None = None
    topic: TopicOrPattern | None = None
    event_type: EventType | None = None
    message_category: Category | None = None
    operation: IntentType | None = None
    event_model: EventModel | None = None
    output_events: tuple[Topic, ...] = ()
    description: Description | None = None

    @property
    def effective_id(self) -> str:
        """``handler_id`` if given, else the kebab-case of the handler's class name."""
        return self.handler_id or kebab_case(self.handler.name)


class HandlerRouting(Model):
    """How a node's incoming messages (or intents) reach its handlers."""

    routing_strategy: RoutingStrategy
    handlers: tuple[RoutingEntry, ...] = Field(min_length=1)
    execution_mode: Literal["parallel", "sequential"] | None = None
    aggregation_strategy: Literal["all_or_partial", "all_or_none"] | None = None


# --------------------------------------------------------------------------- state machine


class State(Model):
    """One state of a machine."""

    state_name: Name
    description: Description | None = None
    is_terminal: bool = False
    timeout_ms: int | None = Field(default=None, ge=1, le=86_400_000)
    entry_actions: tuple[Name, ...] = ()
    exit_actions: tuple[Name, ...] = ()
    required_data: tuple[FieldName, ...] = ()


class Condition(Model):
    """A guard: ``field op value`` in the condition language of :mod:`onex_core.conditions`."""

    expression: str = Field(min_length=1, max_length=500)
    required: bool = True
    condition_name: Name | None = None
    error_message: Description | None = None


class Action(Model):
    """Something a transition does: emit intents, or update the reducer's state."""

    action_name: Name
    action_type: Literal["intent_emission", "state_update"]


class Transition(Model):
    """``from_state`` --``trigger`` [conditions]--> ``to_state`` / actions.

    Among transitions for the same state and trigger, higher ``priority`` is tried first.
    """

    transition_name: Name | None = None
    from_state: StateRef
    to_state: Name
    trigger: Name
    priority: int = Field(default=0, ge=0, le=1000)
    conditions: tuple[Condition, ...] = ()
    actions: tuple[Action, ...] = ()


class StateMachine(Model):
    """A reducer's finite-state machine. ``terminal_states`` lists exactly the terminal states."""

    state_machine_name: Name
    initial_state: Name
    states: tuple[State, ...] = Field(min_length=1)
    transitions: tuple[Transition, ...] = ()
    terminal_states: tuple[Name, ...] = ()

    def action_names(self) -> dict[str, PathT]:
        """Every action the machine can take, with the path where it first appears."""
        names: dict[str, PathT] = {}
        base: PathT = ("state_machine",)
        for i, state in enumerate(self.states):
            for field in ("entry_actions", "exit_actions"):
                for j, name in enumerate(getattr(state, field)):
                    names.setdefault(name, (*base, "states", i, field, j))
        for i, transition in enumerate(self.transitions):
            for j, action in enumerate(transition.actions):
                names.setdefault(action.action_name, (*base, "transitions", i, "actions", j))
        return names


class EmittedIntent(Model):
    """An intent a node may emit, its target pattern, and the FSM action that emits it."""

    intent_type: IntentType
    target_pattern: TargetPattern
    payload_model: ClassName | None = None
    description: Description | None = None
    action: Name | None = None


class IntentEmission(Model):
    """The intents a reducer or orchestrator may emit."""

    enabled: bool = True
    intents: tuple[EmittedIntent, ...] = ()


# --------------------------------------------------------------------------- effects


class RetryPolicy(Model):
    """Retries of transient failures. ``max_retries`` counts retries, not attempts."""

    max_retries: int = Field(default=3, ge=0, le=10)
    initial_delay_ms: int = Field(default=100, ge=1, le=60_000)
    max_delay_ms: int = Field(default=5_000, ge=1, le=300_000)
    exponential_base: float = Field(default=2.0, ge=1.0, le=10.0)
    jitter: float = Field(default=0.1, ge=0.0, le=0.5)


class CircuitBreaker(Model):
    """A circuit breaker: opens after consecutive failures, probes after the reset timeout."""

    failure_threshold: int = Field(default=5, ge=1, le=100)
    reset_timeout_ms: int = Field(default=60_000, ge=1_000, le=600_000)
    success_threshold: int = Field(default=1, ge=1, le=10)


class ErrorHandling(Model):
    """An effect's resilience: retry, circuit breaker and per-attempt timeout."""

    retry_policy: RetryPolicy | None = None
    circuit_breaker: CircuitBreaker | None = None
    timeout_ms: int | None = Field(default=None, ge=1, le=600_000)


class IoOperation(Model):
    """One operation an effect performs, for documentation and lint."""

    operation: OperationName
    description: Description
    input_fields: tuple[FieldName, ...] = ()
    output_fields: tuple[FieldName, ...] = ()
    idempotent: bool = False
    timeout_ms: int | None = Field(default=None, ge=1, le=600_000)
    read_only: bool = False
