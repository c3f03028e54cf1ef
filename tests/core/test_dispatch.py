from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from onex_core.dispatch import (
    EMPTY,
    MEMO_LIMIT,
    Plan,
    Route,
    RouteTable,
    Unroutable,
    UnroutableReason,
    is_valid_event_type,
    merge,
    route,
    route_topic,
)
from onex_core.errors import ContractError, RouteConflict, TopicError
from onex_core.messages import Envelope
from onex_core.topics import Category, category_of

EVT = "onex.evt.platform.node-heartbeat.v1"
CMD = "onex.cmd.platform.node-heartbeat.v1"
INTENT = "onex.intent.platform.node-heartbeat.v1"
HEARTBEAT = "platform.node-heartbeat"


def envelope(topic: str, event_type: str) -> Envelope:
    return Envelope(
        envelope_id=UUID(int=1),
        topic=topic,
        event_type=event_type,
        payload={},
        correlation_id=UUID(int=2),
        entity_id="node-1",
        emitted_at=datetime(2025, 1, 1, tzinfo=UTC),
    )


def handlers(verdict: Plan | Unroutable) -> tuple[str, ...]:
    assert isinstance(verdict, Plan), verdict
    return verdict.handler_ids


def unroutable(verdict: Plan | Unroutable) -> Unroutable:
    assert isinstance(verdict, Unroutable), verdict
    return verdict


# --------------------------------------------------------------------------- plans


def test_plan_lists_handlers_in_route_order_each_once() -> None:
    routes = (
        Route.to("b", "onex.evt.**"),
        Route.to("a", "onex.*.platform.*.v1"),
        Route.to("b", "onex.evt.platform.node-heartbeat.v1"),
        Route.to("c", "**"),
        Route.to("d", "onex.cmd.**"),
    )
    assert handlers(route_topic(RouteTable(routes), EVT, HEARTBEAT)) == ("b", "a", "c")
    reversed_table = RouteTable(tuple(reversed(routes)))
    assert handlers(route_topic(reversed_table, EVT, HEARTBEAT)) == ("c", "b", "a")


def test_route_reads_topic_and_event_type_of_the_envelope() -> None:
    table = RouteTable((Route.to("h", "onex.evt.platform.*.v1", message_types={HEARTBEAT}),))
    assert route(table, envelope(EVT, HEARTBEAT)) == Plan(("h",))
    assert route(table, envelope(EVT, "platform.other")) == route_topic(
        table, EVT, "platform.other"
    )
    assert route(table, envelope(CMD, HEARTBEAT)) == route_topic(table, CMD, HEARTBEAT)


# --------------------------------------------------------------------------- categories


def test_pattern_kind_fixes_the_route_category() -> None:
    assert Route.to("h", "onex.evt.**").category is Category.EVENT
    assert Route.to("h", "*.cmd.*.x.*").category is Category.COMMAND
    assert Route.to("h", "onex.*.platform.**").category is None
    # None and the category the pattern fixes are the same route.
    assert Route("r", "onex.evt.**", "h") == Route("r", "onex.evt.**", "h", Category.EVENT)


def test_explicit_category_filters_a_wildcard_kind_pattern() -> None:
    table = RouteTable((Route.to("cmds", "onex.*.platform.**", category=Category.COMMAND),))
    assert handlers(route_topic(table, CMD, HEARTBEAT)) == ("cmds",)
    assert unroutable(route_topic(table, EVT, HEARTBEAT)).reason is UnroutableReason.NO_DISPATCHER
    assert unroutable(route_topic(table, INTENT, HEARTBEAT)).reason is (
        UnroutableReason.NO_DISPATCHER
    )


def test_route_without_category_takes_every_routable_category() -> None:
    table = RouteTable((Route.to("any", "onex.**"),))
    for topic in (EVT, CMD, INTENT):
        assert handlers(route_topic(table, topic, HEARTBEAT)) == ("any",)
    verdict = unroutable(route_topic(table, "onex.snapshot.platform.node-heartbeat.v1", HEARTBEAT))
    assert verdict.reason is UnroutableReason.INVALID_MESSAGE


