"""From a directory of contracts to a runtime host: the composition root of a workflow.

A workflow is a directory of YAML contracts, one pure decision function, and an effect handler
per intent type. :func:`build_host` wires them on the adapters it is given::

    contracts = load_contracts("contracts")        # routes, machines, effect bindings
    reducer = FsmReducer(contracts.machine, ...)  # the reducer contract's machine
    host = build_host(
        contracts,
        orchestrator=decide,                       # (state, envelope, now) -> EntityDecision
        domain="orders",                           # where the entities' projections live
        effects={"payment.capture": gateway},      # one handler per intent type
        bus=bus, projections=projections, idempotency=idempotency, clock=clock,
    )
    await host.run()

Everything behavioural comes from the contracts:

- the **routes** — which topics reach the orchestrator, and the dead-letter topic — from the
  orchestrator contracts' ``handler_routing`` and ``event_bus`` (merged when there are several);
- the **state machines** — from the reducer contracts (:attr:`Contracts.machine`);
- the **effect bindings** — from the effect contracts' ``operation_match`` entries: the handler
  contract an intent type goes to, whose ``descriptor`` gives the **retry, circuit breaker and
  timeout**, and the entry's first output topic, on which the runtime announces every outcome.

The code supplies only what a contract cannot: the decision (a
:class:`~onex_core.entities.Decide`, wrapped here in an
:class:`~onex_adapters.runtime.EntityOrchestrator`, or a ready message handler) and the effect
handlers. Whatever does not match is refused before anything runs: an intent type the contracts
route but no handler was given for, a handler given for an intent type or a route no contract
names, an effect entry whose handler has no handler contract.

Messages from the outside world — a command from a user interface, a fact from another
system, a test's input — enter a workflow through the bus. :func:`message` builds one (its event
type read from its topic, a new conversation), and :func:`send` publishes envelopes the way the
host publishes its own: on their topic, keyed by entity id, with the envelope headers::

    await send(bus, message(SUBMIT, {"title": "Notes"}, entity_id="doc-1", at=clock.now()))
"""

from __future__ import annotations

import os
import random
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from onex_adapters.clock import Clock
from onex_adapters.codec import EnvelopeCodec
from onex_adapters.runtime import (
    EffectBinding,
    EntityOrchestrator,
    IdSource,
    MessageHandler,
    RuntimeConfig,
    RuntimeHost,
    envelope_headers,
)
from onex_contracts import (
    ContractInvalid,
    HandlerContract,
    NodeContract,
    compile_effect_policy,
    compile_machine,
    compile_routes,
    load_directory,
)
from onex_core.dispatch import RouteTable, merge
from onex_core.entities import Decide
from onex_core.errors import ContractError, UsageError
from onex_core.fsm import Machine
from onex_core.messages import Envelope
from onex_core.ports import (
    EffectHandler,
    EventBus,
    IdempotencyStore,
    ProjectionStore,
    port_problems,
)
from onex_core.resilience import BreakerPolicy, EffectPolicy, RetryPolicy
from onex_core.topics import parse_topic

__all__ = ["Contracts", "build_host", "load_contracts", "message", "send"]

_NEVER_OPENS: Final = BreakerPolicy(failure_threshold=2**31 - 1)
"""The breaker of a handler contract whose circuit breaker is disabled."""


@dataclass(frozen=True, slots=True)
class Contracts:
    """What a directory of contracts compiles to.

    Attributes:
        routes: the orchestrator contracts' routes and dead-letter topic.
        machines: reducer contract name → its compiled machine.
        operations: intent type → (effect handler id, outcome topic or None).
        policies: effect handler id → its policy (from the handler contract's descriptor).
        orchestrators: the orchestrator contracts' names, sorted.
        topics: what a host of these contracts subscribes to: the orchestrator contracts'
            ``event_bus.subscribe_topics`` and every topic their routes name exactly, sorted
            (a route by pattern, ``onex.cmd.docs.*.v1``, is served by the topics subscribed).
    """

    routes: RouteTable
    machines: Mapping[str, Machine]
    operations: Mapping[str, tuple[str, str | None]]
    policies: Mapping[str, EffectPolicy]
    orchestrators: tuple[str, ...]
    topics: tuple[str, ...] = ()

    @property
    def machine(self) -> Machine:
        """The machine of the directory's one reducer contract.

        Raises:
            ContractError: there is no reducer contract, or more than one (use ``machines``).
        """
        if len(self.machines) != 1:
            names = ", ".join(sorted(self.machines)) or "none"
            raise ContractError(f"expected one reducer contract, found {names}")
        (machine,) = self.machines.values()
        return machine


