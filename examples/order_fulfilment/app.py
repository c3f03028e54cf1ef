"""The composition root: the order contracts and the adapters → a runtime host.

:func:`build_shop` is the one place the workflow is wired, and everything behavioural comes
from the contracts in ``contracts/``:

- the **routes** — which topics reach the orchestrator, and the dead-letter topic — from the
  orchestrator contract;
- the **state machine** — from the reducer contract;
- the **effect binding** — which handler captures payments and on which topic it announces
  each outcome — from the effect contract's ``operation_match`` entry, with the **retry,
  circuit breaker and timeout** from the handler contract's ``descriptor``.

Every adapter comes in as a parameter (bus, stores, gateway, clock), so the same function
builds the example's in-memory world or one on Kafka and PostgreSQL.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from examples.order_fulfilment.domain import CAPTURE, DOMAIN, handle, order_reducer
from onex_adapters.clock import Clock
from onex_adapters.runtime import (
    EffectBinding,
    HandlerContext,
    Outcome,
    RuntimeConfig,
    RuntimeHost,
)
from onex_contracts import (
    HandlerContract,
    NodeContract,
    compile_effect_policy,
    compile_machine,
    compile_routes,
    load,
)
from onex_core.errors import ContractError
from onex_core.messages import Envelope
from onex_core.outputs import Output
from onex_core.ports import EffectHandler, EventBus, IdempotencyStore, ProjectionStore
from onex_core.reducers import FsmReducer
from onex_core.resilience import EffectPolicy, RetryPolicy

__all__ = ["CONTRACTS", "OrderOrchestrator", "Shop", "build_shop"]

CONTRACTS: Final = Path(__file__).parent / "contracts"
"""The order workflow's contract directory."""


class OrderOrchestrator:
    """Handles every message about an order: reads its projection, lets the pure
    :func:`~examples.order_fulfilment.domain.handle` decide, and returns the reducer's output
    (new projection, intents) and its own (events). It writes nothing itself: the runtime
    writes the projection, then runs the intents, then publishes the events."""

    handler_id = "order-orchestrator"

    def __init__(self, reducer: FsmReducer[Envelope]) -> None:
        self.reducer = reducer

    async def handle(self, envelope: Envelope, context: HandlerContext) -> Outcome:
        projection = await context.projections.get(envelope.entity_id, DOMAIN)
        handled = handle(projection, envelope, context.now, self.reducer)
        decision = handled.decision
        note = f"{handled.kind}: {decision.note}"
        if handled.kind == "duplicate":
            return Outcome.nothing(note)
        outputs = []
        written = () if handled.projection is None else (handled.projection,)
        if written or decision.intents:
            outputs.append(Output.reducer(decision.state, decision.intents, written))
        if decision.events:
            outputs.append(Output.orchestrator(events=decision.events))
        return Outcome.of(*outputs, note=note)


@dataclass(frozen=True, slots=True)
class Shop:
    """A wired order workflow: run ``host``; the rest is for inspection."""

    host: RuntimeHost
    orchestrator: OrderOrchestrator
    reducer: FsmReducer[Envelope]
    policy: EffectPolicy


def _node(directory: Path, name: str) -> NodeContract:
    contract = load(directory / name / "contract.yaml")
    if not isinstance(contract, NodeContract):
        raise ContractError(f"{name}/contract.yaml is not a node contract")
    return contract


def build_shop(
    bus: EventBus,
    projections: ProjectionStore,
    idempotency: IdempotencyStore,
    gateway: EffectHandler,
    clock: Clock,
    *,
    seed: int = 0,
    contracts: str | os.PathLike[str] = CONTRACTS,
    runtime: RuntimeConfig | None = None,
) -> Shop:
    """Wire the order workflow on the given adapters.

    Args:
        bus: the event bus the host consumes from and publishes to.
        projections: where order projections live.
        idempotency: where done intents are recorded.
        gateway: the payment effect handler.
        clock: the runtime's clock.
        seed: seeds the backoff jitter.
        contracts: the contract directory.
        runtime: the host's configuration (default: named ``orders``).

    Returns:
        The :class:`Shop`; nothing has started.

    Raises:
        ContractInvalid, ContractError: a contract does not load, is of the wrong kind, or the
            effect contract does not route ``payment.capture`` to the gateway's handler contract.
    """
    root = Path(contracts)
    routes = compile_routes(_node(root, "order_orchestrator"))
    reducer = order_reducer(compile_machine(_node(root, "order_reducer")))
    effect = _node(root, "payment_capture_effect")
    handler = load(root / "handlers" / "payment_gateway" / "handler_contract.yaml")
    if not isinstance(handler, HandlerContract):
        raise ContractError("handlers/payment_gateway is not a handler contract")
    routing = effect.handler_routing
    entry = next((e for e in (routing.handlers if routing else ()) if e.operation == CAPTURE), None)
    if entry is None or entry.effective_id != handler.handler_id:
        raise ContractError(f"payment_capture_effect does not route {CAPTURE!r} to the gateway")
    compiled = compile_effect_policy(handler)
    policy = EffectPolicy(
        retry=compiled.retry or RetryPolicy(max_attempts=1),
        breaker=compiled.breaker or EffectPolicy().breaker,
        timeout=compiled.timeout or EffectPolicy().timeout,
    )
    outcome_topic = entry.output_events[0] if entry.output_events else None
    orchestrator = OrderOrchestrator(reducer)
    host = RuntimeHost(
        bus=bus,
        routes=routes,
        handlers=dict.fromkeys(routes.handler_ids, orchestrator),
        effects=[EffectBinding(CAPTURE, gateway, policy, outcome_topic)],
        projections=projections,
        idempotency=idempotency,
        clock=clock,
        config=runtime or RuntimeConfig(name="orders"),
        jitter=random.Random(seed),
    )
    return Shop(host, orchestrator, reducer, policy)
