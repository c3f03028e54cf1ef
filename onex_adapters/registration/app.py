"""The composition root of the registration workflow: contracts + adapters → a runtime host.

:func:`build_registration` is the one place where the workflow is wired. Everything behavioural
comes from the shipped contracts (``onex_contracts/contracts/registration``):

- the **routes** — which topics reach the orchestrator and the tick handler, and the dead-letter
  topic — from the orchestrator contract's ``handler_routing`` and ``event_bus``;
- the **state machine** — from the reducer contract;
- the **effect bindings** — which handler carries out each intent type, and on which topic its
  outcome is reported — from the effect contracts' ``operation_match`` routing, and the
  **retry, breaker and timeout** of each from its handler contract's ``descriptor``.

Every adapter comes in as a parameter (bus, stores, registry, table, clock, id source), so the
same function builds the embedded default, a test world with faults, or a production host.
Nothing here reads a clock or makes an id of its own; the backoff jitter is seeded.
"""

from __future__ import annotations

import os
import random
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from onex_adapters.clock import Clock
from onex_adapters.memory import InMemoryServiceRegistry
from onex_adapters.registration.effects import (
    InMemoryRegistrationTable,
    RegistrationStorageEffect,
    ServiceRegistryEffect,
)
from onex_adapters.registration.handlers import (
    Observer,
    RegistrationOrchestrator,
    RegistrationTicks,
)
from onex_adapters.runtime import (
    EffectBinding,
    IdSource,
    MessageHandler,
    RuntimeConfig,
    RuntimeHost,
    TickSource,
)
from onex_contracts import (
    REGISTRATION_CONTRACTS,
    HandlerContract,
    NodeContract,
    compile_effect_policy,
    compile_machine,
    compile_routes,
    load,
)
from onex_core.dispatch import Plan, Route, RouteTable, merge, route_topic
from onex_core.errors import ContractError
from onex_core.fsm import Machine
from onex_core.ports import EffectHandler, EventBus, IdempotencyStore, ProjectionStore
from onex_core.reducers import FsmReducer
from onex_core.registration import RegistrationConfig, Step, registration_reducer
from onex_core.registration.model import DEADLINE_CHECK, INTROSPECTION, RUNTIME_TICK
from onex_core.resilience import BreakerPolicy, EffectPolicy, RetryPolicy
from onex_core.topics import Category, parse_topic

__all__ = ["Contracts", "Registration", "build_registration", "load_registration_contracts"]

_ORCHESTRATOR = "node_registration_orchestrator"
_REDUCER = "node_registration_reducer"
_DISABLED_BREAKER = BreakerPolicy(failure_threshold=2**31 - 1)


@dataclass(frozen=True, slots=True)
class Contracts:
    """What the registration contracts compile to."""

    routes: RouteTable
    machine: Machine
    # intent type → (effect handler id, outcome topic or None)
    operations: Mapping[str, tuple[str, str | None]]
    # effect handler id → policy
    policies: Mapping[str, EffectPolicy]


def _node(directory: Path, name: str) -> NodeContract:
    contract = load(directory / name / "contract.yaml")
    if not isinstance(contract, NodeContract):
        raise ContractError(f"{name}/contract.yaml is not a node contract")
    return contract


def _policy(contract: HandlerContract) -> EffectPolicy:
    compiled = compile_effect_policy(contract)
    default = EffectPolicy()
    return EffectPolicy(
        retry=compiled.retry or RetryPolicy(max_attempts=1),
        breaker=compiled.breaker or _DISABLED_BREAKER,
        timeout=compiled.timeout or default.timeout,
    )


def _deadline_route(routes: RouteTable) -> Route:
    introspection = route_topic(routes, INTROSPECTION, parse_topic(INTROSPECTION).event_type)
    if not isinstance(introspection, Plan) or not introspection.handler_ids:
        raise ContractError("the orchestrator contract does not route node introspection")
    return Route.to(
        introspection.handler_ids[0],
        DEADLINE_CHECK,
        message_types={parse_topic(DEADLINE_CHECK).event_type},
        category=Category.COMMAND,
    )


