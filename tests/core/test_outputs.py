"""The node-kind output law, the absent sentinel, check_now, and projection staleness."""

from __future__ import annotations

import copy
import dataclasses
import pickle
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from onex_core.errors import OutputLawError, UsageError
from onex_core.intents import Intent, intent_id_for
from onex_core.messages import Envelope
from onex_core.outputs import (
    ABSENT,
    FIELDS,
    OUTPUT_LAW,
    NodeKind,
    Output,
    Projection,
    Rule,
    check_now,
    is_stale,
)

ROOT = UUID("00000000-0000-4000-8000-000000000001")
NOW = datetime(2025, 1, 1, tzinfo=UTC)

ENVELOPE = Envelope(
    envelope_id=ROOT,
    topic="onex.evt.platform.node-introspection.v1",
    event_type="platform.node-introspection",
    payload={"node": "a"},
    correlation_id=ROOT,
    entity_id="node-a",
    emitted_at=NOW,
)
INTENT = Intent(
    intent_type="consul.register",
    target="consul://service/node-a",
    payload={},
    intent_id=intent_id_for(ROOT, "consul.register", 0),
    correlation_id=ROOT,
)


def projection(
    sequence: int = 1,
    offset: int | None = 0,
    partition: str | None = "0",
    *,
    entity_id: str = "node-a",
    domain: str = "registration",
    tag: str = "",
) -> Projection:
    return Projection(
        entity_id=entity_id,
        domain=domain,
        state="active",
        data={"tag": tag},
        sequence=sequence,
        event_id=ROOT,
        partition=partition,
        offset=offset,
    )


# A present value for every governed field.
PRESENT: dict[str, Any] = {
    "events": (ENVELOPE,),
    "intents": (INTENT,),
    "projections": (projection(),),
    "state": {"phase": "active"},
    "result": 42,
}

F, A, R = Rule.FORBIDDEN, Rule.ALLOWED, Rule.REQUIRED

# The law, as the design states it: (events, intents, projections, state, result), receives now.
EXPECTED_LAW = {
    NodeKind.ORCHESTRATOR: ((A, A, F, F, F), True),
    NodeKind.REDUCER: ((F, A, A, R, F), False),
    NodeKind.COMPUTE: ((F, F, F, F, R), False),
    NodeKind.EFFECT: ((A, F, F, F, A), True),
}

CELLS = [
    (kind, field, rules[index])
    for kind, (rules, _now) in EXPECTED_LAW.items()
    for index, field in enumerate(FIELDS)
]


def required_fields(kind: NodeKind) -> dict[str, Any]:
    return {f: PRESENT[f] for f in FIELDS if OUTPUT_LAW[kind].rule(f) is Rule.REQUIRED}


# --------------------------------------------------------------------------- the table


def test_the_law_table_is_exactly_the_designed_one() -> None:
    assert set(OUTPUT_LAW) == set(NodeKind)
    for kind, (rules, receives_now) in EXPECTED_LAW.items():
        law = OUTPUT_LAW[kind]
        assert tuple(law.rule(f) for f in FIELDS) == rules
        assert law.receives_now is receives_now


@pytest.mark.parametrize(("kind", "field", "rule"), CELLS, ids=lambda v: str(v))
def test_each_cell_of_the_law_is_enforced_when_present(
    kind: NodeKind, field: str, rule: Rule
) -> None:
    values = {**required_fields(kind), field: PRESENT[field]}
    if rule is Rule.FORBIDDEN:
        with pytest.raises(OutputLawError) as info:
            Output(kind, **values)
        message = str(info.value)
        assert kind.value in message
        assert field in message
        assert OUTPUT_LAW[kind].describe() in message
    else:
        output = Output(kind, **values)
        assert getattr(output, field) == PRESENT[field]


@pytest.mark.parametrize(("kind", "field", "rule"), CELLS, ids=lambda v: str(v))
def test_each_cell_of_the_law_is_enforced_when_absent(
    kind: NodeKind, field: str, rule: Rule
) -> None:
    values = required_fields(kind)
    values.pop(field, None)
    if rule is Rule.REQUIRED:
        with pytest.raises(OutputLawError, match=rf"{kind.value} output must carry {field}"):
            Output(kind, **values)
    else:
        Output(kind, **values)


def test_the_law_cannot_be_changed_at_run_time() -> None:
    with pytest.raises(TypeError):
        OUTPUT_LAW[NodeKind.REDUCER] = OUTPUT_LAW[NodeKind.ORCHESTRATOR]  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        OUTPUT_LAW[NodeKind.REDUCER].events = Rule.ALLOWED  # type: ignore[misc]


