from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from uuid import UUID

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from onex_core.errors import ContentError
from onex_core.messages import (
    MAX_ENTITY_ID_LENGTH,
    Envelope,
    causation_chain,
    causation_problems,
    derive_id,
)

NOW = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
ROOT_ID = UUID("2f1c9c1e-0000-4000-8000-000000000001")
CORRELATION = UUID("2f1c9c1e-0000-4000-8000-0000000000cc")


def make(**changes: Any) -> Envelope:
    fields: dict[str, Any] = {
        "envelope_id": ROOT_ID,
        "topic": "onex.evt.platform.node-introspection.v1",
        "event_type": "platform.node-introspection",
        "payload": {"node_id": "n-1"},
        "correlation_id": CORRELATION,
        "entity_id": "n-1",
        "emitted_at": NOW,
    }
    fields.update(changes)
    return Envelope(**fields)


# --------------------------------------------------------------------------- validation


def test_a_valid_envelope_keeps_its_fields() -> None:
    envelope = make(emitted_at=datetime(2025, 1, 1, tzinfo=timezone(timedelta(hours=2))))
    assert envelope.causation_id is None
    assert dict(envelope.headers) == {}
    assert envelope.schema_version == 1
    assert make(entity_id="x" * MAX_ENTITY_ID_LENGTH).entity_id == "x" * MAX_ENTITY_ID_LENGTH


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"emitted_at": datetime(2025, 1, 1)}, "timezone-aware"),
        ({"entity_id": ""}, "entity_id"),
        ({"entity_id": "x" * (MAX_ENTITY_ID_LENGTH + 1)}, "entity_id"),
        ({"event_type": ""}, "event_type"),
    ],
)
def test_invalid_envelopes_raise_content_error(changes: dict[str, Any], match: str) -> None:
    with pytest.raises(ContentError, match=match):
        make(**changes)


def test_entity_id_error_does_not_echo_the_value() -> None:
    secret = "s3cret-" + "x" * MAX_ENTITY_ID_LENGTH
    with pytest.raises(ContentError) as caught:
        make(entity_id=secret)
    assert "s3cret" not in str(caught.value)


@pytest.mark.parametrize("name", ["topic", "envelope_id", "causation_id", "headers"])
def test_envelopes_are_frozen(name: str) -> None:
    envelope = make()
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(envelope, name, None)


def test_envelopes_compare_by_value() -> None:
    assert make() == make()
    assert make() != make(entity_id="n-2")


# --------------------------------------------------------------------------- children


def test_child_derives_id_and_copies_correlation() -> None:
    parent = make()
    child = parent.child(
        topic="onex.intent.platform.consul-register.v1",
        event_type="platform.consul-register",
        payload={"service": "a"},
        index=2,
        emitted_at=NOW + timedelta(seconds=1),
    )
    assert child.envelope_id == uuid.uuid5(ROOT_ID, "platform.consul-register:2")
    assert child.correlation_id == CORRELATION
    assert child.causation_id == ROOT_ID
    assert child.entity_id == parent.entity_id
    assert child.topic == "onex.intent.platform.consul-register.v1"
    assert child.payload == {"service": "a"}


def test_children_are_deterministic_and_distinct_by_type_and_index() -> None:
    parent = make()

    def child(event_type: str, index: int, **more: Any) -> Envelope:
        return parent.child(
            topic="onex.evt.a.b.v1",
            event_type=event_type,
            payload={},
            index=index,
            emitted_at=NOW,
            **more,
        )

    assert child("a.b", 0) == child("a.b", 0)
    ids = {child(t, i).envelope_id for t in ("a.b", "a.c") for i in range(3)}
    assert len(ids) == 6
    assert child("a.b", 0, entity_id="other").entity_id == "other"
    grandchild = child("a.b", 0).child(
        topic="onex.evt.a.c.v1", event_type="a.c", payload={}, index=0, emitted_at=NOW
    )
    assert grandchild.correlation_id == CORRELATION
    assert grandchild.causation_id == child("a.b", 0).envelope_id


def test_child_is_validated_like_any_envelope() -> None:
    with pytest.raises(ContentError, match="timezone-aware"):
        make().child(
            topic="onex.evt.a.b.v1",
            event_type="a.b",
            payload={},
            index=0,
            emitted_at=datetime(2025, 1, 1),
        )


@settings(max_examples=300)
@given(st.uuids(), st.text(alphabet=st.characters(codec="utf-8"), max_size=40))
def test_derive_id_is_uuid5(parent: UUID, name: str) -> None:
    assert derive_id(parent, name) == uuid.uuid5(parent, name)
    assert str(derive_id(parent, name)) == str(uuid.uuid5(parent, name))
    assert derive_id(parent, name).version == 5


def test_derive_id_examples_with_non_ascii_names() -> None:
    for name in ("", "é", "ノード:0", "consul.register:0", "\x00"):
        assert derive_id(ROOT_ID, name) == uuid.uuid5(ROOT_ID, name)
        assert hash(derive_id(ROOT_ID, name)) == hash(uuid.uuid5(ROOT_ID, name))


# --------------------------------------------------------------------------- causation


def conversation() -> tuple[Envelope, Envelope, Envelope]:
    root = make()
    child = root.child(
        topic="onex.evt.a.b.v1", event_type="a.b", payload={}, index=0, emitted_at=NOW
    )
    grandchild = child.child(
        topic="onex.evt.a.c.v1", event_type="a.c", payload={}, index=0, emitted_at=NOW
    )
    return root, child, grandchild


def test_causation_chain_runs_root_first() -> None:
    root, child, grandchild = conversation()
    by_id = {e.envelope_id: e for e in (root, child, grandchild)}
    assert causation_chain(grandchild, by_id) == (root, child, grandchild)
    assert causation_chain(root, by_id) == (root,)


def test_causation_chain_stops_at_a_missing_parent() -> None:
    _, child, grandchild = conversation()
    assert causation_chain(grandchild, {child.envelope_id: child}) == (child, grandchild)
    assert causation_chain(grandchild, {}) == (grandchild,)


def cycle() -> tuple[Envelope, Envelope]:
    a_id, b_id = UUID(int=10), UUID(int=11)
    return make(envelope_id=a_id, causation_id=b_id), make(envelope_id=b_id, causation_id=a_id)


def test_causation_chain_rejects_a_cycle() -> None:
    a, b = cycle()
    with pytest.raises(ContentError, match="cycle"):
        causation_chain(a, {a.envelope_id: a, b.envelope_id: b})


def test_a_well_formed_conversation_has_no_problems() -> None:
    assert causation_problems(conversation()) == ()
    assert causation_problems([]) == ()


@pytest.mark.parametrize(
    ("envelopes", "fragment"),
    [
        (lambda: [*conversation(), conversation()[1]], "appears more than once"),
        (
            lambda: [*conversation(), make(envelope_id=UUID(int=5), correlation_id=UUID(int=6))],
            "2 correlation ids",
        ),
        (lambda: conversation()[1:], "which is not here"),
        (cycle, "cycle"),
    ],
)
def test_causation_problems_name_each_kind(envelopes: Any, fragment: str) -> None:
    problems = causation_problems(envelopes())
    assert len(problems) == 1
    assert fragment in problems[0]


def test_causation_problems_lists_every_problem() -> None:
    stranger = make(envelope_id=UUID(int=5), correlation_id=UUID(int=6), causation_id=UUID(int=7))
    problems = causation_problems([*conversation()[1:], stranger])
    assert len(problems) == 3
