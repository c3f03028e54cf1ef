"""The registration orchestrator's decisions: one incoming message → steps, intents and events.

:func:`decide` is pure. It is given the node's current state, the message, the runtime's
``now`` and the reducer, and answers with a :class:`Decision`: the new state, the intents the
reducer asked for, the events to publish, and a note saying what happened (or why nothing did).
It reads no clock: every deadline is computed here from the ``now`` it is given — the runtime's
authority time — and handed to the reducer as step data, never taken from a node's message.

What each message means (DESIGN §4; the seed's Phases 1 to 4):

============================  ==============================================================
message                       decision
============================  ==============================================================
introspection                 unregistered or terminal → ``introspection_received``: events
                              *initiated* (valid) or *rejected* (invalid input); any other
                              state → no-op, "state X blocks new registration"
effect outcome                the awaited registration intent of a backend: ok →
                              ``service_registered`` / ``storage_registered``; both ok →
                              ``ack_requested`` with ``ack_deadline = now + ack_timeout`` and
                              event *accepted*. Failed → ``backend_failed``, decided once the
                              other backend's outcome is known: the other registered → retry
                              only the failed one (*partial*, up to the limit); both failed,
                              retries exhausted, or rejected for good → *failed*. Any other
                              outcome is late, a duplicate or from an earlier attempt: no-op.
                              (While a circuit is open the runtime keeps retrying the intent,
                              and the node stays ``pending_registration``.)
ACK command                   accepted / awaiting_ack → ``ack_received`` + ``activated`` with
                              ``liveness_deadline = now + liveness_window``: events
                              *ack-received* and *became-active*. Already acked → duplicate,
                              no-op. Pending → too early; liveness expired → rejected.
heartbeat                     active → ``heartbeat_received``, extending the deadline to
                              ``max(current, now + window)``; otherwise no-op
deadline check (ack)          awaiting_ack and ``now > ack_deadline`` → ``ack_deadline_passed``
                              (event *ack-timed-out*), then ``ack_retried`` with a new deadline
                              and *accepted* sent again; the last allowed timeout → *failed*
deadline check (liveness)     active and ``now > liveness_deadline`` →
                              ``liveness_deadline_passed``: event *liveness-expired*
============================  ==============================================================

Deadlines are strict: at exactly the deadline the node is still in time. A deadline check that
finds the deadline already moved (a heartbeat was handled after the tick that queued the check)
or already acted on (a second check queued by a later tick) is a no-op, so each timeout event is
emitted once.

:func:`deadline_checks` turns one runtime tick and the overdue nodes a projection scan found into
one check command per node and deadline, keyed by the node — so each check is handled in that
node's order, never racing with the node's own messages.

Ids. Every event is a child of the message (``uuid5(message id, "<type>:<index>")``); every
intent id derives from the step's cause id (the message id for the first step, ``uuid5(message
id, "step:<k>")`` for later ones). The same message decided again from the same state gives the
very same ids, which is what makes redelivery harmless.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Final
from uuid import UUID

from onex_core.entities import EntityDecision
from onex_core.errors import ContentError
from onex_core.intents import Intent
from onex_core.messages import Envelope, derive_id
from onex_core.reducers import FsmReducer, FsmState
from onex_core.registration.model import (
    ACCEPTED,
    ACK_RECEIVED,
    ACK_TIMED_OUT,
    ACKED,
    BECAME_ACTIVE,
    DEADLINE_CHECK,
    FAILED,
    HEARTBEAT,
    INITIATED,
    INTROSPECTION,
    LIVENESS_EXPIRED,
    REGISTER_SERVICE,
    REJECTED,
    SERVICE_OUTCOME,
    STORAGE_OUTCOME,
    STORE_REGISTRATION,
    RegistrationConfig,
    parse_introspection,
)
from onex_core.registration.reducer import Step, initial_state
from onex_core.topics import parse_topic

__all__ = ["DEADLINE_KINDS", "Decision", "deadline_checks", "decide"]

DEADLINE_KINDS: Final = {"ack": "ack_deadline", "liveness": "liveness_deadline"}
"""Deadline-check kinds and the state (and projection) key of the deadline each checks."""

_BACKEND_OF: Final = {REGISTER_SERVICE: "service", STORE_REGISTRATION: "storage"}
_LABEL: Final = {"service": "the service registry", "storage": "the registration store"}
_OTHER: Final = {"service": "storage", "storage": "service"}
_EVENT_TYPES: dict[str, str] = {}


def _event_type(topic: str) -> str:
    event_type = _EVENT_TYPES.get(topic)
    if event_type is None:
        event_type = _EVENT_TYPES[topic] = parse_topic(topic).event_type
    return event_type


Decision = EntityDecision
"""What one message changed (the registration name of :class:`~onex_core.entities.EntityDecision`;
``transitions`` lists the steps that fired)."""


class _Run:
    """Accumulates the steps of one decision."""

    __slots__ = ("envelope", "events", "intents", "now", "reducer", "start", "state", "steps")

    def __init__(
        self, reducer: FsmReducer[Step], state: FsmState, envelope: Envelope, now: datetime
    ) -> None:
        self.reducer = reducer
        self.start = state
        self.state = state
        self.envelope = envelope
        self.now = now
        self.intents: list[Intent] = []
        self.events: list[Envelope] = []
        self.steps: list[str] = []

    def fire(self, trigger: str, **data: Any) -> bool:
        """Fire one step; True when a transition happened."""
        envelope = self.envelope
        k = len(self.steps)
        cause = envelope.envelope_id if k == 0 else derive_id(envelope.envelope_id, f"step:{k}")
        sequence = self.state.sequence + 1
        step = Step(trigger, cause, envelope.correlation_id, sequence, {"at": self.now, **data})
        before = self.state
        reduction = self.reducer(before, step)
        if reduction.state is before:
            return False
        self.steps.append(f"{before.name}→{reduction.state.name}")
        self.state = reduction.state
        self.intents.extend(reduction.intents)
        return True

    def emit(self, topic: str, **fields: Any) -> None:
        attempt = self.state.attempt + 1  # attempts are numbered from 1 in messages
        payload = {"node_id": self.envelope.entity_id, "attempt": attempt, **fields}
        self.events.append(
            self.envelope.child(
                topic=topic,
                event_type=_event_type(topic),
                payload=payload,
                index=len(self.events),
                emitted_at=self.now,
            )
        )

    def decision(self, note: str) -> Decision:
        return Decision(
            self.state,
            tuple(self.intents),
            tuple(self.events),
            note,
            changed=self.state is not self.start,
            transitions=tuple(self.steps),
        )


def _iso(value: datetime) -> str:
    return value.isoformat()


def decide(
    state: FsmState | None,
    envelope: Envelope,
    now: datetime,
    config: RegistrationConfig,
    reducer: FsmReducer[Step],
) -> Decision:
    """Decide what ``envelope`` means for its node (see the module docstring). Pure.

    Args:
        state: the node's state, or None when nothing is known about it.
        envelope: the incoming message; its ``entity_id`` is the node id.
        now: the runtime's authority time (timezone-aware).
        config: timing and limits.
        reducer: from :func:`~onex_core.registration.reducer.registration_reducer`.

    Returns:
        The :class:`Decision`.

    Raises:
        ContentError: an ACK, heartbeat or deadline check that names another node than its
            envelope's ``entity_id``, or a deadline check of an unknown kind. (An invalid
            introspection is not an error: it is decided, and rejected.)
    """
    if now.utcoffset() is None:
        raise ContentError("decide needs a timezone-aware now")
    current = initial_state(reducer.machine) if state is None else state
    run = _Run(reducer, current, envelope, now)
    topic = envelope.topic
    if topic == INTROSPECTION:
        return _introspection(run)
    if topic in (SERVICE_OUTCOME, STORAGE_OUTCOME):
        return _outcome(run, config)
    if topic == ACKED:
        _same_node(envelope, "ACK")
        return _ack(run, config)
    if topic == HEARTBEAT:
        _same_node(envelope, "heartbeat")
        return _heartbeat(run, config)
    if topic == DEADLINE_CHECK:
        _same_node(envelope, "deadline check")
        return _deadline(run, config)
    return run.decision(f"not a registration message ({envelope.event_type})")


def _same_node(envelope: Envelope, what: str) -> None:
    named = envelope.payload.get("node_id")
    if named is not None and named != envelope.entity_id:
        raise ContentError(f"{what} field 'node_id' must equal the envelope's entity_id")


# --------------------------------------------------------------------------- introspection


def _introspection(run: _Run) -> Decision:
    state = run.state
    machine = run.reducer.machine
    if state.name != machine.initial and state.name not in machine.terminal_states:
        return run.decision(f"state {state.name} blocks new registration")
    envelope = run.envelope
    try:
        node = parse_introspection(envelope.payload, entity_id=envelope.entity_id)
    except ContentError as exc:
        run.fire("introspection_received", reason=str(exc))
    else:
        run.fire(
            "introspection_received",
            node=node.as_data(),
            node_id=node.node_id,
            node_type=node.node_type,
        )
    if run.state.name == "pending_registration":
        node_type = run.state.data["node"]["node_type"]
        run.emit(INITIATED, node_type=node_type, registration_attempt_id=str(envelope.envelope_id))
        return run.decision(f"registration initiated (attempt {run.state.attempt + 1})")
    if run.state.name == "rejected":
        reason = run.state.data.get("rejection_reason", "invalid introspection")
        run.emit(REJECTED, rejection_reason=reason)
        return run.decision(f"rejected: {reason}")
    return run.decision(f"introspection ignored in state {run.state.name}")


# --------------------------------------------------------------------------- effect outcomes


def _outcome(run: _Run, config: RegistrationConfig) -> Decision:
    payload = run.envelope.payload
    intent_type = payload.get("intent_type")
    backend = _BACKEND_OF.get(intent_type) if isinstance(intent_type, str) else None
    if backend is None:
        return run.decision(f"outcome of {intent_type}: nothing to decide")
    state = run.state
    if state.name != "pending_registration":
        return run.decision(f"{backend} outcome in state {state.name}: nothing to decide")
    if payload.get("intent_id") != state.data.get(f"{backend}_intent"):
        return run.decision(f"{backend} outcome of an intent not awaited (late or duplicate)")
    other = _OTHER[backend]
    if payload.get("ok") is True:
        run.fire(f"{backend}_registered", intent_id=payload.get("intent_id"))
        if run.state.name == "accepted":
            deadline = run.now + config.ack_delta
            run.fire("ack_requested", ack_deadline=deadline)
            run.emit(ACCEPTED, ack_deadline=_iso(deadline), ack_request=1)
            return run.decision(f"accepted; ACK due by {_iso(deadline)}")
        data = run.state.data
        if data.get(f"{other}_failed") is True and f"{other}_intent" not in data:
            # The other backend failed earlier and waited for this outcome: now it is partial.
            permanent = data.get(f"{other}_permanent") is True
            return _failed(run, config, other, str(data.get(f"{other}_error", "error")), permanent)
        return run.decision(f"{backend} registered; waiting for {_LABEL[other]}")
    error = payload.get("error_type")
    error = error if isinstance(error, str) else "error"
    permanent = payload.get("permanent") is True
    if state.data.get(f"{other}_registered") is not True and not state.data.get(f"{other}_failed"):
        run.fire(
            "backend_failed", backend=backend, other_pending=True, error=error, permanent=permanent
        )
        return run.decision(f"{_LABEL[backend]} failed ({error}); waiting for {_LABEL[other]}")
    return _failed(run, config, backend, error, permanent)


def _failed(
    run: _Run, config: RegistrationConfig, backend: str, error: str, permanent: bool
) -> Decision:
    """Decide a backend's failure once the other backend's outcome is known."""
    data = run.state.data
    retries = int(data.get("backend_retries", 0))
    both = data.get(f"{_OTHER[backend]}_failed") is True
    if permanent:
        reason = f"{_LABEL[backend]} rejected the registration ({error})"
    elif both:
        reason = "both backends failed"
    else:
        reason = f"{_LABEL[backend]} still failing after {retries} retries ({error})"
    extra = {"final": True} if permanent or both else {}
    run.fire("backend_failed", backend=backend, reason=reason, **extra)
    if run.state.name == "failed":
        run.emit(FAILED, reason=reason)
        return run.decision(f"failed: {reason}")
    return run.decision(
        f"partial: {_LABEL[backend]} failed ({error}); retrying it alone "
        f"({retries + 1} of {config.max_backend_retries})"
    )


# --------------------------------------------------------------------------- ACK and heartbeats


def _ack(run: _Run, config: RegistrationConfig) -> Decision:
    name = run.state.name
    if name in ("accepted", "awaiting_ack"):
        live = run.now + config.liveness_delta
        run.fire("ack_received", liveness_deadline=live)
        run.fire("activated", liveness_deadline=live)
        deadline = run.state.data.get("liveness_deadline", live)
        node = run.state.data["node"]
        run.emit(ACK_RECEIVED, liveness_deadline=_iso(deadline))
        run.emit(
            BECAME_ACTIVE,
            node_type=node["node_type"],
            capabilities=list(node["capabilities"]),
            liveness_deadline=_iso(deadline),
        )
        return run.decision(f"ACK received; active, live until {_iso(deadline)}")
    if name in ("ack_received", "active"):
        return run.decision(f"duplicate ACK: the node is already {name}")
    if name == "pending_registration":
        return run.decision("ACK too early: the registration is still pending")
    if name == "liveness_expired":
        return run.decision("ACK rejected: liveness expired; the node must re-register")
    if name == run.reducer.machine.initial:
        return run.decision("ACK from an unknown node")
    return run.decision(f"ACK ignored in state {name}")


def _heartbeat(run: _Run, config: RegistrationConfig) -> Decision:
    if run.state.name != "active":
        return run.decision(f"heartbeat ignored in state {run.state.name}")
    run.fire("heartbeat_received", liveness_deadline=run.now + config.liveness_delta)
    deadline = run.state.data["liveness_deadline"]
    return run.decision(f"heartbeat; live until {_iso(deadline)}")


# --------------------------------------------------------------------------- deadlines


def _deadline(run: _Run, config: RegistrationConfig) -> Decision:
    kind = run.envelope.payload.get("deadline")
    if kind not in DEADLINE_KINDS:
        raise ContentError("deadline check field 'deadline' must be 'ack' or 'liveness'")
    state = run.state
    wanted = "awaiting_ack" if kind == "ack" else "active"
    deadline = state.data.get(DEADLINE_KINDS[kind])
    if state.name != wanted or not isinstance(deadline, datetime):
        return run.decision(f"no {kind} deadline to check in state {state.name}")
    if not run.now > deadline:
        return run.decision(f"{kind} deadline {_iso(deadline)} not passed yet")
    if kind == "liveness":
        run.fire("liveness_deadline_passed", deadline=deadline)
        last = run.state.data.get("last_heartbeat_at")
        run.emit(
            LIVENESS_EXPIRED,
            deadline_at=_iso(deadline),
            last_heartbeat_at=_iso(last) if isinstance(last, datetime) else None,
        )
        return run.decision("liveness expired")
    run.fire("ack_deadline_passed", deadline=deadline)
    timeouts = int(run.state.data.get("ack_timeouts", 0))
    run.emit(
        ACK_TIMED_OUT, deadline_at=_iso(deadline), previous_state="awaiting_ack", timeouts=timeouts
    )
    if run.state.name == "failed":
        reason = str(run.state.data.get("failure_reason", "no ACK"))
        run.emit(FAILED, reason=reason)
        return run.decision(f"ACK timed out ({timeouts}); failed: {reason}")
    new_deadline = run.now + config.ack_delta
    run.fire("ack_retried", ack_deadline=new_deadline)
    run.emit(
        ACCEPTED,
        ack_deadline=_iso(new_deadline),
        ack_request=int(run.state.data.get("ack_requests", 0)),
    )
    return run.decision(f"ACK timed out ({timeouts}); asked again, due by {_iso(new_deadline)}")


def deadline_checks(
    tick: Envelope, overdue: Mapping[str, Sequence[tuple[str, datetime]]], now: datetime
) -> tuple[Envelope, ...]:
    """One deadline-check command per overdue node and deadline kind, for one tick.

    Args:
        tick: the runtime tick that prompted the scan.
        overdue: per kind (``"ack"``, ``"liveness"``), ``(node_id, deadline)`` pairs.
        now: the runtime's time (the commands' ``emitted_at``).

    Returns:
        Commands on :data:`~onex_core.registration.model.DEADLINE_CHECK`, keyed by node id,
        with ids ``uuid5(tick id, "<type>:<node_id>:<kind>")`` — the same tick always yields the
        same commands, whatever order the scan returned them in.
    """
    event_type = _event_type(DEADLINE_CHECK)
    commands: list[Envelope] = []
    for kind in sorted(overdue):
        if kind not in DEADLINE_KINDS:
            raise ContentError(f"unknown deadline kind {kind!r}")
        for node_id, deadline in overdue[kind]:
            commands.append(
                Envelope(
                    envelope_id=_check_id(tick.envelope_id, event_type, node_id, kind),
                    topic=DEADLINE_CHECK,
                    event_type=event_type,
                    payload={
                        "node_id": node_id,
                        "deadline": kind,
                        "deadline_at": _iso(deadline),
                        "tick_id": str(tick.envelope_id),
                    },
                    correlation_id=tick.correlation_id,
                    entity_id=node_id,
                    emitted_at=now,
                    causation_id=tick.envelope_id,
                )
            )
    return tuple(commands)


def _check_id(tick_id: UUID, event_type: str, node_id: str, kind: str) -> UUID:
    return derive_id(tick_id, f"{event_type}:{node_id}:{kind}")
