"""The registration storage effect in PostgreSQL: intents in, ``registration_projections`` rows out.

:class:`PostgresRegistrationStorageEffect` implements the one effect-handler port
(:class:`onex_core.ports.EffectHandler`) for the two storage intents the registration reducer
asks for (:mod:`onex_core.registration.reducer`):

=================================  =========================================================
intent                             what is written
=================================  =========================================================
``postgres.upsert_registration``   the node's whole row (:class:`~.registrations.
                                   RegistrationRow`): state, type, version, endpoints,
                                   capabilities, ``registered_at``
``postgres.update_registration``   the columns the payload carries (:class:`~.registrations.
                                   RegistrationUpdate`): the state, and of
                                   ``liveness_deadline``, ``last_heartbeat_at`` and
                                   ``expired_at`` (→ ``liveness_timeout_emitted_at``) those
                                   present; every other column is kept
=================================  =========================================================

*Order.* The payload's ``revision`` — the node's step sequence, which only grows, across
attempts too — is the row's ``last_applied_sequence``, and the intent id its
``last_applied_event_id``; there is no partition or offset. The table's staleness rule
therefore keeps the newest write: an older or repeated one lands nowhere and is reported as
``written: False``, which is a success (the row already says as much or more). An update for
a node that has no row yet is not written either: the upsert of the registration always runs
first (the node cannot be acknowledged before its registration was stored). The capability
list becomes a JSON object ``{name: true}`` — the column's shape (its default is ``{}``) — so
``capabilities ? 'name'`` finds the nodes with a capability; ``acked_at`` has no column (the
node's projection keeps it).

*Effect and done-mark in one transaction.* Each intent is written inside
:meth:`~.idempotency.PostgresIdempotencyStore.transaction`, after
:meth:`~.idempotency.PostgresIdempotencyStore.claim` of ``(intent type, intent id)`` — the
very key the runtime's :class:`~onex_adapters.runtime.EffectExecutor` checks with ``seen``
before it executes. So the row and the mark commit together or not at all: a crash after the
commit finds the mark on redelivery and the executor skips the intent; a ``COMMIT`` whose
answer was lost is retried, and the retry's claim finds the mark exactly when the first attempt
committed (then nothing is written twice); two executors of one intent queue on the mark's row
lock, and the second finds it done. After ``execute`` returns, the executor records the same
key again through the port's ``record`` — an ``INSERT … ON CONFLICT DO NOTHING`` that finds
the row: one harmless round trip, kept because the executor treats every effect alike.

*One row per intent.* The runtime carries out one intent at a time, so this effect writes
single rows through :class:`~.registrations.RegistrationStorage` (a one-row batch is one
statement). The batch API's pipelined and ``COPY`` paths are what ``python -m benchmarks
postgres`` measures; a runtime that grouped storage intents could use them unchanged.

*Errors.* Driver errors arrive translated (:mod:`.errors`): ``PostgresUnavailable`` (transient:
the runtime retries with backoff) or ``PostgresRejected`` (permanent: dead-lettered), and the
transaction was rolled back — row and mark alike. A payload this effect cannot map — a missing
or malformed field, an unknown state, a naive timestamp, a value JSONB cannot hold — is
``EffectRejected`` naming the field, never its value, and nothing is sent.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from onex_adapters.clock import Clock
from onex_adapters.postgres.errors import BACKEND
from onex_adapters.postgres.idempotency import PostgresIdempotencyStore
from onex_adapters.postgres.registrations import (
    DOMAIN,
    KEEP,
    Keep,
    RegistrationRow,
    RegistrationStorage,
    RegistrationUpdate,
)
from onex_core.errors import EffectRejected, UsageError
from onex_core.intents import Intent
from onex_core.ports import EffectResult, HandlerDescription
from onex_core.registration.model import STORE_REGISTRATION as UPSERT
from onex_core.registration.model import UPDATE_REGISTRATION as UPDATE

__all__ = ["PostgresRegistrationStorageEffect", "row_of", "update_of"]


def _reject(intent_type: str, problem: str) -> EffectRejected:
    return EffectRejected(f"{intent_type}: {problem}", backend=BACKEND)


def _field(payload: Mapping[str, Any], name: str, kind: type, intent_type: str) -> Any:
    value = payload.get(name)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise _reject(intent_type, f"payload field {name!r} is missing or malformed")
    return value


def _moment(payload: Mapping[str, Any], name: str, intent_type: str) -> datetime | None:
    """A timestamp field: ISO-8601 text with an offset, or null."""
    value = payload.get(name)
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        moment = None
    if moment is None or moment.utcoffset() is None:
        raise _reject(intent_type, f"payload field {name!r} must be an ISO-8601 time with offset")
    return moment


def _capabilities(payload: Mapping[str, Any], intent_type: str) -> dict[str, bool]:
    names = payload.get("capabilities", [])
    if not isinstance(names, list | tuple) or not all(isinstance(n, str) for n in names):
        raise _reject(intent_type, "payload field 'capabilities' must be a list of names")
    return dict.fromkeys(names, True)


def _endpoints(payload: Mapping[str, Any], intent_type: str) -> dict[str, str]:
    endpoints = payload.get("endpoints", {})
    if not isinstance(endpoints, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in endpoints.items()
    ):
        raise _reject(intent_type, "payload field 'endpoints' must map names to URLs")
    return dict(endpoints)


def row_of(intent: Intent, now: datetime, domain: str = DOMAIN) -> RegistrationRow:
    """The whole row a ``postgres.upsert_registration`` intent writes.

    Args:
        intent: the intent; its payload as the registration reducer builds it.
        now: the runtime's time (``updated_at``; also ``registered_at`` when the payload has
            none).
        domain: the table's domain column.

    Raises:
        EffectRejected: a field is missing or malformed (named, never echoed).
    """
    kind = intent.intent_type
    payload = intent.payload
    registered = _moment(payload, "registered_at", kind)
    try:
        return RegistrationRow(
            node_id=_field(payload, "node_id", str, kind),
            node_type=_field(payload, "node_type", str, kind),
            state=_field(payload, "state", str, kind),
            sequence=_field(payload, "revision", int, kind),
            event_id=intent.intent_id,
            registered_at=registered or now,
            updated_at=now,
            node_version=_field(payload, "node_version", str, kind),
            capabilities=_capabilities(payload, kind),
            endpoints=_endpoints(payload, kind),
            correlation_id=intent.correlation_id,
            domain=domain,
        )
    except UsageError:  # an unknown state or node type, a sequence out of range
        raise _reject(kind, "payload holds a value the registration table refuses") from None


def update_of(intent: Intent, now: datetime, domain: str = DOMAIN) -> RegistrationUpdate:
    """The columns a ``postgres.update_registration`` intent changes (the rest are kept).

    Raises:
        EffectRejected: as :func:`row_of`.
    """
    kind = intent.intent_type
    payload = intent.payload

    def moment(name: str) -> datetime | Keep | None:
        return _moment(payload, name, kind) if name in payload else KEEP

    try:
        return RegistrationUpdate(
            node_id=_field(payload, "node_id", str, kind),
            sequence=_field(payload, "revision", int, kind),
            event_id=intent.intent_id,
            updated_at=now,
            state=_field(payload, "state", str, kind),
            liveness_deadline=moment("liveness_deadline"),
            last_heartbeat_at=moment("last_heartbeat_at"),
            liveness_timeout_emitted_at=moment("expired_at"),
            correlation_id=intent.correlation_id,
            domain=domain,
        )
    except UsageError:
        raise _reject(kind, "payload holds a value the registration table refuses") from None


class PostgresRegistrationStorageEffect:
    """Writes registration intents to ``registration_projections`` (see the module docstring).

    The pool behind ``storage`` and ``idempotency`` belongs to the caller; :meth:`shutdown`
    does not close it.

    Args:
        storage: the registration table.
        idempotency: the idempotency store whose marks share each write's transaction — the
            same store the runtime's executor is given.
        clock: the runtime's clock (``updated_at``).
        domain: the table's domain column.

    Attributes:
        upserts, updates: writes that changed a row.
        stale: writes the staleness rule refused (or updates of a row that does not exist).
        repeated: intents found already done by their claim.
    """

    handler_type = BACKEND
    intent_types = (UPSERT, UPDATE)

    def __init__(
        self,
        storage: RegistrationStorage,
        idempotency: PostgresIdempotencyStore,
        clock: Clock,
        *,
        domain: str = DOMAIN,
    ) -> None:
        self.storage = storage
        self.idempotency = idempotency
        self.clock = clock
        self.domain = domain
        self.upserts = 0
        self.updates = 0
        self.stale = 0
        self.repeated = 0

    async def initialize(self, config: Mapping[str, Any]) -> None:
        """Nothing to do: the stores are ready when given."""

    async def shutdown(self, timeout: float = 30.0) -> None:
        """Nothing to release: the pool belongs to the caller."""

    async def execute(self, intent: Intent) -> EffectResult:
        """Write one storage intent and its done-mark in one transaction.

        Returns:
            ``detail``: ``node_id``, ``written`` (False: stale, or no row to update) and
            ``repeated`` (True: an earlier attempt committed; nothing was written now).

        Raises:
            EffectRejected: the intent type is not one of this handler's, or the payload
                cannot be mapped (nothing was sent).
            PostgresUnavailable: a transient failure; row and mark were rolled back, or the
                commit's outcome is unknown (a retry finds out through the mark).
            PostgresRejected: the database refused the write; rolled back.
        """
        kind = intent.intent_type
        now = self.clock.now()
        if kind == UPSERT:
            change: RegistrationRow | RegistrationUpdate = row_of(intent, now, self.domain)
        elif kind == UPDATE:
            change = update_of(intent, now, self.domain)
        else:
            raise _reject(kind, "not an intent the registration storage executes")
        try:
            async with self.idempotency.transaction() as conn:
                if not await self.idempotency.claim(kind, str(intent.intent_id), conn=conn):
                    self.repeated += 1
                    return self._result(intent, change.node_id, False, repeated=True)
                if isinstance(change, RegistrationRow):
                    (written,) = await self.storage.upsert_registrations([change], conn=conn)
                else:
                    (written,) = await self.storage.update_registrations([change], conn=conn)
        except UsageError:  # a value JSONB cannot carry; raised before anything was sent
            raise _reject(kind, "payload holds a value that cannot be stored") from None
        if not written:
            self.stale += 1
        elif kind == UPSERT:
            self.upserts += 1
        else:
            self.updates += 1
        return self._result(intent, change.node_id, written)

    @staticmethod
    def _result(
        intent: Intent, node_id: str, written: bool, *, repeated: bool = False
    ) -> EffectResult:
        detail = {"node_id": node_id, "written": written, "repeated": repeated}
        return EffectResult(intent.intent_id, detail)

    def describe(self) -> HandlerDescription:
        """The handler's type, intents and capability — never the connection."""
        return HandlerDescription(self.handler_type, self.intent_types, ("registration.storage",))