def load_registration_contracts(
    directory: str | os.PathLike[str] = REGISTRATION_CONTRACTS,
) -> Contracts:
    """Load and compile the registration node family from ``directory``.

    Raises:
        ContractInvalid: a contract file is invalid (every problem, located).
        ContractError: a contract is of the wrong kind, or an effect names a handler that has
            no handler contract.
    """
    root = Path(directory)
    routes = compile_routes(_node(root, _ORCHESTRATOR))
    check = route_topic(routes, DEADLINE_CHECK, parse_topic(DEADLINE_CHECK).event_type)
    if not isinstance(check, Plan):
        # The shipped orchestrator contract does not declare the deadline-check command yet:
        # route it to the orchestrator's handler like every other message about a node.
        routes = merge(routes, RouteTable((_deadline_route(routes),), routes.dlq_topic))
    machine = compile_machine(_node(root, _REDUCER))
    policies: dict[str, EffectPolicy] = {}
    for path in sorted(root.rglob("handler_contract.yaml")):
        handler = load(path)
        if isinstance(handler, HandlerContract):
            policies[handler.handler_id] = _policy(handler)
    operations: dict[str, tuple[str, str | None]] = {}
    for path in sorted(root.glob("*/contract.yaml")):
        contract = load(path)
        routing = contract.handler_routing if isinstance(contract, NodeContract) else None
        if routing is None or routing.routing_strategy != "operation_match":
            continue
        for entry in routing.handlers:
            if entry.operation is None:
                continue
            if entry.effective_id not in policies:
                raise ContractError(
                    f"{path.parent.name}: effect handler {entry.effective_id!r} of "
                    f"{entry.operation!r} has no handler contract"
                )
            outcome = entry.output_events[0] if entry.output_events else None
            operations[entry.operation] = (entry.effective_id, outcome)
    return Contracts(routes, machine, operations, policies)


@dataclass(frozen=True, slots=True)
class Registration:
    """A wired registration workflow: run ``host`` and ``ticks``; the rest is for inspection."""

    host: RuntimeHost
    ticks: TickSource
    orchestrator: RegistrationOrchestrator
    tick_handler: RegistrationTicks
    reducer: FsmReducer[Step]
    config: RegistrationConfig
    contracts: Contracts


def build_registration(
    bus: EventBus,
    projections: ProjectionStore,
    idempotency: IdempotencyStore,
    registry: InMemoryServiceRegistry,
    storage: InMemoryRegistrationTable,
    clock: Clock,
    ids: IdSource,
    config: RegistrationConfig | None = None,
    *,
    runtime: RuntimeConfig | None = None,
    seed: int = 0,
    observe: Observer | None = None,
    contracts: str | os.PathLike[str] = REGISTRATION_CONTRACTS,
) -> Registration:
    """Wire the registration workflow on the given adapters.

    Args:
        bus: the event bus the host consumes from and publishes to.
        projections: where node projections live.
        idempotency: where done intents are recorded.
        registry: the service registry backend.
        storage: the registration table backend.
        clock: the runtime's clock.
        ids: ids for messages the runtime originates (ticks).
        config: timing and limits (defaults: DESIGN §4).
        runtime: the host's configuration (default: named ``registration``, one partition key
            at a time per worker, dead letters to the contract's DLQ topic).
        seed: seeds the backoff jitter.
        observe: told about every message the orchestrator handles.
        contracts: the directory of the registration contracts.

    Returns:
        The :class:`Registration`; nothing has started.

    Raises:
        ContractInvalid, ContractError: the contracts do not load, or disagree with ``config``
            or with the handlers this function provides.
    """
    config = config or RegistrationConfig()
    compiled = load_registration_contracts(contracts)
    reducer = registration_reducer(compiled.machine, config)
    orchestrator = RegistrationOrchestrator(reducer, config, observe=observe)
    tick_handler = RegistrationTicks(config)
    handlers: dict[str, MessageHandler] = {}
    for route in compiled.routes.routes:
        handlers[route.handler_id] = tick_handler if route.pattern == RUNTIME_TICK else orchestrator
    effects: dict[str, EffectHandler] = {
        "effect.service_registry": ServiceRegistryEffect(registry, clock),
        "effect.registration_storage": RegistrationStorageEffect(storage),
    }
    bindings = []
    for intent_type, (handler_id, outcome_topic) in sorted(compiled.operations.items()):
        handler = effects.get(handler_id)
        if handler is None:
            raise ContractError(f"no effect handler is provided for {handler_id!r}")
        policy = compiled.policies[handler_id]
        bindings.append(EffectBinding(intent_type, handler, policy, outcome_topic))
    host = RuntimeHost(
        bus=bus,
        routes=compiled.routes,
        handlers=handlers,
        effects=bindings,
        projections=projections,
        idempotency=idempotency,
        clock=clock,
        ids=ids,
        config=runtime or RuntimeConfig(name="registration"),
        jitter=random.Random(seed),
    )
    ticks = TickSource(bus, clock, ids, interval=config.tick_interval, topic=RUNTIME_TICK)
    return Registration(host, ticks, orchestrator, tick_handler, reducer, config, compiled)
