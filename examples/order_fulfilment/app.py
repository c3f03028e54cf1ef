"""The composition root: the order contracts and the adapters → a runtime host.

:func:`build_shop` is the one place the workflow is wired, and it is short because everything
behavioural comes from the contracts in ``contracts/`` — :func:`onex_adapters.app.build_host`
reads the **routes** and the dead-letter topic from the orchestrator contract, and the **effect
binding** of ``payment.capture`` — its handler contract's **retry, circuit breaker and timeout**,
and the topic on which each outcome is announced — from the effect and handler contracts. The
**state machine** comes from the reducer contract. What the example itself contributes is the
pure decision (:mod:`~examples.order_fulfilment.domain`), run for every message by an
:class:`~onex_adapters.runtime.EntityOrchestrator`, and the payment gateway.

Every adapter comes in as a parameter (bus, stores, gateway, clock), so the same function
builds the example's in-memory world or one on Kafka and PostgreSQL.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from examples.order_fulfilment.domain import CAPTURE, LAYOUT, decider, order_reducer
from onex_adapters.app import build_host, load_contracts
from onex_adapters.clock import Clock
from onex_adapters.runtime import EntityOrchestrator, RuntimeConfig, RuntimeHost
from onex_core.messages import Envelope
from onex_core.ports import EffectHandler, EventBus, IdempotencyStore, ProjectionStore
from onex_core.reducers import FsmReducer
from onex_core.resilience import EffectPolicy

__all__ = ["CONTRACTS", "Shop", "build_shop"]

CONTRACTS: Final = Path(__file__).parent / "contracts"
"""The order workflow's contract directory."""


@dataclass(frozen=True, slots=True)
class Shop:
    """A wired order workflow: run ``host``; the rest is for inspection."""

    host: RuntimeHost
    orchestrator: EntityOrchestrator
    reducer: FsmReducer[Envelope]
    policy: EffectPolicy


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
        ContractInvalid, ContractError: a contract does not load, or the contracts and the
            example disagree (as :func:`onex_adapters.app.build_host` says).
    """
    compiled = load_contracts(contracts)
    reducer = order_reducer(compiled.machine)
    orchestrator = EntityOrchestrator("order-orchestrator", LAYOUT, decider(reducer))
    host = build_host(
        compiled,
        orchestrator=orchestrator,
        effects={CAPTURE: gateway},
        bus=bus,
        projections=projections,
        idempotency=idempotency,
        clock=clock,
        runtime=runtime or RuntimeConfig(name="orders"),
        seed=seed,
    )
    policy = compiled.policies[compiled.operations[CAPTURE][0]]
    return Shop(host, orchestrator, reducer, policy)