def _policy(contract: HandlerContract) -> EffectPolicy:
    compiled = compile_effect_policy(contract)
    return EffectPolicy(
        retry=compiled.retry or RetryPolicy(max_attempts=1),
        breaker=compiled.breaker or _NEVER_OPENS,
        timeout=compiled.timeout or EffectPolicy().timeout,
    )


def load_contracts(directory: str | os.PathLike[str]) -> Contracts:
    """Load and compile every contract under ``directory``.

    Raises:
        ContractInvalid: a contract file is invalid (every problem of every file, located).
        ContractError: ``directory`` is not a directory or holds no orchestrator contract; two
            effect contracts route the same intent type; an effect entry names a handler
            that has no handler contract. (RouteConflict, MachineError: as the compilers.)
    """
    root = Path(directory)
    if not root.is_dir():
        raise ContractError(f"{root.name or root}: not a directory of contracts")
    loaded, issues = load_directory(root)
    if issues:
        raise ContractInvalid(issues)
    nodes = sorted(
        (item.contract for item in loaded if isinstance(item.contract, NodeContract)),
        key=lambda node: node.name,
    )
    policies = {
        item.contract.handler_id: _policy(item.contract)
        for item in loaded
        if isinstance(item.contract, HandlerContract)
    }
    orchestrators = [node for node in nodes if node.node_type == "ORCHESTRATOR_GENERIC"]
    if not orchestrators:
        raise ContractError(f"{root.name}: no orchestrator contract")
    machines = {
        node.name: compile_machine(node)
        for node in nodes
        if node.node_type == "REDUCER_GENERIC" and node.state_machine is not None
    }
    operations: dict[str, tuple[str, str | None]] = {}
    routed_by: dict[str, str] = {}
    for node in nodes:
        routing = node.handler_routing
        if routing is None or routing.routing_strategy != "operation_match":
            continue
        for entry in routing.handlers:
            operation = entry.operation
            if operation is None:
                continue
            if entry.effective_id not in policies:
                raise ContractError(
                    f"{node.name}: effect handler {entry.effective_id!r} of {operation!r} has "
                    "no handler contract"
                )
            if operation in routed_by:
                raise ContractError(
                    f"{node.name}: intent type {operation!r} is also routed by "
                    f"{routed_by[operation]}"
                )
            routed_by[operation] = node.name
            outcome = entry.output_events[0] if entry.output_events else None
            operations[operation] = (entry.effective_id, outcome)
    routes = merge(*(compile_routes(node) for node in orchestrators))
    topics = {route.pattern for route in routes.routes if route.topic_pattern.is_exact}
    for node in orchestrators:
        if node.event_bus is not None:
            topics.update(node.event_bus.subscribe_topics)
    return Contracts(
        routes=routes,
        machines=machines,
        operations=operations,
        policies=policies,
        orchestrators=tuple(node.name for node in orchestrators),
        topics=tuple(sorted(topics)),
    )