def test_law_rule_refuses_unknown_fields() -> None:
    with pytest.raises(UsageError, match="not an output field"):
        OUTPUT_LAW[NodeKind.COMPUTE].rule("metrics")


def test_law_describes_itself() -> None:
    text = OUTPUT_LAW[NodeKind.REDUCER].describe()
    assert text == "state required; intents, projections allowed; events, result forbidden; " + (
        "never given now"
    )
    assert OUTPUT_LAW[NodeKind.EFFECT].describe().endswith("; given now")


# --------------------------------------------------------------------------- constructors


def test_constructors_build_outputs_of_their_kind() -> None:
    orchestrator = Output.orchestrator(events=[ENVELOPE], intents=[INTENT])
    assert (orchestrator.kind, orchestrator.events, orchestrator.intents) == (
        NodeKind.ORCHESTRATOR,
        (ENVELOPE,),
        (INTENT,),
    )
    reducer = Output.reducer({"s": 1}, intents=[INTENT], projections=[projection()])
    assert reducer.kind is NodeKind.REDUCER
    assert reducer.state == {"s": 1}
    assert reducer.result is ABSENT
    assert Output.compute(7).result == 7
    effect = Output.effect(events=[ENVELOPE])
    assert effect.kind is NodeKind.EFFECT
    assert effect.result is ABSENT
    assert Output.effect(result={"rows": 1}).result == {"rows": 1}


def test_none_is_a_value_and_absent_is_not() -> None:
    assert Output.compute(None).result is None
    assert Output.reducer(None).state is None
    assert Output.effect(result=None).result is None
    with pytest.raises(OutputLawError, match="compute output must carry result"):
        Output(NodeKind.COMPUTE)
    with pytest.raises(OutputLawError, match="compute output must carry result"):
        Output.compute(ABSENT)
    with pytest.raises(OutputLawError, match="orchestrator output may not carry state"):
        Output(NodeKind.ORCHESTRATOR, state=None)


def test_absent_is_one_object_through_copy_and_pickle() -> None:
    assert copy.deepcopy(ABSENT) is ABSENT
    assert pickle.loads(pickle.dumps(ABSENT)) is ABSENT
    assert repr(ABSENT) == "ABSENT"
    output = Output.orchestrator(intents=[INTENT])
    assert copy.deepcopy(output).result is ABSENT
    assert pickle.loads(pickle.dumps(output)).state is ABSENT


def test_sequences_are_copied_into_tuples() -> None:
    events = [ENVELOPE]
    output = Output(NodeKind.EFFECT, events=events)  # type: ignore[arg-type]
    events.append(ENVELOPE)
    assert output.events == (ENVELOPE,)
    generated = Output.orchestrator(intents=(i for i in [INTENT, INTENT]))
    assert generated.intents == (INTENT, INTENT)
    same = (ENVELOPE,)
    assert Output.effect(events=same).events is same


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("onex.evt.x", "must be a sequence of Envelope, not str"),
        (b"bytes", "must be a sequence of Envelope, not bytes"),
        ({"a": ENVELOPE}, "must be a sequence of Envelope, not dict"),
        (ENVELOPE, "must be a sequence of Envelope, not Envelope"),
        ((ENVELOPE, INTENT), r"events\[1\] must be of type Envelope, not Intent"),
        ([None], r"events\[0\] must be of type Envelope, not NoneType"),
    ],
)
def test_sequences_of_the_wrong_shape_are_refused(value: object, expected: str) -> None:
    with pytest.raises(OutputLawError, match=expected):
        Output(NodeKind.EFFECT, events=value)  # type: ignore[arg-type]


def test_element_types_are_checked_for_every_sequence_field() -> None:
    with pytest.raises(OutputLawError, match=r"intents\[0\] must be of type Intent"):
        Output.reducer(1, intents=[ENVELOPE])  # type: ignore[list-item]
    with pytest.raises(OutputLawError, match=r"projections\[0\] must be of type Projection"):
        Output.reducer(1, projections=[{"entity_id": "x"}])  # type: ignore[list-item]


def test_kind_may_be_given_by_name_and_must_exist() -> None:
    assert Output("compute", result=1).kind is NodeKind.COMPUTE  # type: ignore[arg-type]
    with pytest.raises(OutputLawError, match="unknown node kind 'projector'"):
        Output("projector", result=1)  # type: ignore[arg-type]
    with pytest.raises(OutputLawError, match="unknown node kind"):
        Output(3, result=1)  # type: ignore[arg-type]


