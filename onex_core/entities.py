"""Entities: one message against one entity's projection — apply it, replay it, or skip it.

Every workflow built on an orchestrator does the same thing with each message about an entity
(a node, an order): read the entity's projection, decide the message from the state it holds,
and hand the runtime a new projection to write, intents to run and events to publish. Deciding
is the workflow's business — a pure :class:`Decide` function. What to do about a message that
arrives *again* is not, and it lives here, once.

**Why a replay rule.** The runtime applies an outcome in a fixed order: the projection is
written first, then the intents run, then the events are published, and only then is the
message committed. A crash between the first step and the last leaves the projection saying
"done" while effects are missing and events unsent; the bus then delivers the message again.
Deciding it against the *stored* state would be wrong — the transition already happened, and
the machine would refuse it or do something else. So the projection keeps what is needed to
decide the message once more, exactly as the first time:

- ``event_id`` (a field of :class:`~onex_core.outputs.Projection`) is the id of the message
  that produced the projection, and ``data["previous"]`` the state before it. When that very
  message comes again, it is **replayed**: decided from the previous state, and the decision
  returned again — nothing is written. The workflow's ids derive from the message id (intents
  with :func:`~onex_core.intents.intent_id_for`, events with ``Envelope.child``), so the replay
  asks for the *same* intents, which the runtime skips as done, and publishes the *same* events,
  harmless duplicates for their consumers.
- The replay decides at the projection's stored ``updated_at``, the ``now`` the message was
  first decided at, not at the ``now`` of its redelivery. Anything a decision computes from
  time — a deadline ``now + window``, an event's ``emitted_at``, a "has the deadline passed"
  test — then comes out as it did the first time, and the repaired outputs are identical to
  the lost ones rather than merely similar.
- ``data["applied"]`` holds the ids of the last ``window`` messages that changed the state. One
  of those coming again (a publisher's retry, a redelivery after its successor was applied)
  is a **duplicate**: nothing at all happens. Older ids are forgotten: such a message is
  decided again, like a new one, so choose the window larger than any redelivery distance
  the bus can produce (a batch, the messages since the last commit).

Whether a decision changed the state is its ``changed`` flag, or — left out — whether its state
differs from the one it was given: forgetting the flag cannot lose a transition.

A message whose decision changed nothing is **unchanged**: it is not recorded, because deciding
it again is either another no-op or — for a deadline check that arrives once more after the
deadline really passed — the right decision at the later time. Its events (a refusal, say) are
still returned, and simply published again when it is redelivered.

**The layout** (:class:`Layout`). A projection's ``state`` is the machine state's name; its
``data`` holds the :class:`~onex_core.reducers.FsmState` — the extended state, at the top level
(where a store's ``overdue`` scan finds deadlines) or under one key (``nest``), plus
``fsm_sequence`` and ``attempt`` — and the bookkeeping: ``previous`` (``{"state", "sequence",
"attempt", "data"}``, or None before the first change) and ``applied`` (message ids as text,
oldest first). The projection's ``sequence`` counts the changes from 0; ``partition`` and
``offset`` say where the message was read. A store that keeps JSON without types may return
datetimes as ISO-8601 text; the keys named in ``datetime_keys`` are read back as datetimes.

Everything here is pure: time comes in as ``now``, ids come with the message.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Literal, Protocol
from uuid import UUID

from onex_core.errors import UsageError
from onex_core.intents import Intent
from onex_core.messages import Envelope
from onex_core.outputs import Projection
from onex_core.reducers import FsmState

__all__ = [
    "RESERVED",
    "WINDOW",
    "Decide",
    "EntityDecision",
    "Handled",
    "HandledKind",
    "Layout",
    "apply_to_projection",
]

WINDOW: Final = 64
"""How many recently applied message ids a projection remembers, unless told otherwise."""

RESERVED: Final = frozenset({"attempt", "fsm_sequence", "applied", "previous"})
"""Keys of projection data that the layout uses for itself."""

HandledKind = Literal["applied", "replayed", "duplicate", "unchanged"]
"""What :func:`apply_to_projection` did with a message (see the module docstring)."""


@dataclass(frozen=True, slots=True)
class EntityDecision:
    """What one message means for one entity.

    Attributes:
        state: the entity's state afterwards (the state given, when nothing changed).
        intents: effects to carry out, in order; their ids derive from the message's id.
        events: envelopes to publish, in order; children of the message.
        note: what happened, or why nothing did, in a few words (for logs).
        changed: whether the state changed — True: write it; False: write nothing (the intents
            still run and the events still go out); None (the default): compare ``state``
            with the state the decision was given, and write it when they differ. For an
            entity not known yet (given None), a bare ``FsmState(name)`` — no sequence, attempt
            or data — counts as unchanged. :func:`apply_to_projection` hands back the decision
            with ``changed`` resolved to True or False.
        transitions: the transitions that fired, ``"source→target"``, in order (optional).
    """

    state: FsmState
    intents: tuple[Intent, ...] = ()
    events: tuple[Envelope, ...] = ()
    note: str = ""
    changed: bool | None = None
    transitions: tuple[str, ...] = ()

    def resolved(self, before: FsmState | None) -> EntityDecision:
        """This decision with ``changed`` decided: kept when given, otherwise whether
        ``state`` differs from ``before`` (None: from a bare ``FsmState(state.name)``)."""
        if self.changed is not None:
            return self
        baseline = before if before is not None else FsmState(self.state.name)
        return dataclasses.replace(self, changed=self.state != baseline)


class Decide(Protocol):
    """A workflow's pure decision: the entity's state (None: nothing is known about it yet),
    the message, and the runtime's ``now`` → an :class:`EntityDecision`.

    It must be deterministic — the same arguments give an equal decision, with the same intent
    and event ids — because a replay relies on it. It may raise ``ContentError`` for a message
    it cannot accept (the runtime dead-letters it).
    """

    def __call__(
        self, state: FsmState | None, envelope: Envelope, now: datetime, /
    ) -> EntityDecision: ...


@dataclass(frozen=True, slots=True)
class Handled:
    """The result of :func:`apply_to_projection`.

    Attributes:
        kind: ``applied`` (the state changed; write ``projection``), ``replayed`` (the message
            that produced the stored projection, decided again: same outputs, nothing written),
            ``duplicate`` (applied recently: nothing at all) or ``unchanged`` (decided; the
            state did not change, nothing written; the decision's events still go out).
        decision: the decision, with ``changed`` resolved to True or False (for a duplicate:
            the stored state, and nothing to do).
        projection: the projection to write, for ``applied``; otherwise None.
    """

    kind: HandledKind
    decision: EntityDecision
    projection: Projection | None


def _datetime(value: object) -> object:
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return value
        return parsed if parsed.utcoffset() is not None else value
    return value


@dataclass(frozen=True, slots=True)
class Layout:
    """How an entity's state and bookkeeping sit in its projection (the module docstring).

    Args:
        domain: the projection domain (``registration``, ``orders``).
        window: how many recently applied message ids to remember (≥ 1).
        nest: keep the extended state under this key of ``data`` instead of at its top level.
        datetime_keys: keys of the extended state holding timezone-aware datetimes, read back
            from ISO-8601 text when a store returns them so.

    Raises:
        UsageError: ``domain`` is empty, ``window`` is below 1, or ``nest`` is a reserved key.
    """

    domain: str
    window: int = WINDOW
    nest: str | None = None
    datetime_keys: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if not self.domain:
            raise UsageError("a projection layout needs a domain")
        if not isinstance(self.window, int) or self.window < 1:
            raise UsageError(f"layout {self.domain!r}: window must be an integer of at least 1")
        if self.nest is not None and (not self.nest or self.nest in RESERVED):
            raise UsageError(f"layout {self.domain!r}: nest may not be {self.nest!r}")

    def _fsm(
        self,
        name: str,
        sequence: Any,
        attempt: Any,
        data: Mapping[str, Any],
        skip: frozenset[str] = frozenset(),
    ) -> FsmState:
        keys = self.datetime_keys
        clean = {
            key: (_datetime(value) if key in keys else value)
            for key, value in data.items()
            if key not in skip
        }
        return FsmState(name, int(sequence), int(attempt), clean)

    def state_of(self, projection: Projection | None) -> FsmState | None:
        """The state ``projection`` holds (None for no projection)."""
        if projection is None:
            return None
        data = projection.data
        sequence, attempt = data.get("fsm_sequence", -1), data.get("attempt", 0)
        if self.nest is None:
            return self._fsm(projection.state, sequence, attempt, data, RESERVED)
        return self._fsm(projection.state, sequence, attempt, data.get(self.nest) or {})

    def previous_state(self, projection: Projection) -> FsmState | None:
        """The state before the message that produced ``projection`` (None: there was none)."""
        previous = projection.data.get("previous")
        if not isinstance(previous, Mapping):
            return None
        return self._fsm(
            previous["state"], previous["sequence"], previous["attempt"], previous.get("data", {})
        )

    def recently_applied(self, projection: Projection, envelope_id: UUID) -> bool:
        """Whether ``envelope_id`` is among the ids ``projection`` remembers."""
        return str(envelope_id) in projection.data.get("applied", ())

    def to_projection(
        self,
        state: FsmState,
        *,
        entity_id: str,
        envelope_id: UUID,
        now: datetime,
        previous: Projection | None,
        partition: str | None = None,
        offset: int | None = None,
    ) -> Projection:
        """The projection after the message ``envelope_id`` moved the entity to ``state``.

        Args:
            state: the entity's new state.
            entity_id, envelope_id: the entity, and the message that changed it.
            now: when the message was decided (kept as ``updated_at``, the time of a replay).
            previous: the projection before the message, or None.
            partition, offset: where the message was read.

        Returns:
            The new projection (``sequence`` one above ``previous``'s, or 0).

        Raises:
            UsageError: the extended state uses a reserved key at the top level.
        """
        before = self.state_of(previous)
        return _write(self, state, before, previous, entity_id, envelope_id, now, partition, offset)


def _write(
    layout: Layout,
    state: FsmState,
    before: FsmState | None,
    previous: Projection | None,
    entity_id: str,
    envelope_id: UUID,
    now: datetime,
    partition: str | None,
    offset: int | None,
) -> Projection:
    if layout.nest is None:
        clash = RESERVED.intersection(state.data)
        if clash:
            raise UsageError(
                f"{layout.domain} state data may not use the reserved keys {sorted(clash)}"
            )
        data: dict[str, Any] = dict(state.data)
    else:
        data = {layout.nest: dict(state.data)}
    applied: list[str] = []
    if previous is not None and layout.window > 1:
        applied = list(previous.data.get("applied", ()))[-(layout.window - 1) :]
    applied.append(str(envelope_id))
    data["attempt"] = state.attempt
    data["fsm_sequence"] = state.sequence
    data["applied"] = applied
    data["previous"] = (
        None
        if before is None
        else {
            "state": before.name,
            "sequence": before.sequence,
            "attempt": before.attempt,
            "data": dict(before.data),
        }
    )
    return Projection(
        entity_id=entity_id,
        domain=layout.domain,
        state=state.name,
        data=data,
        sequence=0 if previous is None else previous.sequence + 1,
        event_id=envelope_id,
        partition=partition,
        offset=offset,
        updated_at=now,
    )


def apply_to_projection(
    projection: Projection | None,
    envelope: Envelope,
    now: datetime,
    decide: Decide,
    *,
    layout: Layout,
    partition: str | None = None,
    offset: int | None = None,
) -> Handled:
    """Handle one message for the entity whose stored projection is ``projection``. Pure.

    Args:
        projection: the entity's stored projection, or None.
        envelope: the message; its ``entity_id`` is the entity.
        now: the runtime's time (timezone-aware).
        decide: the workflow's decision.
        layout: where state and bookkeeping sit in the projection.
        partition, offset: where the message was read (kept on a new projection).

    Returns:
        A :class:`Handled`: the message ``replayed`` (decided again from the previous state at
        the stored time), a ``duplicate``, ``unchanged``, or ``applied`` with the projection to
        write *before* any of the decision's intents run or events go out.

    Raises:
        Whatever ``decide`` raises (nothing is written then); UsageError: the new extended state
        uses a reserved key.
    """
    envelope_id = envelope.envelope_id
    if projection is not None:
        if projection.event_id == envelope_id:
            at = projection.updated_at or now
            previous = layout.previous_state(projection)
            decision = decide(previous, envelope, at).resolved(previous)
            return Handled("replayed", decision, None)
        if layout.recently_applied(projection, envelope_id):
            state = layout.state_of(projection)
            assert state is not None
            duplicate = EntityDecision(state, note="already applied", changed=False)
            return Handled("duplicate", duplicate, None)
    before = layout.state_of(projection)
    decision = decide(before, envelope, now).resolved(before)
    if not decision.changed:
        return Handled("unchanged", decision, None)
    written = _write(
        layout,
        decision.state,
        before,
        projection,
        envelope.entity_id,
        envelope_id,
        now,
        partition,
        offset,
    )
    return Handled("applied", decision, written)
