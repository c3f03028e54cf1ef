"""The registration workflow's effect handlers on the embedded default.

Two handlers implement the one effect-handler port (:class:`onex_core.ports.EffectHandler`):

- :class:`ServiceRegistryEffect` carries out ``consul.register``, ``consul.deregister`` and
  ``consul.pass_check`` against an :class:`~onex_adapters.memory.InMemoryServiceRegistry`. A
  health check that the registry answers with "no such service" (a registry restart that lost
  it; py-consul's ``ttl_pass`` returns False rather than raising) is not a silent success: the
  service is registered again from the registration the intent carries, and the check passed.
- :class:`RegistrationStorageEffect` carries out ``postgres.upsert_registration`` and
  ``postgres.update_registration`` against an :class:`InMemoryRegistrationTable`, which keeps
  the newest row per node: a write older than the stored row (by attempt, then revision) is
  acknowledged and ignored, so a retried or reordered write can never move a row backwards.

Both execute one intent once, with no retries of their own (the runtime owns retries, the
breaker and the timeout). Backend failures arrive as ``EffectUnavailable`` (transient) or
``EffectRejected`` (permanent) from the backend's :class:`~onex_adapters.memory.FaultScript`; an
intent whose payload is malformed is rejected permanently, naming the field, never its value.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from onex_adapters.clock import Clock
from onex_adapters.memory import FaultScript, InMemoryServiceRegistry, RegisteredService
from onex_core.errors import EffectRejected, EffectUnavailable
from onex_core.intents import Intent
from onex_core.ports import EffectResult, HandlerDescription
from onex_core.registration.model import (
    DEREGISTER_SERVICE,
    PASS_CHECK,
    REGISTER_SERVICE,
    STORE_REGISTRATION,
    UPDATE_REGISTRATION,
)

__all__ = [
    "InMemoryRegistrationTable",
    "RegistrationRow",
    "RegistrationStorageEffect",
    "ServiceRegistryEffect",
]


def _field(
    payload: Mapping[str, Any], name: str, kind: type | tuple[type, ...], backend: str
) -> Any:
    value = payload.get(name)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise EffectRejected(
            f"intent payload field {name!r} is missing or malformed", backend=backend
        )
    return value


# --------------------------------------------------------------------------- service registry


class ServiceRegistryEffect:
    """Registers, deregisters and health-checks node services (see the module docstring).

    Args:
        registry: the service registry.
        clock: when a health check passed.
    """

    handler_type = "service-registry"
    intent_types = (REGISTER_SERVICE, DEREGISTER_SERVICE, PASS_CHECK)

    def __init__(self, registry: InMemoryServiceRegistry, clock: Clock) -> None:
        self.registry = registry
        self.clock = clock
        self.reregistrations = 0

    async def initialize(self, config: Mapping[str, Any]) -> None:
        return None

    async def shutdown(self, timeout: float = 30.0) -> None:
        return None

    async def execute(self, intent: Intent) -> EffectResult:
        """Carry out one service-registry intent.

        Raises:
            EffectUnavailable: the registry is unavailable (nothing changed), or it lost the
                service and a re-registration did not stick.
            EffectRejected: the registry refused, the intent type is not one of this handler's,
                or the payload is malformed.
        """
        payload = intent.payload
        if intent.intent_type == REGISTER_SERVICE:
            service = self._service(payload)
            self.registry.register(service)
            return EffectResult(intent.intent_id, {"service_id": service.service_id})
        if intent.intent_type == DEREGISTER_SERVICE:
            service_id = _field(payload, "service_id", str, self.handler_type)
            self.registry.deregister(service_id)
            return EffectResult(intent.intent_id, {"service_id": service_id})
        if intent.intent_type == PASS_CHECK:
            check_id = _field(payload, "check_id", str, self.handler_type)
            if self.registry.pass_check(check_id, self.clock.now()):
                return EffectResult(intent.intent_id, {"service_id": check_id})
            registration = _field(payload, "registration", Mapping, self.handler_type)
            self.registry.register(self._service(registration))
            self.reregistrations += 1
            if not self.registry.pass_check(check_id, self.clock.now()):
                raise EffectUnavailable(
                    "the service registry lost the service again right after re-registering it",
                    backend=self.handler_type,
                )
            return EffectResult(intent.intent_id, {"service_id": check_id, "reregistered": True})
        raise EffectRejected(
            f"the service registry cannot carry out {intent.intent_type!r}",
            backend=self.handler_type,
        )

    def _service(self, payload: Mapping[str, Any]) -> RegisteredService:
        backend = self.handler_type
        tags = _field(payload, "tags", (list, tuple), backend)
        if not all(isinstance(tag, str) for tag in tags):
            raise EffectRejected("intent payload field 'tags' must hold strings", backend=backend)
        return RegisteredService(
            service_id=_field(payload, "service_id", str, backend),
            name=_field(payload, "service_name", str, backend),
            address=_field(payload, "address", str, backend),
            port=_field(payload, "port", int, backend),
            tags=tuple(tags),
            check_ttl_seconds=float(_field(payload, "check_ttl_seconds", (int, float), backend)),
        )

    def describe(self) -> HandlerDescription:
        return HandlerDescription(
            self.handler_type,
            self.intent_types,
            ("service_discovery.registration", "service_discovery.health_check"),
        )


# --------------------------------------------------------------------------- registration storage


@dataclass(frozen=True, slots=True)
class RegistrationRow:
    """One node's stored registration: the workflow state and everything written with it.

    ``attempt`` and ``revision`` order writes: a row is replaced only by a newer one.
    """

    node_id: str
    attempt: int
    revision: int
    state: str
    fields: Mapping[str, Any] = field(default_factory=dict)


class InMemoryRegistrationTable:
    """The registration table of the embedded default (a PostgreSQL table in production).

    ``upserts`` and ``updates`` count the writes that changed a row; stale writes are counted in
    ``stale``.
    """

    def __init__(self, faults: FaultScript | None = None) -> None:
        self.rows: dict[str, RegistrationRow] = {}
        self.faults = faults or FaultScript("registration-storage")
        self.upserts = 0
        self.updates = 0
        self.stale = 0

    def _newer(self, row: RegistrationRow) -> bool:
        current = self.rows.get(row.node_id)
        if current is not None and (current.attempt, current.revision) >= (
            row.attempt,
            row.revision,
        ):
            self.stale += 1
            return False
        return True

    def upsert(self, row: RegistrationRow) -> bool:
        """Insert or replace a node's row, unless the stored one is as new. True if written."""
        self.faults.check()
        if not self._newer(row):
            return False
        self.rows[row.node_id] = row
        self.upserts += 1
        return True

    def update(self, row: RegistrationRow) -> bool:
        """Merge ``row`` into the node's row (creating it if missing), unless the stored one is
        as new. True if written."""
        self.faults.check()
        if not self._newer(row):
            return False
        current = self.rows.get(row.node_id)
        merged = dict(current.fields) if current is not None else {}
        merged.update(row.fields)
        self.rows[row.node_id] = RegistrationRow(
            row.node_id, row.attempt, row.revision, row.state, merged
        )
        self.updates += 1
        return True