def test_category_contradicting_the_pattern_is_a_contract_error() -> None:
    with pytest.raises(ContractError, match=r"'command' contradicts pattern 'onex\.evt\.\*\*'"):
        Route.to("h", "onex.evt.**", category=Category.COMMAND)


# --------------------------------------------------------------------------- message types


def test_message_types_select_routes_on_a_topic() -> None:
    table = RouteTable(
        (
            Route.to("beats", "onex.evt.platform.*.v1", message_types={HEARTBEAT}),
            Route.to("other", "onex.evt.platform.*.v1", message_types={"platform.other"}),
            Route.to("all", "onex.evt.platform.*.v1"),
        )
    )
    assert handlers(route_topic(table, EVT, HEARTBEAT)) == ("beats", "all")
    assert handlers(route_topic(table, EVT, "platform.other")) == ("other", "all")
    assert handlers(route_topic(table, EVT, "platform.third")) == ("all",)


def test_type_rejected_by_every_matching_route_is_publisher_malformed() -> None:
    table = RouteTable(
        (
            Route.to("beats", "onex.evt.platform.*.v1", message_types={HEARTBEAT}),
            Route.to("cmds", "onex.cmd.**"),
        )
    )
    verdict = unroutable(route_topic(table, EVT, "platform.surprise"))
    assert verdict.reason is UnroutableReason.PUBLISHER_MALFORMED
    assert "'platform.surprise'" in verdict.detail
    assert HEARTBEAT in verdict.detail
    # A route of another category does not count as a candidate that rejected the type.
    other = RouteTable((Route.to("cmds", "onex.cmd.**", message_types={HEARTBEAT}),))
    verdict = unroutable(route_topic(other, EVT, "platform.surprise"))
    assert verdict.reason is UnroutableReason.NO_DISPATCHER


# --------------------------------------------------------------------------- unroutable verdicts

UNROUTABLE_CASES = [
    # topic, event type, reason, default dead-letter topic
    ("onex.evt.Platform.x.v1", "platform.x", "invalid_message", "onex.dlq.onex.unroutable.v1"),
    ("", "platform.x", "invalid_message", "onex.dlq.onex.unroutable.v1"),
    ("onex.snapshot.platform.x.v1", "platform.x", "invalid_message", "onex.dlq.onex.unroutable.v1"),
    ("onex.dlq.platform.events.v1", "platform.x", "invalid_message", "onex.dlq.onex.unroutable.v1"),
    ("onex.evt.platform.x.v1", "", "publisher_malformed", "onex.dlq.platform.events.v1"),
    ("onex.evt.platform.x.v1", "Platform.X", "publisher_malformed", "onex.dlq.platform.events.v1"),
    ("onex.evt.platform.x.v1", "platform", "publisher_malformed", "onex.dlq.platform.events.v1"),
    ("onex.evt.platform.x.v1", "a.b.c", "publisher_malformed", "onex.dlq.platform.events.v1"),
    ("onex.cmd.billing.x.v1", "billing.x", "no_dispatcher", "onex.dlq.billing.commands.v1"),
    ("onex.intent.infra.x.v2", "infra.x", "no_dispatcher", "onex.dlq.infra.intents.v1"),
    ("onex.evt.billing.x.v1", "billing.x", "no_dispatcher", "onex.dlq.billing.events.v1"),
]
ONLY_PLATFORM = RouteTable((Route.to("platform", "onex.evt.platform.**"),))


@pytest.mark.parametrize(("topic", "event_type", "reason", "dlq"), UNROUTABLE_CASES)
def test_unroutable_reason_and_default_dead_letter_topic(
    topic: str, event_type: str, reason: str, dlq: str
) -> None:
    verdict = unroutable(route_topic(ONLY_PLATFORM, topic, event_type))
    assert verdict.reason == reason
    assert verdict.dlq_topic == dlq
    assert "\n" not in verdict.detail
    assert repr(topic) in verdict.detail or repr(event_type) in verdict.detail


