"""The composition root of the registration workflow: contracts + adapters → a runtime host.

:func:`build_registration` is the one place where the workflow is wired, with
:func:`~onex_adapters.app.build_host`: everything behavioural comes from the shipped contracts
(``onex_contracts/contracts/registration``) — the routes, the state machine, the effect bindings
with their retry, breaker and timeout. What this module adds is the workflow's own: the
registration orchestrator and the tick handler (which serves the routes of the runtime tick),
the check that the orchestrator routes every message the workflow decides, and the two effect
handlers, each serving every intent type the contracts send to its handler contract.

Every adapter comes in as a parameter (bus, stores, registry, table, clock, id source), so the
same function builds the embedded default, a test world with faults, or a production host. The
service registry and the registration storage are given either as the embedded backends
(wrapped here in their in-memory effects) or as effect handlers of their own — the Consul
adapter, the PostgreSQL storage effect. Nothing here reads a clock or makes an id of its own;
the backoff jitter is seeded.

:func:`open_backends` chooses where state lives from configuration: the embedded default, or —
when ``ONEX_POSTGRES_DSN`` is set — PostgreSQL for projections, idempotency marks and the
registration table, all on one pool (``ONEX_POSTGRES_SCHEMA`` names the schema;
``ONEX_POSTGRES_MIGRATE=true`` applies the migrations on start). :func:`build_registration_from_env`
is the two together.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from onex_adapters.app import Contracts, build_host, load_contracts
from onex_adapters.clock import Clock
from onex_adapters.memory import (
    InMemoryIdempotencyStore,
    InMemoryProjectionStore,
    InMemoryServiceRegistry,
)
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
from onex_adapters.runtime import IdSource, RuntimeConfig, RuntimeHost, TickSource
from onex_contracts import REGISTRATION_CONTRACTS
from onex_core.dispatch import Plan, route_topic
from onex_core.errors import ContractError, UsageError
from onex_core.ports import (
    EffectHandler,
    EventBus,
    IdempotencyStore,
    ProjectionStore,
    port_problems,
)
from onex_core.reducers import FsmReducer
from onex_core.registration import RegistrationConfig, Step, registration_reducer
from onex_core.registration.model import (
    ACKED,
    DEADLINE_CHECK,
    HEARTBEAT,
    INTROSPECTION,
    RUNTIME_TICK,
    SERVICE_OUTCOME,
    STORAGE_OUTCOME,
)
from onex_core.topics import parse_topic

if TYPE_CHECKING:
    from onex_adapters.postgres import Pool, PostgresSettings

__all__ = [
    "Backends",
    "Contracts",
    "Registration",
    "build_registration",
    "build_registration_from_env",
    "load_registration_contracts",
    "open_backends",
]

_ORCHESTRATOR = "node_registration_orchestrator"
# Every message the workflow handles, including the deadline checks its tick handler sends.
_HANDLED: Final = (
    INTROSPECTION,
    ACKED,
    HEARTBEAT,
    RUNTIME_TICK,
    DEADLINE_CHECK,
    SERVICE_OUTCOME,
    STORAGE_OUTCOME,
)


def load_registration_contracts(
    directory: str | os.PathLike[str] = REGISTRATION_CONTRACTS,
) -> Contracts:
    """Load and compile the registration node family from ``directory``.

    Raises:
        ContractInvalid: a contract file is invalid (every problem, located).
        ContractError: as :func:`~onex_adapters.app.load_contracts`, or the orchestrator does
            not route every message the workflow decides.
    """
    compiled = load_contracts(directory)
    for topic in _HANDLED:
        if not isinstance(route_topic(compiled.routes, topic, parse_topic(topic).event_type), Plan):
            raise ContractError(f"{_ORCHESTRATOR}: no handler routes {topic}")
    return compiled


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
    registry: InMemoryServiceRegistry | EffectHandler,
    storage: InMemoryRegistrationTable | EffectHandler,
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
        registry: the service registry: the embedded one, or an effect handler for the
            ``consul.*`` intents (e.g. an initialized ``ConsulServiceRegistry``).
        storage: the registration table: the embedded one, or an effect handler for the
            ``postgres.*_registration`` intents (e.g. ``PostgresRegistrationStorageEffect``).
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
        UsageError: ``registry`` or ``storage`` is neither an embedded backend nor an effect
            handler.
    """
    config = config or RegistrationConfig()
    compiled = load_registration_contracts(contracts)
    reducer = registration_reducer(compiled.machine, config)
    orchestrator = RegistrationOrchestrator(reducer, config, observe=observe)
    tick_handler = RegistrationTicks(config)
    by_handler: dict[str, EffectHandler] = {
        "effect.service_registry": (
            ServiceRegistryEffect(registry, clock)
            if isinstance(registry, InMemoryServiceRegistry)
            else _handler("registry", registry)
        ),
        "effect.registration_storage": (
            RegistrationStorageEffect(storage)
            if isinstance(storage, InMemoryRegistrationTable)
            else _handler("storage", storage)
        ),
    }
    effects: dict[str, EffectHandler] = {}
    for intent_type, (handler_id, _) in compiled.operations.items():
        if handler_id not in by_handler:
            raise ContractError(f"no effect handler is provided for {handler_id!r}")
        effects[intent_type] = by_handler[handler_id]
    tick_routes = [r.handler_id for r in compiled.routes.routes if r.pattern == RUNTIME_TICK]
    host = build_host(
        compiled,
        orchestrator=orchestrator,
        effects=effects,
        handlers=dict.fromkeys(tick_routes, tick_handler),
        bus=bus,
        projections=projections,
        idempotency=idempotency,
        clock=clock,
        ids=ids,
        runtime=runtime or RuntimeConfig(name="registration"),
        seed=seed,
    )
    ticks = TickSource(bus, clock, ids, interval=config.tick_interval, topic=RUNTIME_TICK)
    return Registration(host, ticks, orchestrator, tick_handler, reducer, config, compiled)