def test_outputs_are_frozen() -> None:
    output = Output.compute(1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        output.result = 2  # type: ignore[misc]


# --------------------------------------------------------------------------- check_now


@pytest.mark.parametrize(
    ("kind", "now", "ok"),
    [
        (NodeKind.ORCHESTRATOR, NOW, True),
        (NodeKind.ORCHESTRATOR, None, False),
        (NodeKind.EFFECT, NOW, True),
        (NodeKind.EFFECT, None, False),
        (NodeKind.REDUCER, None, True),
        (NodeKind.REDUCER, NOW, False),
        (NodeKind.COMPUTE, None, True),
        (NodeKind.COMPUTE, NOW, False),
        ("reducer", NOW, False),
        ("effect", NOW, True),
    ],
)
def test_check_now(kind: NodeKind | str, now: datetime | None, ok: bool) -> None:
    if ok:
        check_now(kind, now)
    else:
        with pytest.raises(OutputLawError, match=f"a {NodeKind(kind).value} node must"):
            check_now(kind, now)


def test_check_now_refuses_unknown_kinds() -> None:
    with pytest.raises(OutputLawError, match="unknown node kind"):
        check_now("projector", None)


# --------------------------------------------------------------------------- projections


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"entity_id": ""}, "must not be empty"),
        ({"domain": ""}, "must not be empty"),
        ({"state": ""}, "must not be empty"),
        ({"sequence": -1}, "sequence must not be negative"),
        ({"offset": -1}, "offset must not be negative"),
        ({"updated_at": datetime(2025, 1, 1)}, "updated_at must be timezone-aware"),
    ],
)
def test_projections_validate_their_fields(changes: dict[str, Any], expected: str) -> None:
    with pytest.raises(UsageError, match=expected):
        dataclasses.replace(projection(), **changes)


@pytest.mark.parametrize(
    ("incoming", "current", "stale"),
    [
        # (sequence, offset, partition)
        ((1, 5, "0"), None, False),
        ((2, 0, "0"), (1, 9, "0"), False),  # higher sequence wins whatever the offset
        ((1, 9, "0"), (2, 0, "0"), True),  # lower sequence is stale whatever the offset
        ((1, 6, "0"), (1, 5, "0"), False),  # equal sequence, same partition, later offset
        ((1, 4, "0"), (1, 5, "0"), True),  # equal sequence, same partition, earlier offset
        ((1, 5, "0"), (1, 5, "0"), True),  # exact replay
        ((1, 4, "1"), (1, 5, "0"), False),  # equal sequence, other partition: incomparable
        ((1, 5, None), (1, 5, None), True),  # no partition on either side counts as the same
        ((1, None, "0"), (1, 5, "0"), True),  # unknown offset: nothing shows it is newer
        ((1, 6, "0"), (1, None, "0"), True),
        ((3, None, None), (2, None, None), False),
        ((2, None, None), (3, None, None), True),
    ],
)
def test_staleness_rule(
    incoming: tuple[int, int | None, str | None],
    current: tuple[int, int | None, str | None] | None,
    stale: bool,
) -> None:
    new = projection(*incoming)
    old = None if current is None else projection(*current)
    assert is_stale(new, old) is stale


def test_staleness_refuses_to_compare_different_entities() -> None:
    with pytest.raises(UsageError, match="cannot compare projections"):
        is_stale(projection(entity_id="node-a"), projection(entity_id="node-b"))
    with pytest.raises(UsageError, match="cannot compare projections"):
        is_stale(projection(domain="a"), projection(domain="b"))


def put_if_not_stale(store: dict[tuple[str, str], Projection], item: Projection) -> bool:
    key = (item.entity_id, item.domain)
    if is_stale(item, store.get(key)):
        return False
    store[key] = item
    return True


@settings(max_examples=200, deadline=None)
@given(
    positions=st.lists(
        st.tuples(st.integers(0, 20), st.integers(0, 50)), min_size=1, max_size=30, unique=True
    ),
    data=st.data(),
)
def test_applying_any_order_keeps_the_newest_projection(
    positions: list[tuple[int, int]], data: st.DataObject
) -> None:
    items = [projection(seq, off, "0", tag=f"{seq}/{off}") for seq, off in positions]
    shuffled = data.draw(st.permutations(items))
    store: dict[tuple[str, str], Projection] = {}
    for item in shuffled:
        put_if_not_stale(store, item)
    newest = max(positions)
    assert store[("node-a", "registration")].data["tag"] == f"{newest[0]}/{newest[1]}"
    # Replaying everything again changes nothing and writes nothing.
    assert not any(put_if_not_stale(store, item) for item in shuffled)
    assert store[("node-a", "registration")].data["tag"] == f"{newest[0]}/{newest[1]}"