@pytest.mark.parametrize(("topic", "event_type", "reason", "dlq"), UNROUTABLE_CASES)
def test_table_dead_letter_topic_overrides_the_default(
    topic: str, event_type: str, reason: str, dlq: str
) -> None:
    table = RouteTable(ONLY_PLATFORM.routes, dlq_topic="onex.dlq.ops.unroutable.v1")
    verdict = unroutable(route_topic(table, topic, event_type))
    assert verdict.reason == reason
    assert verdict.dlq_topic == "onex.dlq.ops.unroutable.v1"


def test_detail_escapes_and_cuts_hostile_text() -> None:
    topic = "onex.evt.a\n.b.v1" + "x" * 5000
    verdict = unroutable(route_topic(ONLY_PLATFORM, topic, "a.b"))
    assert "\n" not in verdict.detail
    assert len(verdict.detail) < 400
    verdict = unroutable(route_topic(ONLY_PLATFORM, EVT, "evil\r\n" * 1000))
    assert verdict.reason is UnroutableReason.PUBLISHER_MALFORMED
    assert "\n" not in verdict.detail
    assert "\r" not in verdict.detail
    assert len(verdict.detail) < 400


def test_non_string_input_is_invalid_not_an_exception() -> None:
    verdict = unroutable(route_topic(ONLY_PLATFORM, 42, "a.b"))  # type: ignore[arg-type]
    assert verdict.reason is UnroutableReason.INVALID_MESSAGE
    verdict = unroutable(route_topic(ONLY_PLATFORM, EVT, None))  # type: ignore[arg-type]
    assert verdict.reason is UnroutableReason.PUBLISHER_MALFORMED


def test_empty_table_routes_nothing() -> None:
    assert unroutable(route_topic(EMPTY, EVT, HEARTBEAT)).reason is UnroutableReason.NO_DISPATCHER


# --------------------------------------------------------------------------- the memo


def test_memo_returns_equal_verdicts_and_is_not_part_of_the_value() -> None:
    table = RouteTable(ONLY_PLATFORM.routes)
    first = [route_topic(table, t, e) for t, e, _, _ in UNROUTABLE_CASES]
    assert table.memo_size == len(UNROUTABLE_CASES)
    again = [route_topic(table, t, e) for t, e, _, _ in UNROUTABLE_CASES]
    fresh = RouteTable(ONLY_PLATFORM.routes)
    cold = [route_topic(fresh, t, e) for t, e, _, _ in reversed(UNROUTABLE_CASES)]
    assert first == again == list(reversed(cold))
    assert table == fresh == ONLY_PLATFORM
    assert hash(table) == hash(RouteTable(ONLY_PLATFORM.routes))
    assert "memo" not in repr(table)


def test_memo_stays_bounded_and_correct_across_restarts() -> None:
    table = RouteTable((Route.to("even", "onex.evt.**"), Route.to("odd", "onex.cmd.**")))
    seen_max = 0
    for i in range(3 * MEMO_LIMIT):
        kind = "evt" if i % 2 == 0 else "cmd"
        verdict = route_topic(table, f"onex.{kind}.p.name-{i}.v1", f"p.name-{i}")
        assert verdict == Plan(("even",) if i % 2 == 0 else ("odd",))
        seen_max = max(seen_max, table.memo_size)
    assert seen_max == MEMO_LIMIT
    assert 0 < table.memo_size <= MEMO_LIMIT
    # Topics memoised before the memo restarted still route the same.
    assert route_topic(table, "onex.evt.p.name-0.v1", "p.name-0") == Plan(("even",))


def test_oversized_input_is_routed_but_not_memoised() -> None:
    table = RouteTable(ONLY_PLATFORM.routes)
    topic = "onex.evt.platform." + "a" * 10_000 + ".v1"
    verdict = unroutable(route_topic(table, topic, HEARTBEAT))
    assert verdict.reason is UnroutableReason.INVALID_MESSAGE
    assert handlers(route_topic(table, EVT, "platform." + "b" * 10_000)) == ("platform",)
    assert table.memo_size == 0


