"""The pure registration decisions: the seed's ACK and liveness tables, rows one by one."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from onex_core.errors import ContentError, ContractError
from onex_core.registration import RegistrationConfig, deadline_checks, registration_reducer
from onex_core.registration.model import (
    ACCEPTED,
    ACK_RECEIVED,
    ACK_TIMED_OUT,
    BECAME_ACTIVE,
    DEADLINE_CHECK,
    FAILED,
    INITIATED,
    INTROSPECTION,
    LIVENESS_EXPIRED,
    PASS_CHECK,
    REGISTER_SERVICE,
    REJECTED,
    STORE_REGISTRATION,
    UPDATE_REGISTRATION,
)
from tests.registration.kit import at, introspection_payload, machine, message
from tests.registration.pure import Node

# --------------------------------------------------------------------------- ACK timeout handling


def test_ack_received_on_time_makes_the_node_active() -> None:
    node = Node()
    node.register(0)
    handled = node.ack(29)
    assert node.state == "active"
    assert [e.topic for e in handled.decision.events] == [ACK_RECEIVED, BECAME_ACTIVE]
    assert node.data["liveness_deadline"] == at(29 + 30)
    assert "ack_deadline" not in node.data  # the timeout scan no longer finds it
    [store] = handled.decision.intents
    assert store.intent_type == UPDATE_REGISTRATION
    assert store.payload["liveness_deadline"] == at(59).isoformat()


def test_ack_not_received_within_30_s_times_out_and_is_requested_again() -> None:
    node = Node()
    node.register(0)
    assert node.data["ack_deadline"] == at(30)
    handled = node.check("ack", 31)
    assert node.state == "awaiting_ack"
    assert [e.topic for e in handled.decision.events] == [ACK_TIMED_OUT, ACCEPTED]
    timed_out, again = handled.decision.events
    assert timed_out.payload["deadline_at"] == at(30).isoformat()
    assert again.payload == {
        "node_id": "node-1",
        "attempt": 1,
        "ack_deadline": at(61).isoformat(),
        "ack_request": 2,
    }
    assert node.data["ack_timeouts"] == 1
    node.ack(40)  # the retried request is answered: active after all
    assert node.state == "active"


def test_the_third_ack_timeout_fails_the_registration() -> None:
    node = Node()
    node.register(0)
    node.check("ack", 31)
    node.check("ack", 62)
    handled = node.check("ack", 93)
    assert node.state == "failed"
    assert [e.topic for e in handled.decision.events] == [ACK_TIMED_OUT, FAILED]
    assert handled.decision.events[1].payload["reason"] == "no ACK after 3 requests"
    assert node.topics().count(ACK_TIMED_OUT) == 3
    assert node.topics().count(ACCEPTED) == 3
    assert "ack_deadline" not in node.data
    assert node.ack(94).decision.note == "ACK ignored in state failed"


def test_an_ack_deadline_is_strict_and_its_timeout_is_emitted_once() -> None:
    node = Node()
    node.register(0)
    assert not node.check("ack", 30).decision.changed  # exactly at the deadline: in time
    first = node.check("ack", 30.001)
    second = node.check("ack", 30.5)  # a second tick's check, queued before the first ran
    assert first.decision.changed
    assert not second.decision.changed
    assert node.topics().count(ACK_TIMED_OUT) == 1


# --------------------------------------------------------------------------- errors in the ACK flow


def test_an_ack_in_an_invalid_state_changes_nothing() -> None:
    node = Node()
    node.introspect(0)
    before = node.projection
    handled = node.ack(1)
    assert handled.kind == "unchanged"
    assert handled.decision.note == "ACK too early: the registration is still pending"
    assert (handled.decision.events, handled.decision.intents) == ((), ())
    assert node.projection is before
    assert Node("ghost").ack(1).decision.note == "ACK from an unknown node"


def test_a_duplicate_ack_is_an_idempotent_no_op() -> None:
    node = Node()
    node.register(0)
    node.ack(5)
    active = node.projection
    resent = node.ack(6)  # the node sends its ACK again (a new message)
    assert resent.decision.note == "duplicate ACK: the node is already active"
    assert (resent.decision.events, resent.decision.intents) == ((), ())
    assert node.projection is active


def test_an_ack_after_liveness_expired_is_rejected() -> None:
    node = Node()
    node.register(0)
    node.ack(1)
    node.check("liveness", 32)
    assert node.state == "liveness_expired"
    handled = node.ack(33)
    assert handled.decision.note == "ACK rejected: liveness expired; the node must re-register"
    assert not handled.decision.changed
    assert node.state == "liveness_expired"


# --------------------------------------------------------------------------- liveness timeline


def test_heartbeats_every_10_s_keep_the_node_active() -> None:
    node = Node()
    node.register(0)
    node.ack(0)
    for second in range(1, 121):
        if second % 10 == 0:
            handled = node.heartbeat(second)
            assert [i.intent_type for i in handled.decision.intents] == [
                UPDATE_REGISTRATION,
                PASS_CHECK,
            ]
        node.check("liveness", second)
        assert node.state == "active", second
    assert node.data["liveness_deadline"] == at(150)
    assert node.data["heartbeats"] == 12


def test_no_heartbeat_by_t_plus_30_s_expires_the_node() -> None:
    node = Node()
    node.register(0)
    node.ack(0)
    handled = node.check("liveness", 30.5)
    assert node.state == "liveness_expired"
    [expired] = handled.decision.events
    assert expired.topic == LIVENESS_EXPIRED
    assert expired.payload["deadline_at"] == at(30).isoformat()
    [store] = handled.decision.intents
    assert store.payload["state"] == "liveness_expired"
    assert "liveness_deadline" not in node.data
    assert not node.check("liveness", 31).decision.changed  # emitted once


def test_at_exactly_t_plus_30_s_the_node_is_not_yet_expired() -> None:
    node = Node()
    node.register(0)
    node.ack(0)
    handled = node.check("liveness", 30)
    assert node.state == "active"
    assert handled.decision.note.endswith("not passed yet")


def test_a_late_heartbeat_never_moves_the_deadline_backwards() -> None:
    node = Node()
    node.register(0)
    node.ack(0)
    node.heartbeat(20)
    assert node.data["liveness_deadline"] == at(50)
    node.heartbeat(15)  # handled with an older runtime time (another host's clock)
    assert node.data["liveness_deadline"] == at(50)


@pytest.mark.parametrize("skew", [timedelta(days=-1), timedelta(days=1)])
def test_a_nodes_own_timestamp_never_sets_its_deadline(skew: timedelta) -> None:
    node = Node()
    node.register(0)
    node.ack(0)
    node.heartbeat(10, timestamp=at(10) + skew)
    assert node.data["liveness_deadline"] == at(40)


# --------------------------------------------------------------------------- introspection


@pytest.mark.parametrize(
    ("payload_change", "field"),
    [
        ({"node_type": "gateway"}, "node_type"),
        ({"node_id": "other"}, "node_id"),
        ({"endpoints": {"api": "no url here"}}, "endpoints.api"),
        ({"capabilities": "all"}, "capabilities"),
    ],
)
def test_an_invalid_introspection_is_rejected_naming_the_field(
    payload_change: dict[str, object], field: str
) -> None:
    node = Node()
    handled = node.introspect(0, **payload_change)
    assert node.state == "rejected"
    [rejected] = handled.decision.events
    assert rejected.topic == REJECTED
    assert f"'{field}'" in rejected.payload["rejection_reason"]
    assert handled.decision.intents == ()


@pytest.mark.parametrize("blocking", ["pending_registration", "awaiting_ack", "active"])
def test_a_node_in_a_live_state_cannot_register_again(blocking: str) -> None:
    node = Node()
    node.introspect(0)
    if blocking != "pending_registration":
        node.outcome(node.awaited(REGISTER_SERVICE), True, 0)
        node.outcome(node.awaited(STORE_REGISTRATION), True, 0)
    if blocking == "active":
        node.ack(1)
    assert node.state == blocking
    handled = node.introspect(2)
    assert handled.decision.note == f"state {blocking} blocks new registration"
    assert handled.decision.intents == ()


@pytest.mark.parametrize("terminal", ["rejected", "liveness_expired", "failed"])
def test_a_terminal_node_comes_back_with_a_new_attempt(terminal: str) -> None:
    node = Node()
    if terminal == "rejected":
        node.introspect(0, node_type="gateway")
    else:
        node.register(0)
        if terminal == "liveness_expired":
            node.ack(1)
            node.check("liveness", 32)
        else:
            for second in (31, 62, 93):
                node.check("ack", second)
    assert node.state == terminal
    handled = node.introspect(100)
    assert node.state == "pending_registration"
    assert node.data["attempt"] == 1
    assert [e.topic for e in handled.decision.events] == [INITIATED]
    assert handled.decision.events[0].payload["attempt"] == 2
    assert {i.intent_type for i in handled.decision.intents} == {
        REGISTER_SERVICE,
        STORE_REGISTRATION,
    }


# --------------------------------------------------------------------------- effect outcomes


def test_late_and_foreign_outcomes_are_ignored() -> None:
    node = Node()
    node.introspect(0)
    service = node.awaited(REGISTER_SERVICE)
    node.outcome(service, False, 1)  # fails; waits for the store
    node.outcome(node.awaited(STORE_REGISTRATION), True, 1)  # partial: the service is retried
    retry = node.awaited(REGISTER_SERVICE)
    assert retry.intent_id != service.intent_id
    late = node.outcome(service, True, 2)  # the first attempt's outcome, replayed late
    assert late.decision.note == "service outcome of an intent not awaited (late or duplicate)"
    node.outcome(retry, True, 3)
    assert node.state == "awaiting_ack"


def test_a_permanent_rejection_is_not_retried() -> None:
    node = Node()
    node.introspect(0)
    node.outcome(node.awaited(STORE_REGISTRATION), True, 1)
    handled = node.outcome(node.awaited(REGISTER_SERVICE), False, 1, permanent=True)
    assert node.state == "failed"
    [failed] = handled.decision.events
    assert failed.payload["reason"].startswith("the service registry rejected the registration")
    assert len(node.ids(REGISTER_SERVICE)) == 1


def test_a_backend_is_retried_at_most_three_times() -> None:
    node = Node()
    node.introspect(0)
    node.outcome(node.awaited(STORE_REGISTRATION), True, 0)
    for second in range(1, 5):
        node.outcome(node.awaited(REGISTER_SERVICE), False, second)
    assert node.state == "failed"
    assert len(node.ids(REGISTER_SERVICE)) == 4  # the first try and three retries
    assert (
        node.events[-1]
        .payload["reason"]
        .startswith("the service registry still failing after 3 retries")
    )


# --------------------------------------------------------------------------- replays and checks


def test_the_last_message_replayed_gives_the_same_outputs_and_writes_nothing() -> None:
    node = Node()
    introspection = node.message(INTROSPECTION, introspection_payload("node-1"), 0)
    original = node.deliver(introspection, 0)
    again = node.deliver(introspection, 9)  # redelivered after a crash, seconds later
    assert again.kind == "replayed"
    assert again.projection is None
    assert again.decision.intents == original.decision.intents
    assert again.decision.events == original.decision.events  # decided at the stored now
    node.outcome(node.awaited(STORE_REGISTRATION), True, 10)
    duplicate = node.deliver(introspection, 11)
    assert duplicate.kind == "duplicate"
    assert (duplicate.decision.intents, duplicate.decision.events) == ((), ())


def test_deadline_checks_have_ids_that_do_not_depend_on_scan_order() -> None:
    tick = message("onex.intent.platform.runtime-tick.v1", "runtime-tick", {}, 1, at(5))
    overdue = {"ack": [("a", at(1)), ("b", at(2))], "liveness": [("c", at(3))]}
    commands = deadline_checks(tick, overdue, at(5))
    shuffled = deadline_checks(
        tick, {"liveness": overdue["liveness"], "ack": overdue["ack"][::-1]}, at(5)
    )
    assert {c.envelope_id for c in commands} == {c.envelope_id for c in shuffled}
    assert [(c.entity_id, c.payload["deadline"]) for c in commands] == [
        ("a", "ack"),
        ("b", "ack"),
        ("c", "liveness"),
    ]
    assert all(c.topic == DEADLINE_CHECK and c.causation_id == tick.envelope_id for c in commands)
    with pytest.raises(ContentError):
        deadline_checks(tick, {"lunch": [("a", at(1))]}, at(5))


def test_messages_naming_another_node_are_content_errors() -> None:
    node = Node()
    node.register(0)
    envelope = node.message("onex.cmd.platform.node-registration-acked.v1", {"node_id": "x"}, 1)
    with pytest.raises(ContentError, match="'node_id' must equal"):
        node.deliver(envelope, 1)


def test_the_config_must_agree_with_the_contracts_limits() -> None:
    with pytest.raises(ContractError, match="max_ack_timeouts=5"):
        registration_reducer(machine(), RegistrationConfig(max_ack_timeouts=5))
    with pytest.raises(ContractError, match="max_backend_retries=2"):
        registration_reducer(machine(), RegistrationConfig(max_backend_retries=2))


def test_ids_are_deterministic() -> None:
    one, two = Node(), Node()
    one.register(0)
    two.register(0)
    assert [i.intent_id for i in one.intents] == [i.intent_id for i in two.intents]
    assert [e.envelope_id for e in one.events] == [e.envelope_id for e in two.events]
    assert all(isinstance(i.intent_id, uuid.UUID) for i in one.intents)
