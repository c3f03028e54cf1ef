"""The embedded default: in-memory stores, service registry and secrets.

Each class here implements the same port as its real counterpart (PostgreSQL, Consul, Vault),
so the runtime, the demo and most tests run with no servers at all. They keep the promises that
matter for reliability — a projection store refuses stale writes, an idempotency store only ever
grows — and each accepts a :class:`FaultScript` so tests can make the next calls fail the way
the real systems fail (transient or permanent, a given number of times).

The event bus lives in :mod:`onex_adapters.memory_bus`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from onex_core.errors import EffectError, EffectRejected, EffectUnavailable, UsageError
from onex_core.outputs import Projection, is_stale

__all__ = [
    "FaultScript",
    "InMemoryIdempotencyStore",
    "InMemoryProjectionStore",
    "InMemorySecretStore",
    "InMemoryServiceRegistry",
    "RegisteredService",
]


@dataclass
class FaultScript:
    """Errors to raise from the next calls of an in-memory adapter, in order.

    ``fail_next(3)`` makes the next three calls raise a transient ``EffectUnavailable``;
    ``fail_next(1, permanent=True)`` makes the next one raise ``EffectRejected``; ``fail_always()``
    keeps failing until ``heal()``. ``calls`` counts every call, failed or not.
    """

    backend: str = "memory"
    _pending: list[EffectError] = field(default_factory=list)
    _always: EffectError | None = None
    calls: int = 0

    def fail_next(self, times: int = 1, *, permanent: bool = False, reason: str = "") -> None:
        for _ in range(times):
            self._pending.append(self._error(permanent, reason))

    def fail_always(self, *, permanent: bool = False, reason: str = "") -> None:
        self._always = self._error(permanent, reason)

    def heal(self) -> None:
        self._pending.clear()
        self._always = None

    def check(self) -> None:
        """Count a call and raise the scripted error, if one is due."""
        self.calls += 1
        if self._pending:
            raise self._pending.pop(0)
        if self._always is not None:
            raise self._always

    def _error(self, permanent: bool, reason: str) -> EffectError:
        if permanent:
            text = reason or f"{self.backend} rejected the request"
            return EffectRejected(text, backend=self.backend)
        return EffectUnavailable(reason or f"{self.backend} is unavailable", backend=self.backend)


class InMemoryProjectionStore:
    """Projections keyed by ``(entity_id, domain)``; implements the ProjectionStore port."""

    def __init__(self, faults: FaultScript | None = None) -> None:
        self._rows: dict[tuple[str, str], Projection] = {}
        self.faults = faults or FaultScript("projections")
        self.stale_writes = 0

    async def get(self, entity_id: str, domain: str) -> Projection | None:
        self.faults.check()
        return self._rows.get((entity_id, domain))

    async def put(self, projection: Projection) -> bool:
        self.faults.check()
        key = (projection.entity_id, projection.domain)
        if is_stale(projection, self._rows.get(key)):
            self.stale_writes += 1
            return False
        self._rows[key] = projection
        return True

    async def overdue(
        self, domain: str, deadline_field: str, now: datetime, limit: int
    ) -> Sequence[Projection]:
        self.faults.check()
        due: list[tuple[datetime, str, Projection]] = []
        for (entity_id, row_domain), projection in self._rows.items():
            deadline = projection.data.get(deadline_field)
            if row_domain == domain and isinstance(deadline, datetime) and deadline < now:
                due.append((deadline, entity_id, projection))
        due.sort(key=lambda item: (item[0], item[1]))
        return [projection for _, _, projection in due[:limit]]

    def all(self, domain: str | None = None) -> list[Projection]:
        """Every stored projection (of ``domain``), for inspection."""
        return [p for (_, d), p in sorted(self._rows.items()) if domain is None or d == domain]


class InMemoryIdempotencyStore:
    """A set of keys per domain; implements the IdempotencyStore port."""

    def __init__(self, faults: FaultScript | None = None) -> None:
        self._done: dict[str, set[str]] = {}
        self.faults = faults or FaultScript("idempotency")

    # Both run for every intent the runtime carries out, so FaultScript.check is inlined for
    # the usual case, nothing scripted: the call is only counted.

    async def seen(self, domain: str, key: str) -> bool:
        faults = self.faults
        if faults._pending or faults._always is not None:
            faults.check()
        else:
            faults.calls += 1
        keys = self._done.get(domain)
        return keys is not None and key in keys

    async def record(self, domain: str, key: str) -> None:
        faults = self.faults
        if faults._pending or faults._always is not None:
            faults.check()
        else:
            faults.calls += 1
        keys = self._done.get(domain)
        if keys is None:
            self._done[domain] = {key}
        else:
            keys.add(key)

    def __len__(self) -> int:
        return sum(len(keys) for keys in self._done.values())


@dataclass(frozen=True)
class RegisteredService:
    """One service as a registry knows it, with its TTL health check."""

    service_id: str
    name: str
    address: str
    port: int
    tags: tuple[str, ...] = ()
    check_ttl_seconds: float = 30.0
    check_status: str = "critical"
    check_passed_at: datetime | None = None


class InMemoryServiceRegistry:
    """A Consul-like service registry: register, deregister, pass a TTL check.

    Like Consul, registering an existing id replaces it, deregistering an unknown id is not an
    error, and passing the check of an unknown service reports failure (py-consul returns False
    rather than raising; the adapters check the answer, and so must callers of this one).
    """

    def __init__(self, faults: FaultScript | None = None) -> None:
        self.services: dict[str, RegisteredService] = {}
        self.faults = faults or FaultScript("service-registry")
        self.registrations = 0

    def register(self, service: RegisteredService) -> None:
        self.faults.check()
        self.services[service.service_id] = service
        self.registrations += 1

    def deregister(self, service_id: str) -> None:
        self.faults.check()
        self.services.pop(service_id, None)

    def pass_check(self, service_id: str, now: datetime) -> bool:
        self.faults.check()
        service = self.services.get(service_id)
        if service is None:
            return False
        self.services[service_id] = RegisteredService(
            service.service_id,
            service.name,
            service.address,
            service.port,
            service.tags,
            service.check_ttl_seconds,
            "passing",
            now,
        )
        return True


class InMemorySecretStore:
    """Secrets by ``path`` and ``key``, as a Vault KV v2 mount would hold them.

    Reading an unknown path or key is a permanent ``EffectRejected`` (Vault answers 404), and
    the error names the key, never a value.
    """

    def __init__(
        self,
        secrets: Mapping[str, Mapping[str, str]] | None = None,
        faults: FaultScript | None = None,
    ) -> None:
        self._secrets = {path: dict(values) for path, values in (secrets or {}).items()}
        self.faults = faults or FaultScript("secrets")

    def read(self, path: str, key: str) -> str:
        self.faults.check()
        values = self._secrets.get(path)
        if values is None or key not in values:
            raise EffectRejected(f"no secret {key!r} at the requested path", backend="secrets")
        return values[key]

    def write(self, path: str, values: Mapping[str, str]) -> None:
        self.faults.check()
        if not all(isinstance(v, str) for v in values.values()):
            raise UsageError("secret values must be strings")
        self._secrets[path] = dict(values)
