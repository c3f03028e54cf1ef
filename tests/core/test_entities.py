"""One message against one entity's projection: apply, replay, skip — and the layout."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from onex_core.entities import (
    RESERVED,
    EntityDecision,
    Handled,
    Layout,
    apply_to_projection,
)
from onex_core.errors import ContentError, UsageError
from onex_core.intents import Intent, intent_id_for, make_target
from onex_core.messages import Envelope
from onex_core.outputs import Projection
from onex_core.reducers import FsmState

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
NS = uuid.UUID("6f1d8e0c-2f6a-4c5e-9a55-656e74697479")
ADD = "onex.cmd.test.add.v1"
ADDED = "onex.evt.test.added.v1"
REFUSED = "onex.evt.test.add-refused.v1"
COUNTS = Layout("counts")


def count(state: FsmState | None, envelope: Envelope, now: datetime) -> EntityDecision:
    """A counter: ``add n`` (n > 0) moves it on, asks for one ledger intent and announces the
    new total with the time it was decided; ``add 0`` changes nothing; ``add -n`` is refused
    with an event; anything else is not a counter message."""
    before = state or FsmState("idle")
    n = envelope.payload.get("add")
    if not isinstance(n, int):
        raise ContentError("add must be an integer")
    if n < 0:
        refusal = envelope.child(
            topic=REFUSED, event_type="test.add-refused", payload={}, index=0, emitted_at=now
        )
        return EntityDecision(before, events=(refusal,), note="refused")
    if n == 0:
        return EntityDecision(before, note="nothing to add")
    total = before.data.get("count", 0) + n
    after = FsmState("counting", before.sequence + 1, 0, {"count": total, "last_at": now})
    intent = Intent(
        intent_type="ledger.add",
        target=make_target("ledger", "counts", envelope.entity_id),
        payload={"n": n, "at": now.isoformat()},
        intent_id=intent_id_for(envelope.envelope_id, "ledger.add", 0),
        correlation_id=envelope.correlation_id,
    )
    event = envelope.child(
        topic=ADDED, event_type="test.added", payload={"count": total}, index=0, emitted_at=now
    )
    return EntityDecision(after, (intent,), (event,), f"+{n}", changed=True)


def add(index: int, n: int, entity: str = "c-1") -> Envelope:
    envelope_id = uuid.uuid5(NS, f"{entity}/{index}")
    return Envelope(envelope_id, ADD, "test.add", {"add": n}, envelope_id, entity, T0)


def deliver(
    projection: Projection | None,
    envelope: Envelope,
    seconds: float,
    layout: Layout = COUNTS,
    offset: int = 0,
) -> Handled:
    now = T0 + timedelta(seconds=seconds)
    return apply_to_projection(
        projection, envelope, now, count, layout=layout, partition="p0", offset=offset
    )


def applied(*messages: Envelope, layout: Layout = COUNTS) -> Projection:
    projection = None
    for i, message in enumerate(messages):
        handled = deliver(projection, message, i, layout, offset=i)
        assert handled.kind == "applied"
        projection = handled.projection
    assert projection is not None
    return projection


# --------------------------------------------------------------------------- the four kinds


def test_a_change_is_applied_and_the_projection_laid_out_as_documented() -> None:
    first, second = add(1, 2), add(2, 3)
    handled = deliver(applied(first), second, 7, offset=1)
    assert handled.kind == "applied"
    assert [e.payload for e in handled.decision.events] == [{"count": 5}]
    assert handled.projection == Projection(
        entity_id="c-1",
        domain="counts",
        state="counting",
        data={
            "count": 5,
            "last_at": T0 + timedelta(seconds=7),
            "attempt": 0,
            "fsm_sequence": 1,
            "applied": [str(first.envelope_id), str(second.envelope_id)],
            "previous": {
                "state": "counting",
                "sequence": 0,
                "attempt": 0,
                "data": {"count": 2, "last_at": T0},
            },
        },
        sequence=1,
        event_id=second.envelope_id,
        partition="p0",
        offset=1,
        updated_at=T0 + timedelta(seconds=7),
    )


@pytest.mark.parametrize("messages", [1, 3], ids=["first message", "third message"])
def test_the_last_message_again_is_replayed_with_identical_outputs_at_its_own_time(
    messages: int,
) -> None:
    log = [add(i, i) for i in range(1, messages + 1)]
    before = applied(*log[:-1]) if messages > 1 else None
    first = deliver(before, log[-1], 10)
    assert first.projection is not None
    again = deliver(first.projection, log[-1], 500)  # redelivered much later
    assert again.kind == "replayed"
    assert again.projection is None
    assert again.decision == first.decision  # same state, intent and event ids, same times
    assert again.decision.intents[0].payload["at"] == (T0 + timedelta(seconds=10)).isoformat()


def test_a_recent_message_again_is_a_duplicate_and_changes_nothing() -> None:
    log = [add(i, 1) for i in range(1, 5)]
    projection = applied(*log)
    handled = deliver(projection, log[0], 99)
    assert handled.kind == "duplicate"
    assert handled.projection is None
    stored = COUNTS.state_of(projection)
    assert stored is not None
    assert handled.decision == EntityDecision(stored, note="already applied", changed=False)


def test_a_message_older_than_the_window_is_decided_again() -> None:
    short = Layout("counts", window=2)
    first, second, third = add(1, 1), add(2, 1), add(3, 1)
    projection = applied(first, second, third, layout=short)
    assert projection.data["applied"] == [str(second.envelope_id), str(third.envelope_id)]
    assert deliver(projection, second, 9, short).kind == "duplicate"
    assert deliver(projection, third, 9, short).kind == "replayed"
    forgotten = deliver(projection, first, 9, short)
    assert forgotten.kind == "applied"
    assert forgotten.projection is not None
    assert forgotten.projection.data["count"] == 4


def test_an_unchanged_decision_records_nothing_and_is_decided_again_next_time() -> None:
    projection = applied(add(1, 2))
    for message, events in ((add(2, 0), 0), (add(3, -1), 1)):
        for _ in range(2):
            handled = deliver(projection, message, 5)
            assert handled.kind == "unchanged"
            assert handled.projection is None
            assert len(handled.decision.events) == events  # a refusal still goes out


STORED = FsmState("counting", 0, 0, {"count": 2})


@pytest.mark.parametrize(
    ("before", "after", "changed", "kind"),
    [
        # left out: derived by comparing the new state with the one decided from
        (STORED, FsmState("counting", 1, 0, {"count": 3}), None, "applied"),
        (STORED, FsmState("done", 0, 0, {"count": 2}), None, "applied"),
        (STORED, FsmState("counting", 0, 0, {"count": 2}), None, "unchanged"),
        (None, FsmState("idle"), None, "unchanged"),  # a bare state for an unknown entity
        (None, FsmState("idle", data={"count": 1}), None, "applied"),
        (None, FsmState("idle", 0), None, "applied"),
        # given: always obeyed
        (STORED, FsmState("counting", 1, 0, {"count": 3}), False, "unchanged"),
        (STORED, FsmState("counting", 0, 0, {"count": 2}), True, "applied"),
        (None, FsmState("idle"), True, "applied"),
    ],
)
def test_changed_is_derived_from_the_states_unless_given(
    before: FsmState | None, after: FsmState, changed: bool | None, kind: str
) -> None:
    intent = Intent(
        intent_type="ledger.add",
        target=make_target("ledger", "counts", "c-1"),
        payload={},
        intent_id=uuid.uuid5(NS, "intent"),
        correlation_id=NS,
    )

    def decide(state: FsmState | None, envelope: Envelope, now: datetime) -> EntityDecision:
        assert state == before
        return EntityDecision(after, (intent,), changed=changed)

    projection = None
    if before is not None:
        projection = COUNTS.to_projection(
            before, entity_id="c-1", envelope_id=uuid.uuid5(NS, "first"), now=T0, previous=None
        )
    handled = apply_to_projection(projection, add(1, 1), T0, decide, layout=COUNTS)
    assert handled.kind == kind
    assert handled.decision.changed is (kind == "applied")  # resolved to a bool
    assert handled.decision.intents == (intent,)  # run either way
    assert (handled.projection is not None) == (kind == "applied")
    if handled.projection is not None:
        assert COUNTS.state_of(handled.projection) == after


def test_a_replay_resolves_changed_against_the_previous_state() -> None:
    def decide(state: FsmState | None, envelope: Envelope, now: datetime) -> EntityDecision:
        before = state or FsmState("idle")
        return EntityDecision(FsmState("counting", before.sequence + 1, 0, {"count": 1}))

    first = apply_to_projection(None, add(1, 1), T0, decide, layout=COUNTS)
    assert first.kind == "applied"
    again = apply_to_projection(first.projection, add(1, 1), T0, decide, layout=COUNTS)
    assert again.kind == "replayed"
    assert again.decision == first.decision
    assert again.decision.changed is True


def test_what_decide_raises_comes_out_and_nothing_is_returned_to_write() -> None:
    bad = Envelope(uuid.uuid5(NS, "bad"), ADD, "test.add", {"add": "x"}, NS, "c-1", T0)
    with pytest.raises(ContentError, match="add must be an integer"):
        deliver(applied(add(1, 1)), bad, 3)


# --------------------------------------------------------------------------- the layout

BEFORE = FsmState("counting", 3, 1, {"count": 7, "due": T0})
AFTER = FsmState("done", 4, 1, {"count": 9, "due": T0 + timedelta(hours=1), "note": "x"})


@pytest.mark.parametrize(
    "layout",
    [Layout("counts"), Layout("counts", nest="counter"), Layout("counts", window=1)],
    ids=["top level", "nested", "window of one"],
)
def test_the_layout_round_trips_state_and_previous_state(layout: Layout) -> None:
    earlier = layout.to_projection(
        BEFORE, entity_id="c-9", envelope_id=NS, now=T0, previous=None, partition="p", offset=3
    )
    assert layout.state_of(earlier) == BEFORE
    assert layout.previous_state(earlier) is None
    message = uuid.uuid5(NS, "next")
    later = layout.to_projection(
        AFTER, entity_id="c-9", envelope_id=message, now=T0, previous=earlier
    )
    assert (later.state, later.sequence, later.event_id) == ("done", 1, message)
    assert layout.state_of(later) == AFTER
    assert layout.previous_state(later) == BEFORE
    assert later.data["applied"] == [str(NS), str(message)][-layout.window :]
    extended = later.data if layout.nest is None else later.data[layout.nest]
    assert extended["count"] == 9
    assert layout.state_of(None) is None


def test_datetimes_kept_as_text_by_a_store_are_read_back_only_where_declared() -> None:
    layout = Layout("counts", datetime_keys=frozenset({"due", "naive"}))
    text = T0.isoformat()
    stored = Projection(
        "c-1",
        "counts",
        "counting",
        {
            "due": text,
            "naive": "2026-05-01T12:00:00",
            "label": text,
            "fsm_sequence": 2,
            "attempt": 0,
            "previous": {"state": "idle", "sequence": 1, "attempt": 0, "data": {"due": text}},
        },
        0,
        NS,
    )
    assert layout.state_of(stored) == FsmState(
        "counting", 2, 0, {"due": T0, "naive": "2026-05-01T12:00:00", "label": text}
    )
    assert layout.previous_state(stored) == FsmState("idle", 1, 0, {"due": T0})


def test_extended_state_may_not_use_a_reserved_key_at_the_top_level() -> None:
    clashing = FsmState("x", 0, 0, {"applied": 1, "count": 1})
    with pytest.raises(UsageError, match=r"reserved keys \['applied'\]"):
        COUNTS.to_projection(clashing, entity_id="c", envelope_id=NS, now=T0, previous=None)
    nested = Layout("counts", nest="counter")
    written = nested.to_projection(clashing, entity_id="c", envelope_id=NS, now=T0, previous=None)
    assert nested.state_of(written) == clashing


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"domain": ""}, "needs a domain"),
        ({"domain": "d", "window": 0}, "window must be an integer of at least 1"),
        *(({"domain": "d", "nest": key}, "nest may not be") for key in sorted(RESERVED)),
        ({"domain": "d", "nest": ""}, "nest may not be"),
    ],
)
def test_a_bad_layout_is_refused(arguments: dict[str, Any], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        Layout(**arguments)


# --------------------------------------------------------------------------- the property


@st.composite
def noisy_runs(draw: st.DrawFn) -> tuple[list[int], list[list[int]], int]:
    """Additions (0 changes nothing), duplicate deliveries after each message (indices of
    messages already delivered), and the message after whose first delivery the process
    crashed: its projection was written, its intents and events were lost."""
    amounts = draw(st.lists(st.integers(0, 3), min_size=1, max_size=12))
    extra = [draw(st.lists(st.integers(0, i), max_size=3)) for i in range(len(amounts))]
    crash = draw(st.integers(0, len(amounts) - 1))
    return amounts, extra, crash


@settings(max_examples=200, deadline=None)
@given(noisy_runs())
def test_duplicates_and_a_crash_replay_end_where_the_clean_run_ends(
    run: tuple[list[int], list[list[int]], int],
) -> None:
    amounts, extra, crash = run
    log = [add(i, n) for i, n in enumerate(amounts)]

    def outputs(handled: Handled, into: dict[uuid.UUID, object]) -> None:
        for intent in handled.decision.intents:  # the same id always means the same thing
            assert into.setdefault(intent.intent_id, intent) == intent
        for event in handled.decision.events:
            assert into.setdefault(event.envelope_id, event) == event

    clean: Projection | None = None
    clean_out: dict[uuid.UUID, object] = {}
    for i, message in enumerate(log):
        handled = deliver(clean, message, i, offset=i)
        clean = handled.projection or clean
        outputs(handled, clean_out)

    noisy: Projection | None = None
    noisy_out: dict[uuid.UUID, object] = {}
    for i, message in enumerate(log):
        handled = deliver(noisy, message, i, offset=i)
        noisy = handled.projection or noisy
        if i == crash:  # the outputs are lost; the bus delivers the message again
            handled = deliver(noisy, message, i + 0.25, offset=i)
            assert handled.kind == ("replayed" if amounts[i] else "unchanged")
        outputs(handled, noisy_out)
        for j in extra[i]:
            again = deliver(noisy, log[j], i + 0.5, offset=j)
            assert again.kind in ("duplicate", "replayed", "unchanged")
            assert again.projection is None
            outputs(again, noisy_out)

    assert noisy == clean
    assert noisy_out == clean_out
