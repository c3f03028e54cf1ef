"""What handlers give the runtime: outcomes, the outputs in them, and the values around them —
their shortcut constructors build exactly what the general ones do, and stay frozen values."""

from __future__ import annotations

import copy
import dataclasses
import pickle
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from onex_adapters.runtime import EffectReport, HandlerContext, Outcome
from onex_adapters.runtime.effects import _done
from onex_core.errors import OutputLawError
from onex_core.intents import Intent
from onex_core.messages import Envelope
from onex_core.outputs import ABSENT, NodeKind, Output, Projection
from onex_core.ports import EffectResult, Record

ID = uuid.UUID(int=1, version=4)
INTENT = Intent("box.put", "box://things/1", {"n": 1}, ID, ID)
ENVELOPE = Envelope(
    ID, "onex.evt.test.thing-done.v1", "test.thing-done", {}, ID, "a", datetime.now(UTC)
)
PROJECTION = Projection("a", "things", "idle", {}, 1, ID)


class LoudIntent(Intent):
    __slots__ = ()


LOUD = LoudIntent("box.put", "box://things/2", {"n": 2}, ID, ID)


@pytest.mark.parametrize(
    ("state", "intents", "projections"),
    [
        ({"s": 1}, (INTENT,), ()),
        (None, (INTENT, INTENT), ()),
        ("s", (), ()),
        ("s", [INTENT], []),
        ("s", (i for i in [INTENT]), ()),
        ("s", (INTENT,), (PROJECTION,)),
        ("s", (LOUD, INTENT), ()),
    ],
)
def test_a_reducer_output_is_the_general_constructors(
    state: object, intents: Any, projections: Any
) -> None:
    intents = tuple(intents) if not isinstance(intents, tuple | list) else intents
    built = Output.reducer(state, intents, projections)
    general = Output(
        NodeKind.REDUCER, intents=tuple(intents), projections=tuple(projections), state=state
    )
    assert built == general
    assert type(built.intents) is tuple
    assert type(built.projections) is tuple
    assert built.kind is NodeKind.REDUCER
    assert built.events == ()
    assert built.result is ABSENT


@pytest.mark.parametrize(
    ("events", "intents"),
    [((ENVELOPE,), (INTENT,)), ((), ()), ([ENVELOPE], [INTENT, LOUD]), ((), (LOUD,))],
)
def test_an_orchestrator_output_is_the_general_constructors(events: Any, intents: Any) -> None:
    built = Output.orchestrator(events, intents)
    assert built == Output(NodeKind.ORCHESTRATOR, events=tuple(events), intents=tuple(intents))
    assert type(built.events) is tuple
    assert type(built.intents) is tuple


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: Output.reducer(ABSENT, (INTENT,)), "must carry state"),
        (lambda: Output.reducer("s", (ENVELOPE,)), "intents\\[0\\] must be of type Intent"),
        (lambda: Output.reducer("s", (INTENT,), (INTENT,)), "projections\\[0\\]"),
        (lambda: Output.orchestrator((INTENT,)), "events\\[0\\] must be of type Envelope"),
        (lambda: Output.orchestrator((), "box.put"), "must be a sequence of Intent"),
    ],
)
def test_the_shortcuts_refuse_what_the_law_refuses(build: Any, message: str) -> None:
    with pytest.raises(OutputLawError, match=message):
        build()


def test_outcome_fields_flatten_in_order_for_any_number_of_outputs() -> None:
    first = Output.orchestrator((ENVELOPE,), (INTENT,))
    second = Output.reducer("s", (LOUD,), (PROJECTION,))
    assert Outcome.of().intents == ()
    assert Outcome.of(first).intents == (INTENT,)
    assert Outcome.of(first).events == (ENVELOPE,)
    both = Outcome.of(first, second, note="two")
    assert both == Outcome((first, second), "two")
    assert both.intents == (INTENT, LOUD)
    assert both.events == (ENVELOPE,)
    assert both.projections == (PROJECTION,)
    assert Outcome.nothing("dup") == Outcome((), "dup")


RECORD = Record("onex.evt.test.thing-done.v1", 0, 5, b"a", b"{}")


@pytest.mark.parametrize(
    "value",
    [
        Outcome.of(Output.reducer("s", (INTENT,)), note="n"),
        HandlerContext(datetime(2026, 11, 21, tzinfo=UTC), None, RECORD),  # type: ignore[arg-type]
        EffectReport(INTENT, "done", (), EffectResult(ID, {"rows": 1})),
        _done(INTENT, EffectResult(ID, {"rows": 1})),
        Output.reducer("s", (INTENT,)),
    ],
    ids=lambda value: type(value).__name__,
)
def test_values_stay_frozen_comparable_and_picklable(value: Any) -> None:
    assert pickle.loads(pickle.dumps(value)) == value
    assert copy.deepcopy(value) == value
    assert dataclasses.replace(value) == value
    field = dataclasses.fields(value)[0].name
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(value, field, None)


def test_a_done_report_is_the_one_the_constructor_builds() -> None:
    result = EffectResult(ID, {"rows": 1})
    assert _done(INTENT, result) == EffectReport(INTENT, "done", (), result)
    assert _done(INTENT, result).ok