def build_host(
    contracts: str | os.PathLike[str] | Contracts,
    *,
    orchestrator: MessageHandler | Decide,
    effects: Mapping[str, EffectHandler],
    bus: EventBus,
    projections: ProjectionStore,
    idempotency: IdempotencyStore,
    clock: Clock,
    domain: str | None = None,
    handlers: Mapping[str, MessageHandler] | None = None,
    ids: IdSource | None = None,
    runtime: RuntimeConfig | None = None,
    seed: int = 0,
    handler_configs: Mapping[str, Mapping[str, Any]] | None = None,
) -> RuntimeHost:
    """Wire a workflow's contracts, decision and effect handlers on the given adapters.

    Args:
        contracts: the contract directory, or what :func:`load_contracts` made of it.
        orchestrator: the handler of every routed message — a pure decision (wrapped in an
            :class:`~onex_adapters.runtime.EntityOrchestrator` over ``domain``) or a message
            handler.
        effects: the effect handler of each intent type the effect contracts route.
        bus: the event bus the host consumes from and publishes to.
        projections: where the entities' projections live.
        idempotency: where done intents are recorded.
        clock: the runtime's clock.
        domain: the projection domain; required with a decision, refused with a handler.
        handlers: handlers for particular routed handler ids (e.g. a tick handler); every
            other handler id the routes name goes to ``orchestrator``.
        ids: ids for messages the runtime originates (default: random).
        runtime: the host's configuration (default: named after the orchestrator contracts).
        seed: seeds the backoff jitter.
        handler_configs: what the host passes to each effect handler's ``initialize`` when it
            starts, by ``handler_type`` (default ``{}``: a handler built ready ignores it).

    Returns:
        The :class:`~onex_adapters.runtime.RuntimeHost`; nothing has started (its
        :meth:`~onex_adapters.runtime.RuntimeHost.start` initializes the effect handlers).

    Raises:
        ContractInvalid, ContractError: as :func:`load_contracts`; or an intent type the
            contracts route has no handler in ``effects``, an ``effects`` key is an intent type
            no effect contract routes, or a ``handlers`` key is a handler id no route names.
        UsageError: an effect handler does not satisfy the effect-handler port; a decision
            came without ``domain``, or a handler with one; ``handler_configs`` names a handler
            type no effect handler has.
    """
    compiled = contracts if isinstance(contracts, Contracts) else load_contracts(contracts)
    extra = sorted(set(handlers or ()) - set(compiled.routes.handler_ids))
    if extra:
        raise ContractError(f"no route names the handler id(s) {', '.join(map(repr, extra))}")
    missing = sorted(set(compiled.operations) - set(effects))
    if missing:
        raise ContractError(
            "no effect handler is given for the intent type(s) "
            + ", ".join(f"{t!r} (routed to {compiled.operations[t][0]})" for t in missing)
        )
    unrouted = sorted(set(effects) - set(compiled.operations))
    if unrouted:
        raise ContractError(
            "an effect handler is given for intent type(s) no effect contract routes: "
            + ", ".join(map(repr, unrouted))
        )
    bindings = []
    for intent_type, (handler_id, outcome_topic) in sorted(compiled.operations.items()):
        handler = effects[intent_type]
        problems = port_problems(handler, EffectHandler)
        if problems:
            raise UsageError(
                f"the effect handler for {intent_type!r}, {type(handler).__name__}, is not an "
                f"effect handler ({problems[0]})"
            )
        policy = compiled.policies[handler_id]
        bindings.append(EffectBinding(intent_type, handler, policy, outcome_topic))
    main = _orchestrator(orchestrator, domain)
    given = handlers or {}
    return RuntimeHost(
        bus=bus,
        routes=compiled.routes,
        handlers={hid: given.get(hid, main) for hid in compiled.routes.handler_ids},
        effects=bindings,
        projections=projections,
        idempotency=idempotency,
        clock=clock,
        topics=compiled.topics or None,
        ids=ids,
        config=runtime or RuntimeConfig(name="+".join(compiled.orchestrators)),
        jitter=random.Random(seed),
        handler_configs=handler_configs,
    )


def _orchestrator(orchestrator: MessageHandler | Decide, domain: str | None) -> MessageHandler:
    if isinstance(orchestrator, MessageHandler):
        if domain is not None:
            raise UsageError(
                "build_host: domain goes with a decision function; the handler reads its own"
            )
        return orchestrator
    if domain is None:
        raise UsageError("build_host: a decision function needs domain= (its projection domain)")
    return EntityOrchestrator(f"{domain}-orchestrator", domain, orchestrator)


# --------------------------------------------------------------------------- messages in


def message(
    topic: str,
    payload: Mapping[str, Any],
    *,
    entity_id: str,
    at: datetime,
    message_id: uuid.UUID | None = None,
) -> Envelope:
    """A message that starts a conversation, for a workflow to receive.

    Args:
        topic: where it goes; its ``event_type`` is read from it (``onex.cmd.docs.submit.v1``
            → ``docs.submit``).
        payload: its content.
        entity_id: the entity it is about (the partition key).
        at: when it was emitted (timezone-aware).
        message_id: its id, also its correlation id (default: a random one). Give a stable id
            when the sender may send the same message again: the workflow then recognises it.

    Returns:
        The envelope, with no causation (nothing in the workflow caused it).

    Raises:
        TopicError: ``topic`` is not a valid ONEX topic.
        ContentError: ``at`` is naive, or ``entity_id`` is empty or too long.
    """
    event_type = parse_topic(topic).event_type
    envelope_id = uuid.uuid4() if message_id is None else message_id
    return Envelope(envelope_id, topic, event_type, payload, envelope_id, entity_id, at)


async def send(bus: EventBus, *envelopes: Envelope, codec: EnvelopeCodec | None = None) -> None:
    """Publish ``envelopes`` in order, as the runtime host publishes its own: each on its
    topic, keyed by its entity id (so one entity's messages stay in order), with the envelope
    headers.

    Raises:
        UsageError: an envelope cannot be encoded (as ``EnvelopeCodec.encode``); every one is
            encoded first, so then none is sent.
        EffectUnavailable: the bus could not take one; those before it were sent, it and those
            after it were not (sending them all again is safe: the ids are the same).
    """
    encoder = codec or EnvelopeCodec()
    records = [
        (envelope, encoder.encode(envelope), envelope_headers(envelope)) for envelope in envelopes
    ]
    for envelope, value, headers in records:
        await bus.publish(envelope.topic, value, key=envelope.entity_id.encode(), headers=headers)
