"""A node's projection, and handling one message against it: apply, replay or skip.

The registration projection of a node is its FSM state plus a little bookkeeping, so that a
message delivered more than once is recognised:

- ``event_id`` (of :class:`~onex_core.outputs.Projection`) is the id of the last message that
  changed the state, and ``data["previous"]`` is the state before it, with ``updated_at`` the
  ``now`` it was decided at;
- ``data["applied"]`` holds the ids of the last :data:`APPLIED_WINDOW` messages that changed the
  state.

:func:`handle` decides one message:

1. **Replay.** The message is the very one that produced the stored projection: the state was
   written, but a crash may have come before all of its effects ran or its events were
   published. The decision is recomputed from ``previous`` at the stored ``now`` — it is the
   same decision, with the same intent and event ids — and returned again: the runtime skips
   the intents already done (idempotency by intent id), and the events are harmless duplicates.
   Nothing is written.
2. **Duplicate.** The id is among the recently applied: nothing happens.
3. Otherwise :func:`~onex_core.registration.orchestrator.decide`; when the state changed, the
   new projection (sequence + 1) is returned to be written *before* any effect runs.

A message that changed nothing is not recorded: deciding it again is another no-op, or — for a
deadline check that arrives again after its deadline really passed — the right decision at the
later time.

Deadlines are stored at the top level of ``data`` (``ack_deadline``, ``liveness_deadline``) as
datetimes, which is what a projection store's ``overdue`` scan reads; a deadline that no longer
applies is absent, so the scan stops finding the node.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Literal
from uuid import UUID

from onex_core.errors import UsageError
from onex_core.messages import Envelope
from onex_core.outputs import Projection
from onex_core.reducers import FsmReducer, FsmState
from onex_core.registration.model import RegistrationConfig
from onex_core.registration.orchestrator import Decision, decide
from onex_core.registration.reducer import DATETIME_KEYS, Step

__all__ = [
    "APPLIED_WINDOW",
    "BOOKKEEPING_KEYS",
    "Handled",
    "handle",
    "previous_state",
    "state_of",
    "to_projection",
]

APPLIED_WINDOW: Final = 64
"""How many recently applied message ids a projection remembers."""

BOOKKEEPING_KEYS: Final = frozenset({"attempt", "fsm_sequence", "applied", "previous"})
"""Keys of projection data that are not the reducer's extended state."""


def _datetime(value: object) -> object:
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return value
        return parsed if parsed.utcoffset() is not None else value
    return value


def _fsm(name: str, sequence: Any, attempt: Any, data: Mapping[str, Any]) -> FsmState:
    clean = {
        key: (_datetime(value) if key in DATETIME_KEYS else value)
        for key, value in data.items()
        if key not in BOOKKEEPING_KEYS
    }
    return FsmState(name, int(sequence), int(attempt), clean)


def state_of(projection: Projection | None) -> FsmState | None:
    """The FSM state a projection holds (None for no projection).

    Deadlines and times stored as ISO-8601 text (by a store that keeps JSON) become datetimes
    again.
    """
    if projection is None:
        return None
    data = projection.data
    return _fsm(projection.state, data.get("fsm_sequence", -1), data.get("attempt", 0), data)


def previous_state(projection: Projection) -> FsmState | None:
    """The state before the message that produced ``projection`` (None: there was none)."""
    previous = projection.data.get("previous")
    if not isinstance(previous, Mapping):
        return None
    return _fsm(
        previous["state"], previous["sequence"], previous["attempt"], previous.get("data", {})
    )


def to_projection(
    state: FsmState,
    *,
    entity_id: str,
    domain: str,
    envelope_id: UUID,
    now: datetime,
    previous: Projection | None,
    partition: str | None = None,
    offset: int | None = None,
) -> Projection:
    """The projection after ``envelope_id`` moved the node to ``state``.

    Raises:
        UsageError: the extended state uses a bookkeeping key.
    """
    clash = BOOKKEEPING_KEYS.intersection(state.data)
    if clash:
        raise UsageError(f"registration state data may not use the keys {sorted(clash)}")
    before = state_of(previous)
    applied: list[str] = []
    if previous is not None:
        applied = list(previous.data.get("applied", ()))[-(APPLIED_WINDOW - 1) :]
    applied.append(str(envelope_id))
    data: dict[str, Any] = {
        **state.data,
        "attempt": state.attempt,
        "fsm_sequence": state.sequence,
        "applied": applied,
        "previous": None
        if before is None
        else {
            "state": before.name,
            "sequence": before.sequence,
            "attempt": before.attempt,
            "data": dict(before.data),
        },
    }
    return Projection(
        entity_id=entity_id,
        domain=domain,
        state=state.name,
        data=data,
        sequence=0 if previous is None else previous.sequence + 1,
        event_id=envelope_id,
        partition=partition,
        offset=offset,
        updated_at=now,
    )


@dataclass(frozen=True, slots=True)
class Handled:
    """The result of :func:`handle`.

    Attributes:
        decision: what the message meant (empty for a duplicate).
        projection: the projection to write, or None when nothing is to be written.
        kind: ``applied`` (the state changed), ``unchanged`` (decided; nothing changed),
            ``replayed`` (the last applied message again: same outputs, nothing written) or
            ``duplicate`` (applied before: nothing at all).
    """

    decision: Decision
    projection: Projection | None
    kind: Literal["applied", "unchanged", "replayed", "duplicate"]


def handle(
    projection: Projection | None,
    envelope: Envelope,
    now: datetime,
    config: RegistrationConfig,
    reducer: FsmReducer[Step],
    *,
    partition: str | None = None,
    offset: int | None = None,
) -> Handled:
    """Handle one message for the node whose stored projection is ``projection``. Pure.

    Args:
        projection: the node's stored projection, or None.
        envelope: the message; ``entity_id`` is the node id.
        now: the runtime's time.
        config, reducer: as for :func:`~onex_core.registration.orchestrator.decide`.
        partition, offset: where the message was read (stored on the new projection).

    Returns:
        A :class:`Handled` (see the module docstring for the three cases).

    Raises:
        ContentError: as :func:`~onex_core.registration.orchestrator.decide`.
    """
    envelope_id = envelope.envelope_id
    if projection is not None:
        if projection.event_id == envelope_id:
            at = projection.updated_at or now
            decision = decide(previous_state(projection), envelope, at, config, reducer)
            return Handled(decision, None, "replayed")
        if str(envelope_id) in projection.data.get("applied", ()):
            state = state_of(projection)
            assert state is not None
            return Handled(Decision(state, note="duplicate: already applied"), None, "duplicate")
    state = state_of(projection)
    decision = decide(state, envelope, now, config, reducer)
    if not decision.changed:
        return Handled(decision, None, "unchanged")
    written = to_projection(
        decision.state,
        entity_id=envelope.entity_id,
        domain=config.domain,
        envelope_id=envelope_id,
        now=now,
        previous=projection,
        partition=partition,
        offset=offset,
    )
    return Handled(decision, written, "applied")