def _handler(role: str, handler: EffectHandler) -> EffectHandler:
    """``handler``, once checked against the port (a wrong object fails here, not mid-run)."""
    problems = port_problems(handler, EffectHandler)
    if problems:
        raise UsageError(
            f"registration {role}: {type(handler).__name__} is neither the embedded backend nor "
            f"an effect handler ({problems[0]})"
        )
    return handler


# --------------------------------------------------------------------------- configuration

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"", "0", "false", "no", "off"})


@dataclass(frozen=True, slots=True)
class Backends:
    """Where a registration keeps its state, as :func:`open_backends` chose.

    Attributes:
        projections, idempotency: the stores, for :func:`build_registration`.
        storage: the registration table (embedded) or its PostgreSQL effect.
        description: safe to print: ``embedded`` or ``postgresql://user@host:port/db``.
        pool: the PostgreSQL pool, or None; :meth:`close` closes it.
    """

    projections: ProjectionStore
    idempotency: IdempotencyStore
    storage: InMemoryRegistrationTable | EffectHandler
    description: str = "embedded"
    pool: Pool | None = None

    async def close(self) -> None:
        """Release what was opened (the pool). Safe to call twice."""
        if self.pool is not None:
            await self.pool.close()


def _flag(environ: Mapping[str, str], name: str) -> bool:
    value = environ.get(name, "").strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise UsageError(f"{name} must be true or false")


async def open_backends(
    environ: Mapping[str, str] | None = None,
    *,
    clock: Clock,
    settings: PostgresSettings | None = None,
    migrate: bool | None = None,
) -> Backends:
    """The embedded backends, or PostgreSQL ones when configuration asks for them.

    PostgreSQL is used when ``settings`` are given or ``ONEX_POSTGRES_DSN`` is set; the
    schema is ``ONEX_POSTGRES_SCHEMA`` when set (else the server's ``search_path``).

    Args:
        environ: the configuration (default: the process environment).
        clock: the runtime's clock (the storage effect's ``updated_at``).
        settings: PostgreSQL settings to use instead of the environment's DSN.
        migrate: apply the migrations first; None: as ``ONEX_POSTGRES_MIGRATE`` says.

    Returns:
        The :class:`Backends`; close them when done.

    Raises:
        UsageError: the DSN does not parse (it is never echoed), or a flag is not a boolean.
        MigrationConflict: the database's migrations do not match this release's.
        PostgresUnavailable, PostgresRejected: the server cannot be reached, or refused;
            nothing is left open.
    """
    env = os.environ if environ is None else environ
    dsn = env.get("ONEX_POSTGRES_DSN", "")
    if settings is None and not dsn:
        table = InMemoryRegistrationTable()
        return Backends(InMemoryProjectionStore(), InMemoryIdempotencyStore(), table)
    # Imported only now: PostgreSQL is an optional extra.
    import onex_adapters.postgres as pg
    from onex_adapters.postgres.effects import PostgresRegistrationStorageEffect

    if settings is None:
        settings = pg.PostgresSettings.from_dsn(dsn, schema=env.get("ONEX_POSTGRES_SCHEMA") or None)
    if _flag(env, "ONEX_POSTGRES_MIGRATE") if migrate is None else migrate:
        await pg.migrate(settings)
    pool = await pg.open_pool(settings)
    idempotency = pg.PostgresIdempotencyStore(pool)
    storage = PostgresRegistrationStorageEffect(pg.RegistrationStorage(pool), idempotency, clock)
    return Backends(
        pg.PostgresProjectionStore(pool), idempotency, storage, settings.describe(), pool
    )


async def build_registration_from_env(
    bus: EventBus,
    registry: InMemoryServiceRegistry | EffectHandler,
    clock: Clock,
    ids: IdSource,
    config: RegistrationConfig | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    migrate: bool | None = None,
    **options: Any,
) -> tuple[Registration, Backends]:
    """:func:`open_backends`, then :func:`build_registration` on them.

    ``options`` go to :func:`build_registration` (``runtime``, ``seed``, ``observe``,
    ``contracts``). Close the returned backends after stopping the host.

    Raises:
        As :func:`open_backends` and :func:`build_registration`; nothing is left open.
    """
    backends = await open_backends(environ, clock=clock, migrate=migrate)
    try:
        registration = build_registration(
            bus,
            backends.projections,
            backends.idempotency,
            registry,
            backends.storage,
            clock,
            ids,
            config,
            **options,
        )
    except BaseException:
        await backends.close()
        raise
    return registration, backends
