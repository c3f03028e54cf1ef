"""Compiling contracts into the core's tables: machines, route tables and effect policies.

A contract model is data about behaviour; :mod:`onex_core` runs behaviour from its own frozen
values. This module is the one place that converts between them:

- :func:`compile_machine` — ``state_machine`` → :class:`onex_core.fsm.Machine`. Guards are parsed
  here, at load time: a guard that does not parse is a contract error with its location, never a
  ``False`` at run time. :class:`~onex_core.errors.MachineError` problems carry contract field
  paths (``state_machine.transitions[3].to_state``), so the loader can point at the line.
- :func:`compile_routes` — ``handler_routing`` + ``event_bus`` → :class:`onex_core.dispatch.
  RouteTable`: one route per topic- or payload-matched entry, on the topic the schema assigned
  to it, accepting the entry's ``event_type`` (any type when it names none), with the contract's
  dead-letter topic.
- :func:`compile_operations` — an effect's ``operation_match`` entries → ``{intent type: handler
  id}``, which is how the runtime finds the handler for an intent.
- :func:`compile_effect_policy` — ``error_handling`` (node) or ``descriptor`` (handler) →
  :class:`EffectPolicy`: retry, circuit breaker and timeout in the core's units (seconds, total
  attempts).

Every function is pure and takes a *valid* contract (from :mod:`onex_contracts.loader`, or built
and validated in Python).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from onex_contracts._fields import Finding, PathT
from onex_contracts.issues import suggest
from onex_contracts.schema import NodeContract, StateMachine, assign_topic
from onex_contracts.schema_handler import HandlerContract
from onex_core.dispatch import Route, RouteTable
from onex_core.errors import ContractError, MachineError, Problem
from onex_core.fsm import GuardSpec, Machine, StateSpec, TransitionSpec, build_machine
from onex_core.resilience import BreakerPolicy, RetryPolicy
from onex_core.topics import Category

__all__ = [
    "EffectPolicy",
    "compile_effect_policy",
    "compile_machine",
    "compile_operations",
    "compile_routes",
    "machine_findings",
]


# --------------------------------------------------------------------------- machines


def compile_machine(contract: NodeContract | StateMachine) -> Machine:
    """Build the core machine of a reducer contract (or of a ``state_machine`` section).

    Returns:
        The frozen :class:`~onex_core.fsm.Machine`.

    Raises:
        ContractError: the contract has no state machine.
        MachineError: every structural problem, each :class:`~onex_core.errors.Problem` with a
            contract field path such as ``("state_machine", "transitions", 3, "to_state")``.
    """
    section = contract.state_machine if isinstance(contract, NodeContract) else contract
    if section is None:
        name = contract.name if isinstance(contract, NodeContract) else "?"
        raise ContractError(f"contract {name!r} has no state_machine")
    machine, findings = machine_findings(section)
    if machine is None:
        raise MachineError(
            section.state_machine_name, [Problem(f.message, f.path) for f in findings]
        )
    return machine


def machine_findings(section: StateMachine) -> tuple[Machine | None, list[Finding]]:
    """Build a machine, returning it or every problem as a located-by-path finding.

    Unreachable states are reported only when the machine has no other problem: a broken
    transition is left out of the reachability check, so its targets would look unreachable.

    Returns:
        ``(machine, [])`` or ``(None, findings)``; finding paths start with ``state_machine``.
    """
    states = [
        StateSpec(
            name=s.state_name,
            terminal=s.is_terminal,
            entry_actions=s.entry_actions,
            exit_actions=s.exit_actions,
            timeout_ms=s.timeout_ms,
            description=s.description or "",
        )
        for s in section.states
    ]
    transitions = [
        TransitionSpec(
            from_state=t.from_state,
            to_state=t.to_state,
            trigger=t.trigger,
            priority=t.priority,
            conditions=tuple(
                GuardSpec(c.expression, c.required, c.condition_name, c.error_message)
                for c in t.conditions
            ),
            actions=tuple(a.action_name for a in t.actions),
            name=t.transition_name,
        )
        for t in section.transitions
    ]
    try:
        machine = build_machine(
            section.state_machine_name, section.initial_state, states, transitions
        )
    except MachineError as exc:
        findings = [_finding(section, problem) for problem in exc.problems]
        # A transition with a problem is left out of the reachability check, so the states it
        # leads to look unreachable. Report those only once nothing else is wrong.
        primary = [f for f in findings if f.code != "unreachable-state"]
        return None, primary or findings
    return machine, []


_RENAMED: Final[Mapping[tuple[str, ...], str]] = MappingProxyType(
    {
        ("name",): "state_machine_name",
        ("initial",): "initial_state",
        ("states", "name"): "state_name",
        ("transitions", "name"): "transition_name",
        ("transitions", "conditions"): "expression",
        ("transitions", "conditions", "name"): "condition_name",
        ("transitions", "actions"): "action_name",
    }
)


def _contract_path(path: tuple[str | int, ...]) -> PathT:
    """A core machine path → the contract field path (under ``state_machine``)."""
    shape = tuple(p for p in path if isinstance(p, str))
    renamed = _RENAMED.get(shape)
    out: list[str | int] = ["state_machine", *path]
    if renamed is None:
        return tuple(out)
    if isinstance(path[-1], int):  # a list element: name the field inside it
        return (*out, renamed)
    out[-1] = renamed
    return tuple(out)


def _finding(section: StateMachine, problem: Problem) -> Finding:
    path = _contract_path(problem.path)
    message = problem.message
    code = "state-machine"
    if "not a declared state" in message:
        code = "unknown-state"
        value = _value_at(section, path[1:])
        if isinstance(value, str):
            names = [s.state_name for s in section.states]
            message = f"unknown state {value!r}" + suggest(value, names)
    elif "unreachable" in message:
        code = "unreachable-state"
    elif "terminal" in message:
        code = "terminal-exit"
    elif "ambiguous" in message:
        code = "nondeterministic"
    elif "duplicate" in message:
        code = "duplicate"
    elif "conditions" in path:
        code = "guard"
    return Finding(path, code, message)


def _value_at(section: StateMachine, path: PathT) -> object:
    current: object = section
    for part in path:
        if isinstance(part, int):
            if not isinstance(current, tuple) or part >= len(current):
                return None
            current = current[part]
        else:
            current = getattr(current, part, None)
    return current


# --------------------------------------------------------------------------- routes


def compile_routes(contract: NodeContract) -> RouteTable:
    """The route table of a node contract's topic- or payload-matched handlers.

    Each entry becomes ``Route.to(entry handler id, assigned topic, message_types={event_type}
    or any, category=message_category)``; the table's DLQ topic is the contract's
    ``dlq_topics`` entry, if any. An ``operation_match`` contract routes intents, not topics:
    its table holds no routes (see :func:`compile_operations`).

    Raises:
        ContractError: an entry cannot be given a topic (impossible for a validated contract).
    """
    bus = contract.event_bus
    dlq = bus.dlq_topics[0] if bus is not None and bus.dlq_topics else None
    routing = contract.handler_routing
    if routing is None or routing.routing_strategy == "operation_match":
        return RouteTable((), dlq)
    subscribed = bus.subscribe_topics if bus is not None else ()
    routes = []
    for index, entry in enumerate(routing.handlers):
        topic = assign_topic(entry, subscribed)
        if isinstance(topic, Finding):
            raise ContractError(
                f"contract {contract.name!r}: handler_routing.handlers[{index}]: {topic.message}"
            )
        category = Category(entry.message_category) if entry.message_category else None
        types = (entry.event_type,) if entry.event_type else ()
        routes.append(Route.to(entry.effective_id, topic, message_types=types, category=category))
    return RouteTable(tuple(routes), dlq)


def compile_operations(contract: NodeContract) -> Mapping[str, str]:
    """``{intent type: handler id}`` of an ``operation_match`` contract (empty otherwise)."""
    routing = contract.handler_routing
    if routing is None or routing.routing_strategy != "operation_match":
        return MappingProxyType({})
    return MappingProxyType(
        {e.operation: e.effective_id for e in routing.handlers if e.operation is not None}
    )


# --------------------------------------------------------------------------- effect policy


@dataclass(frozen=True, slots=True)
class EffectPolicy:
    """How the runtime runs an effect: retries, circuit breaker and per-attempt timeout.

    ``None`` means the contract does not say, and the runtime applies its own default.
    ``timeout`` is in seconds.
    """

    retry: RetryPolicy | None = None
    breaker: BreakerPolicy | None = None
    timeout: float | None = None


_MULTIPLIER: Final = {"fixed": 1.0, "exponential": 2.0}


def compile_effect_policy(contract: NodeContract | HandlerContract) -> EffectPolicy:
    """The effect policy a node contract's ``error_handling`` or a handler's ``descriptor`` says.

    Node contracts: ``max_retries`` retries means ``max_retries + 1`` attempts; delays and
    timeouts go from milliseconds to seconds; ``exponential_base`` is the multiplier.
    Handler contracts: a disabled retry policy is one attempt; ``fixed`` backoff has multiplier
    1, ``exponential`` 2; a disabled breaker is ``None``; the breaker's ``timeout_ms`` is its
    reset timeout.
    """
    if isinstance(contract, HandlerContract):
        d = contract.descriptor
        r = d.retry_policy
        retry = RetryPolicy(
            max_attempts=r.max_retries + 1 if r.enabled else 1,
            initial_delay=r.base_delay_ms / 1000,
            max_delay=r.max_delay_ms / 1000,
            multiplier=_MULTIPLIER[r.backoff_strategy],
            jitter=r.jitter_factor,
        )
        b = d.circuit_breaker
        breaker = (
            BreakerPolicy(b.failure_threshold, b.timeout_ms / 1000, b.success_threshold)
            if b.enabled
            else None
        )
        timeout = d.timeout_ms / 1000 if d.timeout_ms is not None else None
        return EffectPolicy(retry, breaker, timeout)
    eh = contract.error_handling
    if eh is None:
        return EffectPolicy()
    node_retry = None
    if eh.retry_policy is not None:
        p = eh.retry_policy
        node_retry = RetryPolicy(
            max_attempts=p.max_retries + 1,
            initial_delay=p.initial_delay_ms / 1000,
            max_delay=p.max_delay_ms / 1000,
            multiplier=p.exponential_base,
            jitter=p.jitter,
        )
    node_breaker = None
    if eh.circuit_breaker is not None:
        c = eh.circuit_breaker
        node_breaker = BreakerPolicy(
            c.failure_threshold, c.reset_timeout_ms / 1000, c.success_threshold
        )
    return EffectPolicy(
        node_retry, node_breaker, eh.timeout_ms / 1000 if eh.timeout_ms is not None else None
    )
