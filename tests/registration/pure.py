"""Driving the pure registration decisions for one node, as the orchestrator handler does."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from onex_core.intents import Intent
from onex_core.messages import Envelope
from onex_core.outputs import Projection
from onex_core.reducers import FsmReducer
from onex_core.registration import Handled, RegistrationConfig, Step, handle, registration_reducer
from onex_core.registration.model import (
    ACKED,
    DEADLINE_CHECK,
    HEARTBEAT,
    INTROSPECTION,
    REGISTER_SERVICE,
    SERVICE_OUTCOME,
    STORAGE_OUTCOME,
    STORE_REGISTRATION,
)
from tests.registration.kit import at, introspection_payload, machine, message

CONFIG = RegistrationConfig()
REDUCER: FsmReducer[Step] = registration_reducer(machine(), CONFIG)


@dataclass
class Node:
    """One node's projection, and everything its messages produced."""

    node: str = "node-1"
    projection: Projection | None = None
    sent: int = 0
    intents: list[Intent] = field(default_factory=list)
    events: list[Envelope] = field(default_factory=list)
    history: list[Handled] = field(default_factory=list)

    def message(self, topic: str, payload: dict[str, Any], seconds: float) -> Envelope:
        self.sent += 1
        return message(topic, self.node, payload, self.sent, at(seconds))

    def deliver(self, envelope: Envelope, seconds: float) -> Handled:
        handled = handle(
            self.projection,
            envelope,
            at(seconds),
            CONFIG,
            REDUCER,
            partition="p",
            offset=len(self.history),
        )
        if handled.projection is not None:
            self.projection = handled.projection
        self.intents.extend(handled.decision.intents)
        self.events.extend(handled.decision.events)
        self.history.append(handled)
        return handled

    def send(self, topic: str, payload: dict[str, Any], seconds: float) -> Handled:
        return self.deliver(self.message(topic, payload, seconds), seconds)

    # -- the node's own messages

    def introspect(self, seconds: float = 0.0, **extra: Any) -> Handled:
        return self.send(INTROSPECTION, introspection_payload(self.node, **extra), seconds)

    def ack(self, seconds: float) -> Handled:
        return self.send(ACKED, {"node_id": self.node}, seconds)

    def heartbeat(self, seconds: float, timestamp: datetime | None = None) -> Handled:
        stamp = (timestamp or at(seconds)).isoformat()
        return self.send(HEARTBEAT, {"node_id": self.node, "timestamp": stamp}, seconds)

    def check(self, kind: str, seconds: float) -> Handled:
        return self.send(DEADLINE_CHECK, {"node_id": self.node, "deadline": kind}, seconds)

    # -- effect outcomes, as the runtime reports them

    def awaited(self, intent_type: str) -> Intent:
        """The latest intent of ``intent_type`` (the one the workflow awaits)."""
        return [i for i in self.intents if i.intent_type == intent_type][-1]

    def outcome(
        self, intent: Intent, ok: bool, seconds: float, *, permanent: bool = False
    ) -> Handled:
        topic = SERVICE_OUTCOME if intent.intent_type == REGISTER_SERVICE else STORAGE_OUTCOME
        payload: dict[str, Any] = {
            "intent_id": str(intent.intent_id),
            "intent_type": intent.intent_type,
            "target": intent.target,
            "ok": ok,
            "status": "done" if ok else "failed",
        }
        if not ok:
            payload.update(permanent=permanent, error_type="EffectUnavailable", reason="down")
        return self.send(topic, payload, seconds)

    def register(self, seconds: float = 0.0) -> None:
        """Introspect and have both backends succeed: the node ends awaiting its ACK."""
        self.introspect(seconds)
        self.outcome(self.awaited(REGISTER_SERVICE), True, seconds)
        self.outcome(self.awaited(STORE_REGISTRATION), True, seconds)

    @property
    def state(self) -> str:
        return "unregistered" if self.projection is None else self.projection.state

    @property
    def data(self) -> dict[str, Any]:
        return {} if self.projection is None else dict(self.projection.data)

    def topics(self) -> list[str]:
        return [e.topic for e in self.events]

    def ids(self, intent_type: str) -> set[UUID]:
        return {i.intent_id for i in self.intents if i.intent_type == intent_type}
