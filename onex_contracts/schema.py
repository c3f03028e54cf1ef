"""The node contract (``contract.yaml``): the strict model and the rules between its sections.

The section models (routing, event bus, state machine, …) live in :mod:`onex_contracts.sections`
and are re-exported here.

The shapes follow the upstream ONEX contracts, with every section closed: an unknown key is an
error, extension data lives under ``metadata:`` only, and each field has one shape where upstream
had two. Choices made where upstream wavered:

- ``capabilities`` is a list of mappings ``{name, description?, version?}`` (upstream also had
  bare strings); a name says what the node does (``registration.storage``), which :mod:`lint`
  checks;
- ``node_version`` is an ``"X.Y.Z"`` string, ``contract_version`` a ``{major, minor, patch}``;
- ``handler_routing.routing_strategy`` is one of ``topic_match``, ``payload_type_match`` and
  ``operation_match`` — anything else is an error (upstream fell back to payload matching);
- ``message_category`` is lowercase (``event``, ``command``, ``intent``) and must agree with the
  topic's kind; ``dlq_topics`` holds at most one topic;
- ``output_events`` of a routing entry lists *topics*, each of which the node must publish;
- ``external_topics`` are subscribed topics produced outside the contract directory; each must
  also be in ``subscribe_topics``.

Which sections a node may have follows from its kind (:data:`SECTION_RULES`): only reducers have
a state machine, and every reducer has one; reducers and orchestrators may emit intents (the
output law lets both); ``error_handling`` and ``io_operations`` belong to effects; orchestrators
and effects must route. Effects route by ``operation_match`` (the intent type they execute),
orchestrators and reducers by topic or message type.

Every routing entry of a topic or payload-type strategy must be given a topic — its own
``topic``, or the single subscribed topic whose event type is its ``event_type``. Upstream
silently produced no route for such an entry; here it is an error at the entry.

Rules that span fields are :func:`node_findings`, returning every problem with its field path.
A contract built in Python runs them on construction; the loader runs them itself so that it can
locate each finding in the file.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final, Literal, Self

from pydantic import Field, ValidationInfo, model_validator

from onex_contracts._fields import (
    ContractVersion,
    Description,
    Finding,
    Metadata,
    Model,
    Name,
    PathT,
    Version,
    secret_findings,
)
from onex_contracts.issues import suggest
from onex_contracts.sections import (
    Action,
    Capability,
    CircuitBreaker,
    Condition,
    Dependency,
    EmittedIntent,
    ErrorHandling,
    EventBus,
    EventModel,
    HandlerRef,
    HandlerRouting,
    IntentEmission,
    IoOperation,
    ModelRef,
    RetryPolicy,
    RoutingEntry,
    RoutingStrategy,
    State,
    StateMachine,
    Transition,
    kebab_case,
)
from onex_core.errors import format_path
from onex_core.topics import Kind, parse_pattern, parse_topic

__all__ = [
    "DEFER_CHECKS",
    "SECTION_RULES",
    "STRATEGIES",
    "Action",
    "Capability",
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
    "NodeContract",
    "NodeType",
    "RetryPolicy",
    "RoutingEntry",
    "RoutingStrategy",
    "State",
    "StateMachine",
    "Transition",
    "assign_topic",
    "kebab_case",
    "node_findings",
]

DEFER_CHECKS: Final = "onex_defer_checks"
"""Validation context key: skip the cross-field checks (the loader runs and locates them)."""

NodeType = Literal["ORCHESTRATOR_GENERIC", "REDUCER_GENERIC", "COMPUTE_GENERIC", "EFFECT_GENERIC"]


# --------------------------------------------------------------------------- the node contract


class NodeContract(Model):
    """A node's ``contract.yaml``. See the module docstring for the rules between sections.

    Raises:
        pydantic.ValidationError: on construction, for a wrong shape or any cross-field problem
            (:func:`node_findings`). The loader reports the same problems with file positions.
    """

    name: Name
    node_type: NodeType
    contract_version: ContractVersion
    node_version: Version
    description: Description
    input_model: ModelRef | None = None
    output_model: ModelRef | None = None
    handler_routing: HandlerRouting | None = None
    event_bus: EventBus | None = None
    state_machine: StateMachine | None = None
    intent_emission: IntentEmission | None = None
    error_handling: ErrorHandling | None = None
    capabilities: tuple[Capability, ...] = ()
    io_operations: tuple[IoOperation, ...] = ()
    dependencies: tuple[Dependency, ...] = ()
    metadata: Metadata = Field(default_factory=dict)

    @property
    def kind(self) -> str:
        """The node kind in lowercase: ``orchestrator``, ``reducer``, ``compute``, ``effect``."""
        return self.node_type.removesuffix("_GENERIC").lower()

    @model_validator(mode="after")
    def _consistent(self, info: ValidationInfo) -> Self:
        if isinstance(info.context, dict) and info.context.get(DEFER_CHECKS):
            return self
        problems = node_findings(self, secrets=True)
        if problems:
            raise ValueError("; ".join(str(p) for p in problems))
        return self


Rule = Literal["required", "allowed", "forbidden"]

SECTION_RULES: Final[dict[str, dict[str, Rule]]] = {
    #                  orchestrator  reducer      compute      effect
    "handler_routing": {
        "ORCHESTRATOR_GENERIC": "required",
        "REDUCER_GENERIC": "allowed",
        "COMPUTE_GENERIC": "allowed",
        "EFFECT_GENERIC": "required",
    },
    "state_machine": {
        "ORCHESTRATOR_GENERIC": "forbidden",
        "REDUCER_GENERIC": "required",
        "COMPUTE_GENERIC": "forbidden",
        "EFFECT_GENERIC": "forbidden",
    },
    "intent_emission": {
        "ORCHESTRATOR_GENERIC": "allowed",
        "REDUCER_GENERIC": "allowed",
        "COMPUTE_GENERIC": "forbidden",
        "EFFECT_GENERIC": "forbidden",
    },
    "error_handling": {
        "ORCHESTRATOR_GENERIC": "forbidden",
        "REDUCER_GENERIC": "forbidden",
        "COMPUTE_GENERIC": "forbidden",
        "EFFECT_GENERIC": "allowed",
    },
    "io_operations": {
        "ORCHESTRATOR_GENERIC": "forbidden",
        "REDUCER_GENERIC": "forbidden",
        "COMPUTE_GENERIC": "forbidden",
        "EFFECT_GENERIC": "allowed",
    },
}
"""Which sections each node type must, may or must not have."""

STRATEGIES: Final[dict[str, tuple[str, ...]]] = {
    "ORCHESTRATOR_GENERIC": ("topic_match", "payload_type_match"),
    "REDUCER_GENERIC": ("topic_match", "payload_type_match"),
    "COMPUTE_GENERIC": ("topic_match", "payload_type_match", "operation_match"),
    "EFFECT_GENERIC": ("operation_match",),
}
"""The routing strategies each node type may use."""


# --------------------------------------------------------------------------- cross-field rules


def node_findings(contract: NodeContract, *, secrets: bool = False) -> list[Finding]:
    """Every cross-field problem of a node contract, each with its field path.

    Structural state-machine problems (unknown or unreachable states, non-determinism) are not
    here: building the machine finds them (:func:`onex_contracts.compile.compile_machine`).

    Args:
        contract: the contract, already valid field by field.
        secrets: also scan every value for secrets (the loader scans the raw file instead).
    """
    found: list[Finding] = []
    found.extend(_section_findings(contract))
    if contract.event_bus is not None:
        found.extend(_bus_findings(contract.event_bus))
    if contract.handler_routing is not None:
        found.extend(_routing_findings(contract))
    if contract.state_machine is not None:
        found.extend(_terminal_findings(contract.state_machine))
    if contract.intent_emission is not None:
        found.extend(_emission_findings(contract))
    eh = contract.error_handling
    if eh is not None and eh.retry_policy is not None:
        rp = eh.retry_policy
        if rp.max_delay_ms < rp.initial_delay_ms:
            found.append(
                Finding(
                    ("error_handling", "retry_policy", "max_delay_ms"),
                    "range",
                    f"max_delay_ms ({rp.max_delay_ms}) must be at least "
                    f"initial_delay_ms ({rp.initial_delay_ms})",
                )
            )
    found.extend(_unique(("capabilities",), [c.name for c in contract.capabilities], "name"))
    found.extend(
        _unique(("io_operations",), [o.operation for o in contract.io_operations], "operation")
    )
    found.extend(_unique(("dependencies",), [d.name for d in contract.dependencies], "name"))
    if secrets:
        found.extend(secret_findings(contract.model_dump(mode="json", exclude_unset=True)))
    return found


def _unique(base: PathT, names: Iterable[str], field: str | None = None) -> Iterable[Finding]:
    seen: dict[str, int] = {}
    for index, name in enumerate(names):
        if name in seen:
            yield Finding(
                (*base, index, field) if field else (*base, index),
                "duplicate",
                f"{name!r} is already listed at {format_path(base)}[{seen[name]}]",
            )
        else:
            seen[name] = index


def _section_findings(contract: NodeContract) -> Iterable[Finding]:
    node_type = contract.node_type
    for section, rules in SECTION_RULES.items():
        rule = rules[node_type]
        present = getattr(contract, section) not in (None, ())
        if rule == "forbidden" and present:
            allowed = [t for t, r in rules.items() if r != "forbidden"]
            yield Finding(
                (section,),
                "section",
                f"{section} is not allowed on {node_type} contracts (only on {', '.join(allowed)})",
                at_key=True,
            )
        elif rule == "required" and not present:
            yield Finding(("node_type",), "missing", f"{node_type} contracts need a {section}")


def _bus_findings(bus: EventBus) -> Iterable[Finding]:
    base: PathT = ("event_bus",)
    for field in ("subscribe_topics", "publish_topics", "dlq_topics", "external_topics"):
        yield from _unique((*base, field), getattr(bus, field))
    for i, topic in enumerate(bus.subscribe_topics):
        kind = parse_topic(topic).kind
        if kind.category is None:
            yield Finding(
                (*base, "subscribe_topics", i),
                "topic-kind",
                f"cannot subscribe to a {kind.value} topic; only evt, cmd and intent are routed",
            )
    for i, topic in enumerate(bus.publish_topics):
        if parse_topic(topic).kind is Kind.DLQ:
            yield Finding(
                (*base, "publish_topics", i),
                "topic-kind",
                "dead-letter topics go in dlq_topics; the runtime writes them",
            )
    for i, topic in enumerate(bus.dlq_topics):
        if parse_topic(topic).kind is not Kind.DLQ:
            yield Finding(
                (*base, "dlq_topics", i), "topic-kind", "a dead-letter topic must have kind 'dlq'"
            )
    subscribed = set(bus.subscribe_topics)
    for i, topic in enumerate(bus.external_topics):
        if topic not in subscribed:
            yield Finding(
                (*base, "external_topics", i),
                "external-topic",
                f"{topic!r} is not in subscribe_topics; an external topic is one this node "
                "subscribes to",
            )


def assign_topic(entry: RoutingEntry, subscribed: tuple[str, ...]) -> str | Finding:
    """The topic (or pattern) a topic- or payload-matched entry listens on.

    Its own ``topic`` if it names one (which must be subscribed, or as a pattern match a
    subscribed topic); else the one subscribed topic whose event type is the entry's
    ``event_type``.

    Returns:
        The topic or pattern, or a :class:`Finding` (path relative to the entry) saying why none
        can be assigned.
    """
    if entry.topic is not None:
        pattern = parse_pattern(entry.topic)
        if pattern.is_exact:
            if entry.topic not in subscribed:
                return Finding(
                    ("topic",),
                    "unsubscribed",
                    f"topic {entry.topic!r} is not in event_bus.subscribe_topics"
                    + suggest(entry.topic, subscribed),
                )
        elif not any(pattern.matches(t) for t in subscribed):
            return Finding(
                ("topic",), "unsubscribed", "pattern matches none of event_bus.subscribe_topics"
            )
        return entry.topic
    if entry.event_type is not None:
        matches = [t for t in subscribed if parse_topic(t).event_type == entry.event_type]
        if len(matches) == 1:
            return matches[0]
        if not matches:
            return Finding(
                ("event_type",),
                "unassigned",
                f"no subscribed topic carries event type {entry.event_type!r}; "
                "name the entry's 'topic' or subscribe to the topic",
            )
        return Finding(
            ("event_type",),
            "unassigned",
            f"event type {entry.event_type!r} matches {len(matches)} subscribed topics "
            f"({', '.join(matches)}); name the entry's 'topic'",
        )
    return Finding(
        (),
        "unassigned",
        "entry has no topic: give 'topic', or an 'event_type' that matches exactly one "
        "subscribed topic",
    )


def _routing_findings(contract: NodeContract) -> Iterable[Finding]:
    routing = contract.handler_routing
    assert routing is not None
    base: PathT = ("handler_routing",)
    strategy = routing.routing_strategy
    allowed = STRATEGIES[contract.node_type]
    if strategy not in allowed:
        yield Finding(
            (*base, "routing_strategy"),
            "routing-strategy",
            f"{contract.node_type} contracts route by {' or '.join(allowed)}, not {strategy}",
        )
    bus = contract.event_bus
    subscribed = bus.subscribe_topics if bus is not None else ()
    published = set(bus.publish_topics) if bus is not None else set()
    handler_of: dict[str, tuple[str, str | None, int]] = {}
    operation_at: dict[str, int] = {}
    route_at: dict[tuple[str, str | None, str | None], int] = {}
    for i, entry in enumerate(routing.handlers):
        at: PathT = (*base, "handlers", i)
        if strategy == "operation_match":
            if entry.operation is None:
                yield Finding(
                    at, "routing", "operation_match entries need an 'operation' (an intent type)"
                )
            elif entry.operation in operation_at:
                yield Finding(
                    (*at, "operation"),
                    "duplicate",
                    f"operation {entry.operation!r} is already handled by "
                    f"handlers[{operation_at[entry.operation]}]",
                )
            else:
                operation_at[entry.operation] = i
            for field in ("topic", "event_type", "message_category", "event_model"):
                if getattr(entry, field) is not None:
                    yield Finding(
                        (*at, field),
                        "routing",
                        f"'{field}' does not apply to operation_match entries",
                        at_key=True,
                    )
        else:
            if entry.operation is not None:
                yield Finding(
                    (*at, "operation"),
                    "routing",
                    "'operation' applies to operation_match entries only",
                    at_key=True,
                )
            if strategy == "payload_type_match" and entry.event_type is None:
                yield Finding(
                    at, "routing", "payload_type_match entries need an 'event_type' to match"
                )
            assigned = assign_topic(entry, subscribed)
            if isinstance(assigned, Finding):
                yield Finding((*at, *assigned.path), assigned.code, assigned.message)
            else:
                yield from _entry_topic_findings(entry, assigned, at)
                key = (entry.effective_id, assigned, entry.event_type)
                if key in route_at:
                    yield Finding(at, "duplicate", f"duplicates handlers[{route_at[key]}]")
                route_at.setdefault(key, i)
        for j, topic in enumerate(entry.output_events):
            if topic not in published:
                yield Finding(
                    (*at, "output_events", j),
                    "unpublished",
                    f"{topic!r} is not in event_bus.publish_topics" + suggest(topic, published),
                )
        handler = (entry.handler.name, entry.handler.module, i)
        previous = handler_of.setdefault(entry.effective_id, handler)
        if previous[:2] != handler[:2]:
            yield Finding(
                (*at, "handler"),
                "handler-id",
                f"handler id {entry.effective_id!r} already names handler "
                f"{previous[0]!r} (handlers[{previous[2]}])",
            )


def _entry_topic_findings(entry: RoutingEntry, topic: str, at: PathT) -> Iterable[Finding]:
    pattern = parse_pattern(topic)
    if entry.event_type is not None and pattern.is_exact:
        carried = parse_topic(topic).event_type
        if carried != entry.event_type:
            yield Finding(
                (*at, "event_type"),
                "event-type",
                f"topic {topic!r} carries event type {carried!r}, not {entry.event_type!r}",
            )
    fixed = pattern.category
    if (
        entry.message_category is not None
        and fixed is not None
        and (fixed.value != entry.message_category)
    ):
        yield Finding(
            (*at, "message_category"),
            "category",
            f"topic {topic!r} carries {fixed.value}s, not {entry.message_category}s",
        )


def _terminal_findings(machine: StateMachine) -> Iterable[Finding]:
    base: PathT = ("state_machine",)
    terminal = {s.state_name for s in machine.states if s.is_terminal}
    names = [s.state_name for s in machine.states]
    listed: set[str] = set()
    for i, name in enumerate(machine.terminal_states):
        at: PathT = (*base, "terminal_states", i)
        if name in listed:
            yield Finding(at, "duplicate", f"terminal state {name!r} is listed twice")
        listed.add(name)
        if name not in names:
            yield Finding(at, "unknown-state", f"unknown state {name!r}" + suggest(name, names))
        elif name not in terminal:
            index = names.index(name)
            yield Finding(
                (*base, "states", index, "is_terminal"),
                "terminal",
                f"state {name!r} is in terminal_states but is_terminal is false",
                at_key=True,
            )
    for i, state in enumerate(machine.states):
        if state.is_terminal and state.state_name not in listed:
            yield Finding(
                (*base, "states", i, "is_terminal"),
                "terminal",
                f"state {state.state_name!r} is terminal but not in terminal_states",
            )


def _emission_findings(contract: NodeContract) -> Iterable[Finding]:
    emission = contract.intent_emission
    assert emission is not None
    base: PathT = ("intent_emission", "intents")
    machine = contract.state_machine
    actions = machine.action_names() if machine is not None else {}
    seen: dict[tuple[str, str | None], int] = {}
    linked: set[str] = set()
    for i, intent in enumerate(emission.intents):
        key = (intent.intent_type, intent.action)
        if key in seen:
            yield Finding(
                (*base, i), "duplicate", f"duplicates intent_emission.intents[{seen[key]}]"
            )
        seen.setdefault(key, i)
        if intent.action is None:
            continue
        linked.add(intent.action)
        if machine is None:
            yield Finding(
                (*base, i, "action"),
                "unknown-action",
                "only a reducer's intents name an FSM action; this node has no state machine",
                at_key=True,
            )
        elif intent.action not in actions:
            yield Finding(
                (*base, i, "action"),
                "unknown-action",
                f"unknown action {intent.action!r}" + suggest(intent.action, actions),
            )
    if machine is None:
        return
    for t_index, transition in enumerate(machine.transitions):
        for a_index, action in enumerate(transition.actions):
            if action.action_type == "intent_emission" and action.action_name not in linked:
                yield Finding(
                    ("state_machine", "transitions", t_index, "actions", a_index, "action_name"),
                    "unlinked-action",
                    f"action {action.action_name!r} emits intents, but no intent in "
                    "intent_emission names it as its action",
                )
                linked.add(action.action_name)  # report each action once