_ROW_KEYS = frozenset({"node_id", "attempt", "revision", "state"})


class RegistrationStorageEffect:
    """Writes registrations to an :class:`InMemoryRegistrationTable` (module docstring)."""

    handler_type = "registration-storage"
    intent_types = (STORE_REGISTRATION, UPDATE_REGISTRATION)

    def __init__(self, table: InMemoryRegistrationTable) -> None:
        self.table = table

    async def initialize(self, config: Mapping[str, Any]) -> None:
        return None

    async def shutdown(self, timeout: float = 30.0) -> None:
        return None

    async def execute(self, intent: Intent) -> EffectResult:
        """Carry out one storage intent; a stale write succeeds without changing anything.

        Raises:
            EffectUnavailable: the table is unavailable (nothing changed).
            EffectRejected: the table refused, the intent type is not one of this handler's,
                or the payload is malformed.
        """
        if intent.intent_type not in self.intent_types:
            raise EffectRejected(
                f"registration storage cannot carry out {intent.intent_type!r}",
                backend=self.handler_type,
            )
        payload = intent.payload
        backend = self.handler_type
        row = RegistrationRow(
            node_id=_field(payload, "node_id", str, backend),
            attempt=_field(payload, "attempt", int, backend),
            revision=_field(payload, "revision", int, backend),
            state=_field(payload, "state", str, backend),
            fields={k: v for k, v in payload.items() if k not in _ROW_KEYS},
        )
        if intent.intent_type == STORE_REGISTRATION:
            written = self.table.upsert(row)
        else:
            written = self.table.update(row)
        return EffectResult(intent.intent_id, {"node_id": row.node_id, "written": written})

    def describe(self) -> HandlerDescription:
        return HandlerDescription(self.handler_type, self.intent_types, ("registration.storage",))