# --------------------------------------------------------------------------- routes and tables


def test_default_route_ids() -> None:
    assert Route.to("h", "onex.evt.**").route_id == "h@onex.evt.**"
    assert Route.to("h", "onex.*.a.**", category=Category.EVENT).route_id == "h@onex.*.a.**/event"
    assert Route.to("h", "onex.evt.**", category=Category.EVENT).route_id == "h@onex.evt.**"
    assert (
        Route.to("h", "onex.evt.**", message_types=["b.c", "a.b"]).route_id
        == "h@onex.evt.**[a.b,b.c]"
    )
    assert Route.to("h", "onex.evt.**", route_id="mine").route_id == "mine"


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda: Route("", "onex.**", "h"), ContractError, "route_id"),
        (lambda: Route("r", "onex.**", ""), ContractError, "handler_id"),
        (lambda: Route("r", "onex.**", "  "), ContractError, "handler_id"),
        (lambda: Route("r", "onex.Evt.**", "h"), TopicError, "segment 2 'Evt'"),
        (lambda: Route("r", "", "h"), TopicError, "empty"),
        (lambda: Route.to("h", "onex.**", message_types={"Bad"}), ContractError, "'Bad'"),
        (lambda: Route.to("h", "onex.**", message_types="a.b"), ContractError, "one string"),
        (lambda: Route("r", "onex.**", "h", "event"), ContractError, "category"),  # type: ignore[arg-type]
    ],
)
def test_bad_routes_are_rejected(make: object, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        make()  # type: ignore[operator]


def test_table_collapses_identical_duplicates_and_rejects_differing_ones() -> None:
    one = Route.to("h", "onex.evt.**", route_id="r")
    other = Route.to("g", "onex.evt.**", route_id="r")
    table = RouteTable((one, Route.to("x", "onex.cmd.**"), one))
    assert table.routes == (one, Route.to("x", "onex.cmd.**"))
    with pytest.raises(RouteConflict, match=r"'r'.*-> h.*-> g"):
        RouteTable((one, other))


@pytest.mark.parametrize(
    ("dlq", "match"),
    [("onex.evt.ops.unroutable.v1", "kind 'dlq'"), ("onex.dlq.ops.x", "4 segments")],
)
def test_table_dead_letter_topic_must_be_a_dlq_topic(dlq: str, match: str) -> None:
    with pytest.raises(TopicError, match=match):
        RouteTable((), dlq_topic=dlq)


def test_handler_ids_lists_each_handler_once_in_route_order() -> None:
    table = RouteTable(
        (Route.to("b", "onex.evt.**"), Route.to("a", "onex.cmd.**"), Route.to("b", "onex.**"))
    )
    assert table.handler_ids == ("b", "a")
    assert EMPTY.handler_ids == ()


def test_is_valid_event_type() -> None:
    assert is_valid_event_type("platform.node-heartbeat")
    assert is_valid_event_type("a1.b-2")
    for bad in ("", "platform", "Platform.x", "a.b.c", "a.-b", "a..b", "a.b\n", "1a.b"):
        assert not is_valid_event_type(bad), bad


# --------------------------------------------------------------------------- merge


def test_merge_keeps_left_routes_then_new_right_routes() -> None:
    a, b, c = Route.to("a", "onex.evt.**"), Route.to("b", "onex.cmd.**"), Route.to("c", "**")
    merged = merge(RouteTable((a, b)), RouteTable((c, b, a)))
    assert merged.routes == (a, b, c)
    assert merge() == EMPTY
    assert merge(RouteTable((a,))) == RouteTable((a,))


def test_merge_route_id_conflict_names_the_id_and_both_definitions() -> None:
    left = RouteTable((Route.to("h", "onex.evt.**", route_id="shared"),))
    right = RouteTable((Route.to("h", "onex.cmd.**", route_id="shared"),))
    with pytest.raises(RouteConflict) as caught:
        merge(left, right)
    message = str(caught.value)
    assert "'shared'" in message
    assert "onex.evt.**" in message
    assert "onex.cmd.**" in message


def test_merge_dead_letter_topics() -> None:
    ops = RouteTable((), dlq_topic="onex.dlq.ops.unroutable.v1")
    same = RouteTable((Route.to("h", "**"),), dlq_topic="onex.dlq.ops.unroutable.v1")
    other = RouteTable((), dlq_topic="onex.dlq.other.unroutable.v1")
    assert merge(ops, same).dlq_topic == "onex.dlq.ops.unroutable.v1"
    assert merge(RouteTable((Route.to("h", "**"),)), ops).dlq_topic == ops.dlq_topic
    with pytest.raises(
        RouteConflict,
        match=r"'onex\.dlq\.ops\.unroutable\.v1' and 'onex\.dlq\.other\.unroutable\.v1'",
    ):
        merge(ops, other)


# --------------------------------------------------------------------------- properties

ROUTE_IDS = ("r0", "r1", "r2")
PATTERNS = ("onex.evt.**", "onex.*.platform.*.v1", "**", "onex.cmd.platform.node-heartbeat.v1")
TYPES = (HEARTBEAT, "platform.other")
DLQS = (None, None, "onex.dlq.a.events.v1", "onex.dlq.b.events.v1")

routes_st = st.builds(
    Route.to,
    st.sampled_from(("h0", "h1", "h2")),
    st.sampled_from(PATTERNS),
    message_types=st.frozensets(st.sampled_from(TYPES)),
    route_id=st.sampled_from(ROUTE_IDS),
)


@st.composite
def tables(draw: st.DrawFn) -> RouteTable:
    by_id = {r.route_id: r for r in draw(st.lists(routes_st, max_size=4))}
    return RouteTable(tuple(by_id.values()), draw(st.sampled_from(DLQS)))


def outcome(*tables_: RouteTable, grouping: str) -> RouteTable | str:
    a, b, c = tables_
    try:
        return merge(merge(a, b), c) if grouping == "left" else merge(a, merge(b, c))
    except RouteConflict:
        return "conflict"


@settings(max_examples=300)
@given(tables(), tables(), tables())
def test_merge_is_associative(a: RouteTable, b: RouteTable, c: RouteTable) -> None:
    left = outcome(a, b, c, grouping="left")
    event("conflict" if left == "conflict" else "merged")
    assert left == outcome(a, b, c, grouping="right")


@settings(max_examples=200)
@given(tables())
def test_empty_is_the_identity_of_merge(table: RouteTable) -> None:
    assert merge(EMPTY, table) == table == merge(table, EMPTY)
    assert merge(table, table) == table


TOPICS = (EVT, CMD, INTENT, "onex.evt.platform.other.v1", "onex.snapshot.a.b.v1", "bad")
EVENT_TYPES = (HEARTBEAT, "platform.other", "Bad")


@settings(max_examples=200)
@given(tables(), st.lists(st.tuples(st.sampled_from(TOPICS), st.sampled_from(EVENT_TYPES))))
def test_route_is_deterministic(table: RouteTable, calls: list[tuple[str, str]]) -> None:
    verdicts = [route_topic(table, t, e) for t, e in calls]
    fresh = RouteTable(table.routes, table.dlq_topic)
    assert [route_topic(fresh, t, e) for t, e in reversed(calls)] == list(reversed(verdicts))
    assert [route_topic(table, t, e) for t, e in calls] == verdicts
    for (topic, event_type), verdict in zip(calls, verdicts, strict=True):
        if isinstance(verdict, Plan):
            assert verdict.handler_ids == spec_handlers(table, topic, event_type)


def spec_handlers(table: RouteTable, topic: str, event_type: str) -> tuple[str, ...]:
    """The plan as the specification words it, for a routable topic and well-formed type."""
    category = category_of(topic)
    matching = [
        r.handler_id
        for r in table.routes
        if r.topic_pattern.matches(topic)
        and r.category in (None, category)
        and (not r.message_types or event_type in r.message_types)
    ]
    return tuple(dict.fromkeys(matching))
