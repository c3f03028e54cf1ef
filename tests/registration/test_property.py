"""Any interleaving or duplication of one node's messages leaves it in a valid state.

Hypothesis drives one node through arbitrary sequences of its messages — introspections (some
invalid), effect outcomes (for any registration intent asked so far, stale ones included, each
intent's outcome fixed once as the runtime would report it), ACKs, heartbeats, deadline checks —
with time moving forward by arbitrary steps, and any earlier message delivered again. After every
message the node's state must be valid, and across the whole run there must never be a second
registration effect for one attempt that no failure asked for.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any
from uuid import UUID

from hypothesis import event, given, settings
from hypothesis import strategies as st

from onex_core.intents import Intent
from onex_core.messages import Envelope, derive_id
from onex_core.registration.model import (
    ACK_TIMED_OUT,
    FAILED,
    INITIATED,
    INTROSPECTION,
    LIVENESS_EXPIRED,
    REGISTER_SERVICE,
    SERVICE_OUTCOME,
    STORAGE_OUTCOME,
    STORE_REGISTRATION,
)
from onex_core.topics import parse_topic
from tests.registration.kit import at, introspection_payload, machine
from tests.registration.pure import CONFIG, Node

MACHINE = machine()
ACTIONS = [
    "introspect",
    "introspect",
    "bad_introspection",
    "outcome",
    "outcome",
    "outcome",
    "ack",
    "ack",
    "heartbeat",
    "heartbeat",
    "check_ack",
    "check_liveness",
    "redeliver",
    "redeliver",
]
STEPS = [0.0, 0.0, 0.5, 1.0, 5.0, 10.0, 20.0, 29.0, 31.0]
REGISTRATIONS = (REGISTER_SERVICE, STORE_REGISTRATION)


def outcome_of(intent: Intent, ok: bool, permanent: bool, when: datetime) -> Envelope:
    """The outcome event the runtime publishes for ``intent`` (its id derives from the intent)."""
    topic = SERVICE_OUTCOME if intent.intent_type == REGISTER_SERVICE else STORAGE_OUTCOME
    event_type = parse_topic(topic).event_type
    payload: dict[str, Any] = {
        "intent_id": str(intent.intent_id),
        "intent_type": intent.intent_type,
        "target": intent.target,
        "ok": ok,
        "status": "done" if ok else "failed",
    }
    if not ok:
        payload.update(permanent=permanent, error_type="EffectUnavailable", reason="down")
    outcome_id = derive_id(intent.intent_id, f"{event_type}:0")
    return Envelope(outcome_id, topic, event_type, payload, intent.correlation_id, "node-1", when)


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_any_interleaving_or_duplication_of_one_nodes_messages_is_safe(data: st.DataObject) -> None:
    node = Node()
    seconds = 0.0
    delivered: list[Envelope] = []
    times: list[float] = []
    outcomes: dict[UUID, Envelope] = {}
    failures_applied: dict[tuple[int, str], set[UUID]] = defaultdict(set)
    registrations: dict[tuple[int, str], list[UUID]] = defaultdict(list)
    last_deadline: tuple[int, datetime] | None = None

    for _ in range(data.draw(st.integers(min_value=5, max_value=40), label="length")):
        seconds += data.draw(st.sampled_from(STEPS), label="wait")
        action = data.draw(st.sampled_from(ACTIONS), label="action")
        asked = [i for i in node.intents if i.intent_type in REGISTRATIONS]
        if action == "outcome" and asked:
            intent = data.draw(st.sampled_from(asked), label="intent")
            if intent.intent_id not in outcomes:
                ok = data.draw(st.booleans(), label="ok")
                permanent = data.draw(st.booleans(), label="permanent") if not ok else False
                outcomes[intent.intent_id] = outcome_of(intent, ok, permanent, at(seconds))
            envelope = outcomes[intent.intent_id]
        elif action == "redeliver" and delivered:
            envelope = data.draw(st.sampled_from(delivered), label="again")
        elif action == "bad_introspection":
            payload = introspection_payload("node-1", node_type="gateway")
            envelope = node.message(INTROSPECTION, payload, seconds)
        elif action in ("check_ack", "check_liveness"):
            kind = action.removeprefix("check_")
            envelope = node.message(
                "onex.cmd.platform.node-deadline-check.v1",
                {"node_id": "node-1", "deadline": kind},
                seconds,
            )
        elif action == "ack":
            envelope = node.message(
                "onex.cmd.platform.node-registration-acked.v1", {"node_id": "node-1"}, seconds
            )
        elif action == "heartbeat":
            envelope = node.message(
                "onex.evt.platform.node-heartbeat.v1", {"node_id": "node-1"}, seconds
            )
        else:
            envelope = node.message(INTROSPECTION, introspection_payload("node-1"), seconds)

        before = len(node.intents)
        handled = node.deliver(envelope, seconds)
        delivered.append(envelope)
        times.append(seconds)

        # A failure outcome that was applied may ask for one more registration.
        outcome = envelope.topic in (SERVICE_OUTCOME, STORAGE_OUTCOME)
        if handled.kind == "applied" and outcome and envelope.payload["ok"] is False:
            key = (_attempt_of(node, envelope), envelope.payload["intent_type"])
            failures_applied[key].add(envelope.envelope_id)
        for intent in node.intents[before:]:
            if intent.intent_type in REGISTRATIONS:
                key = (intent.payload["attempt"], intent.intent_type)
                if intent.intent_id not in registrations[key]:
                    registrations[key].append(intent.intent_id)

        # The state is one of the machine's, and its deadlines are exactly the live ones.
        state = node.state
        data_ = node.data
        assert state in MACHINE.states
        assert state not in ("accepted", "ack_received", "ack_timed_out")  # never at rest
        assert ("ack_deadline" in data_) == (state == "awaiting_ack")
        assert ("liveness_deadline" in data_) == (state == "active")
        if state == "active":
            attempt, deadline = data_["attempt"], data_["liveness_deadline"]
            if last_deadline is not None and last_deadline[0] == attempt:
                assert deadline >= last_deadline[1]  # never moved backwards
            last_deadline = (attempt, deadline)
        event(f"reached {state}")
        assert data_.get("backend_retries", 0) <= CONFIG.max_backend_retries
        assert data_.get("ack_timeouts", 0) <= CONFIG.max_ack_timeouts

    if any(len(ids) > 1 for ids in registrations.values()):
        event("a failed backend was retried")
    # No second registration effect for one attempt, unless a failure asked for it.
    for key, ids in registrations.items():
        assert len(ids) <= 1 + len(failures_applied[key]), key
        assert len(ids) <= 1 + CONFIG.max_backend_retries, key
    # Each timeout and terminal event is emitted once (per attempt, by id).
    emitted: dict[tuple[str, int], set[UUID]] = defaultdict(set)
    for published in node.events:
        emitted[(published.topic, published.payload["attempt"])].add(published.envelope_id)
    for (topic, attempt), event_ids in emitted.items():
        limit = {INITIATED: 1, LIVENESS_EXPIRED: 1, FAILED: 1, ACK_TIMED_OUT: 3}.get(topic)
        if limit is not None:
            assert len(event_ids) <= limit, (topic, attempt)

    # The same messages at the same times always lead to the same projection.
    again = Node()
    for envelope, when in zip(delivered, times, strict=True):
        again.deliver(envelope, when)
    assert again.projection == node.projection


def _attempt_of(node: Node, outcome: Envelope) -> int:
    intent_id = outcome.payload["intent_id"]
    for intent in node.intents:
        if str(intent.intent_id) == intent_id:
            attempt: int = intent.payload["attempt"]
            return attempt
    raise AssertionError("an outcome of an intent nobody asked for")
