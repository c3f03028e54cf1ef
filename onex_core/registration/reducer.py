"""The registration reducer: the contract's state machine, plus what each step remembers and asks.

The machine — states, triggers, guards and actions — lives in the reducer contract
(``node_registration_reducer/contract.yaml``) and arrives here compiled. This module adds the
three things a contract cannot say:

- **Steps.** The reducer folds :class:`Step` values, not envelopes. The orchestrator turns each
  incoming message into zero or more steps and puts into their ``data`` everything that depends
  on time — deadlines already computed as ``now + window`` from the runtime's clock — so the
  reducer never sees a clock and a replay gives the same answer.
- **Extended state** (:func:`update`). Flags, counters, deadlines and markers, kept in
  ``FsmState.data`` under the keys of :data:`STATE_KEYS`; the contract's guards read them as
  ``state.<key>``. Two rules matter for reliability: the liveness deadline is monotonic
  (``max(current, candidate)``: an old heartbeat can never move it backwards), and a deadline
  that no longer applies is removed, so a timeout scan stops finding the node.
- **Intents** (the action builders). Each builder makes exactly one intent, with the
  deterministic id ``intent_id_for(step.cause_id, intent_type, ctx.index)``: a step replayed
  after a crash asks for the very same effects, which the runtime then skips as done. The ids
  of the registration intents still awaiting an outcome are remembered
  (``service_intent`` / ``storage_intent``), so an outcome that is late, duplicated or from an
  earlier attempt is recognised and ignored instead of counted.

A failed backend is decided by the contract's guards from two flags the orchestrator puts in
the step: ``other_pending`` (the other backend's outcome is not known yet: remember the failure,
decide later) and ``final`` (rejected for good, or both backends failed: never retry). Attempt
numbers in intent payloads count from 1.

``restart_on={"introspection_received"}`` lets a node that ended in a terminal state
(``rejected``, ``liveness_expired``, ``failed``) introspect again: a new attempt, from a clean
slate.

:func:`check_limits` probes the compiled machine to make sure the limits written in its guards
(backend retries, ACK timeouts) are the ones :class:`~onex_core.registration.model.
RegistrationConfig` says, so the two cannot silently disagree.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final
from uuid import UUID

from onex_core.errors import ContractError, UsageError
from onex_core.fsm import EMPTY, Fired, Machine, fire
from onex_core.intents import Intent, intent_id_for, make_target
from onex_core.reducers import ActionContext, FsmReducer, FsmState
from onex_core.registration.model import (
    PASS_CHECK,
    REGISTER_SERVICE,
    STORE_REGISTRATION,
    UPDATE_REGISTRATION,
    RegistrationConfig,
    service_id_of,
    service_name_of,
)

__all__ = [
    "BACKENDS",
    "STATE_KEYS",
    "Step",
    "check_limits",
    "initial_state",
    "planned_intent_id",
    "registration_reducer",
]

BACKENDS: Final = {"service": REGISTER_SERVICE, "storage": STORE_REGISTRATION}
"""The two registration backends and the intent type that registers a node with each."""

STATE_KEYS: Final = frozenset(
    {
        "node",
        "service_registered",
        "storage_registered",
        "service_failed",
        "storage_failed",
        "service_intent",
        "storage_intent",
        "service_error",
        "storage_error",
        "service_permanent",
        "storage_permanent",
        "backend_retries",
        "ack_timeouts",
        "ack_requests",
        "ack_deadline",
        "liveness_deadline",
        "registered_at",
        "acked_at",
        "activated_at",
        "last_heartbeat_at",
        "heartbeats",
        "ack_timeout_emitted_at",
        "liveness_timeout_emitted_at",
        "expired_deadline",
        "failure_reason",
        "rejection_reason",
    }
)
"""Every key the reducer may keep in ``FsmState.data``."""

DATETIME_KEYS: Final = frozenset(
    {
        "ack_deadline",
        "liveness_deadline",
        "registered_at",
        "acked_at",
        "activated_at",
        "last_heartbeat_at",
        "ack_timeout_emitted_at",
        "liveness_timeout_emitted_at",
        "expired_deadline",
    }
)
"""The keys of ``FsmState.data`` that hold timezone-aware datetimes."""


@dataclass(frozen=True, slots=True)
class Step:
    """One reducer event, built by the orchestrator from one incoming message.

    Args:
        trigger: the machine trigger.
        cause_id: the id the step's intents derive from (the message's id, or derived from it
            for the second and later steps of one message).
        correlation_id: copied into every intent.
        sequence: strictly increasing per node; the reducer ignores a step whose sequence is
            not above the state's (a duplicate or a step that arrived out of order).
        data: what the trigger carries: ``at`` (the runtime's time), computed deadlines,
            the node's validated info, a failure's backend and reason.
    """

    trigger: str
    cause_id: UUID
    correlation_id: UUID
    sequence: int
    data: Mapping[str, Any] = field(default_factory=lambda: EMPTY)


def initial_state(machine: Machine) -> FsmState:
    """The state of a node nothing is known about yet."""
    return FsmState(machine.initial)


# --------------------------------------------------------------------------- guard data


class _GuardView(Mapping[str, Any]):
    """What guards read: the step's data, and the extended state under ``state``."""

    __slots__ = ("_data", "_state")

    def __init__(self, data: Mapping[str, Any], state: Mapping[str, Any]) -> None:
        self._data = data
        self._state = state

    def __getitem__(self, key: str) -> Any:
        if key == "state":
            return self._state
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        yield "state"
        yield from (key for key in self._data if key != "state")

    def __len__(self) -> int:
        return len(self._data) + (0 if "state" in self._data else 1)


def _guard_data(before: FsmState, step: Step) -> Mapping[str, Any]:
    return _GuardView(step.data, before.data)


# --------------------------------------------------------------------------- planned intents

_ACTION_TYPES: Final[Mapping[str, str]] = {
    "register_service": REGISTER_SERVICE,
    "store_registration": STORE_REGISTRATION,
    "store_ack": UPDATE_REGISTRATION,
    "store_heartbeat": UPDATE_REGISTRATION,
    "pass_health_check": PASS_CHECK,
    "store_expiry": UPDATE_REGISTRATION,
}


def _type_of(action: str, step: Step) -> str:
    if action == "retry_failed_backend":
        return BACKENDS[step.data["backend"]]
    try:
        return _ACTION_TYPES[action]
    except KeyError:
        raise UsageError(f"registration action {action!r} has no intent builder") from None


def planned_intent_id(fired: Fired, step: Step, intent_type: str) -> UUID | None:
    """The id the builders give the (first) intent of ``intent_type`` in this step, or None.

    Every builder makes exactly one intent, so an action's intent index is its position among
    the fired actions; :func:`update` uses this to remember which registration intents are
    awaiting an outcome.
    """
    for index, action in enumerate(fired.actions):
        if _type_of(action, step) == intent_type:
            return intent_id_for(step.cause_id, intent_type, index)
    return None


# --------------------------------------------------------------------------- extended state


def _at(step: Step) -> datetime:
    at = step.data.get("at")
    if not isinstance(at, datetime):
        raise UsageError(f"registration step {step.trigger!r} carries no 'at' time")
    return at


def _later(current: object, candidate: datetime) -> datetime:
    """The monotonic deadline rule: never move a deadline backwards."""
    if isinstance(current, datetime) and current > candidate:
        return current
    return candidate


def update(before: FsmState, step: Step, fired: Fired) -> Mapping[str, Any]:
    """The extended state after ``fired`` (see the module docstring). Pure."""
    trigger, target = fired.trigger, fired.target
    data = dict(before.data)
    at = _at(step)
    if trigger == "introspection_received":
        if target == "rejected":
            return {"rejection_reason": str(step.data.get("reason", "invalid introspection"))}
        return {
            "node": dict(step.data["node"]),
            "service_registered": False,
            "storage_registered": False,
            "service_failed": False,
            "storage_failed": False,
            "service_intent": str(planned_intent_id(fired, step, REGISTER_SERVICE)),
            "storage_intent": str(planned_intent_id(fired, step, STORE_REGISTRATION)),
            "backend_retries": 0,
            "ack_timeouts": 0,
            "ack_requests": 0,
            "heartbeats": 0,
            "registered_at": at,
        }
    if trigger in ("service_registered", "storage_registered"):
        backend = trigger.partition("_")[0]
        data[f"{backend}_registered"] = True
        data[f"{backend}_failed"] = False
        data.pop(f"{backend}_intent", None)
    elif trigger == "backend_failed":
        backend = step.data["backend"]
        data[f"{backend}_failed"] = True
        data.pop(f"{backend}_intent", None)
        if target == "failed":
            data.pop("service_intent", None)
            data.pop("storage_intent", None)
            data["failure_reason"] = str(step.data.get("reason", "a backend failed"))
        elif "retry_failed_backend" in fired.actions:
            data["backend_retries"] = int(data.get("backend_retries", 0)) + 1
            data[f"{backend}_intent"] = str(planned_intent_id(fired, step, BACKENDS[backend]))
            data.pop(f"{backend}_error", None)
            data.pop(f"{backend}_permanent", None)
        else:  # waiting for the other backend's outcome before deciding
            data[f"{backend}_error"] = str(step.data.get("error", "error"))
            if step.data.get("permanent") is True:
                data[f"{backend}_permanent"] = True
    elif trigger in ("ack_requested", "ack_retried"):
        data["ack_deadline"] = step.data["ack_deadline"]
        data["ack_requests"] = int(data.get("ack_requests", 0)) + 1
    elif trigger == "ack_received":
        data.pop("ack_deadline", None)
        data["acked_at"] = at
        data["liveness_deadline"] = _later(
            data.get("liveness_deadline"), step.data["liveness_deadline"]
        )
    elif trigger == "activated":
        data["activated_at"] = at
        data["liveness_deadline"] = _later(
            data.get("liveness_deadline"), step.data["liveness_deadline"]
        )
    elif trigger == "ack_deadline_passed":
        data.pop("ack_deadline", None)
        data["ack_timeouts"] = int(data.get("ack_timeouts", 0)) + 1
        data["ack_timeout_emitted_at"] = at
        if target == "failed":
            data["failure_reason"] = f"no ACK after {data['ack_timeouts']} requests"
    elif trigger == "heartbeat_received":
        data["liveness_deadline"] = _later(
            data.get("liveness_deadline"), step.data["liveness_deadline"]
        )
        data["last_heartbeat_at"] = at
        data["heartbeats"] = int(data.get("heartbeats", 0)) + 1
    elif trigger == "liveness_deadline_passed":
        data["expired_deadline"] = data.pop("liveness_deadline", None)
        data["liveness_timeout_emitted_at"] = at
    if target == "failed":
        data.pop("ack_deadline", None)
        data.pop("liveness_deadline", None)
    return data


# --------------------------------------------------------------------------- intent builders


def _iso(value: object) -> str | None:
    return value.isoformat() if isinstance(value, datetime) else None


class _Builders:
    """The action builders, closed over the config (for the TTL of the health check)."""

    def __init__(self, config: RegistrationConfig) -> None:
        self.config = config

    def intent(
        self, ctx: ActionContext[Step], intent_type: str, target: str, payload: dict[str, Any]
    ) -> Intent:
        step = ctx.event
        return Intent(
            intent_type=intent_type,
            target=target,
            payload=payload,
            intent_id=intent_id_for(step.cause_id, intent_type, ctx.index),
            correlation_id=step.correlation_id,
        )

    def registration(self, after: FsmState) -> dict[str, Any]:
        """The service-registry registration of a node (also carried by health checks, so the
        effect can re-register a service the registry lost)."""
        node = after.data["node"]
        node_type, node_id = node["node_type"], node["node_id"]
        tags = ["onex", f"node-type:{node_type}", f"version:{node['node_version']}"]
        tags += [f"capability:{c}" for c in node["capabilities"]]
        return {
            "service_id": service_id_of(node_type, node_id),
            "service_name": service_name_of(node_type),
            "node_id": node_id,
            "node_type": node_type,
            "address": node["address"],
            "port": node["port"],
            "tags": tags,
            "check_ttl_seconds": self.config.liveness_window,
            "attempt": after.attempt + 1,
        }

    def service_target(self, after: FsmState, resource: str = "service") -> str:
        node = after.data["node"]
        return make_target("consul", resource, service_id_of(node["node_type"], node["node_id"]))

    def storage_target(self, after: FsmState) -> str:
        return make_target("postgres", "registration_projections", after.data["node"]["node_id"])

    def stored(self, ctx: ActionContext[Step], state: str, **fields: Any) -> dict[str, Any]:
        node = ctx.after.data["node"]
        return {
            "node_id": node["node_id"],
            "attempt": ctx.after.attempt + 1,
            "revision": ctx.event.sequence,
            "state": state,
            **fields,
        }

    # -- one builder per action of the contract

    def register_service(self, ctx: ActionContext[Step]) -> Intent:
        return self.intent(
            ctx, REGISTER_SERVICE, self.service_target(ctx.after), self.registration(ctx.after)
        )

    def store_registration(self, ctx: ActionContext[Step]) -> Intent:
        node = ctx.after.data["node"]
        payload = self.stored(
            ctx,
            "pending_registration",
            node_type=node["node_type"],
            node_version=node["node_version"],
            endpoints=dict(node["endpoints"]),
            capabilities=list(node["capabilities"]),
            registered_at=_iso(ctx.after.data.get("registered_at")),
        )
        return self.intent(ctx, STORE_REGISTRATION, self.storage_target(ctx.after), payload)

    def retry_failed_backend(self, ctx: ActionContext[Step]) -> Intent:
        if ctx.event.data["backend"] == "service":
            return self.register_service(ctx)
        return self.store_registration(ctx)

    def store_ack(self, ctx: ActionContext[Step]) -> Intent:
        payload = self.stored(
            ctx,
            "active",
            acked_at=_iso(ctx.after.data.get("acked_at")),
            liveness_deadline=_iso(ctx.after.data.get("liveness_deadline")),
        )
        return self.intent(ctx, UPDATE_REGISTRATION, self.storage_target(ctx.after), payload)

    def store_heartbeat(self, ctx: ActionContext[Step]) -> Intent:
        payload = self.stored(
            ctx,
            "active",
            last_heartbeat_at=_iso(ctx.after.data.get("last_heartbeat_at")),
            liveness_deadline=_iso(ctx.after.data.get("liveness_deadline")),
        )
        return self.intent(ctx, UPDATE_REGISTRATION, self.storage_target(ctx.after), payload)

    def pass_health_check(self, ctx: ActionContext[Step]) -> Intent:
        registration = self.registration(ctx.after)
        payload = {"check_id": registration["service_id"], "registration": registration}
        return self.intent(ctx, PASS_CHECK, self.service_target(ctx.after, "check"), payload)

    def store_expiry(self, ctx: ActionContext[Step]) -> Intent:
        payload = self.stored(
            ctx,
            "liveness_expired",
            expired_at=_iso(ctx.after.data.get("liveness_timeout_emitted_at")),
            last_heartbeat_at=_iso(ctx.after.data.get("last_heartbeat_at")),
        )
        return self.intent(ctx, UPDATE_REGISTRATION, self.storage_target(ctx.after), payload)


def _trigger_of(step: Step) -> str:
    return step.trigger


def _sequence_of(step: Step) -> int:
    return step.sequence


def registration_reducer(machine: Machine, config: RegistrationConfig) -> FsmReducer[Step]:
    """The registration reducer over ``machine`` (compiled from the reducer contract).

    Returns:
        An :class:`~onex_core.reducers.FsmReducer` folding :class:`Step` values.

    Raises:
        ContractError: the machine uses an action this module has no builder for, or its guard
            limits disagree with ``config`` (:func:`check_limits`).
    """
    check_limits(machine, config)
    builders = _Builders(config)
    actions = {name: getattr(builders, name) for name in (*_ACTION_TYPES, "retry_failed_backend")}
    return FsmReducer(
        machine,
        trigger_of=_trigger_of,
        actions=actions,
        sequence_of=_sequence_of,
        update=update,
        guard_data=_guard_data,
        restart_on=frozenset({"introspection_received"}),
    )


def check_limits(machine: Machine, config: RegistrationConfig) -> None:
    """Check that the machine's guards enforce ``config``'s limits.

    Probes :func:`~onex_core.fsm.fire`: a backend failure must be retried after
    ``0 … max_backend_retries - 1`` earlier retries and fail the registration after
    ``max_backend_retries``; an ACK timeout must be retried after ``0 … max_ack_timeouts - 2``
    earlier timeouts and fail the registration after ``max_ack_timeouts - 1``.

    Raises:
        ContractError: naming the limit on which the two disagree.
    """

    def target(state: str, trigger: str, counters: Mapping[str, int]) -> str | None:
        result = fire(machine, state, trigger, {"state": counters})
        return result.target if result.ok else None

    retries = config.max_backend_retries
    for earlier in range(retries + 1):
        want = "pending_registration" if earlier < retries else "failed"
        got = target("pending_registration", "backend_failed", {"backend_retries": earlier})
        if got != want:
            raise ContractError(
                f"machine {machine.name!r}: after {earlier} backend retries a failure leads to "
                f"{got!r}, but max_backend_retries={retries} means {want!r}"
            )
    timeouts = config.max_ack_timeouts
    for earlier in range(timeouts):
        want = "ack_timed_out" if earlier < timeouts - 1 else "failed"
        got = target("awaiting_ack", "ack_deadline_passed", {"ack_timeouts": earlier})
        if got != want:
            raise ContractError(
                f"machine {machine.name!r}: after {earlier} ACK timeouts the next leads to "
                f"{got!r}, but max_ack_timeouts={timeouts} means {want!r}"
            )
