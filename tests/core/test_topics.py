from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from onex_core.errors import TopicError
from onex_core.topics import (
    MAX_TOPIC_LENGTH,
    Category,
    Kind,
    Topic,
    category_of,
    dlq_topic_for,
    format_topic,
    is_valid_topic,
    parse_pattern,
    parse_topic,
)

# --------------------------------------------------------------------------- topics

LONGEST = "onex.evt.p." + "e" * (MAX_TOPIC_LENGTH - len("onex.evt.p..v1")) + ".v1"

VALID = [
    (
        "onex.evt.platform.node-introspection.v1",
        Topic(Kind.EVT, "platform", "node-introspection", 1),
    ),
    ("onex.cmd.a.b.v10", Topic(Kind.CMD, "a", "b", 10)),
    ("onex.intent.a1.b-2-c.v1", Topic(Kind.INTENT, "a1", "b-2-c", 1)),
    ("onex.snapshot.x.y.v3", Topic(Kind.SNAPSHOT, "x", "y", 3)),
    ("onex.dlq.x.events.v1", Topic(Kind.DLQ, "x", "events", 1)),
    (LONGEST, Topic(Kind.EVT, "p", LONGEST.split(".")[3], 1)),
]


@pytest.mark.parametrize(("text", "expected"), VALID)
def test_valid_topics_parse_and_print_back(text: str, expected: Topic) -> None:
    assert parse_topic(text) == expected
    assert str(parse_topic(text)) == text
    assert is_valid_topic(text)


INVALID = [
    # topic, a fragment the message must contain (naming the bad part)
    ("", "is empty"),
    (LONGEST + "0", f"{MAX_TOPIC_LENGTH + 1} characters long"),
    ("onex.evt.platförm.x.v1", "non-ASCII"),
    ("onex.evt.a\t.b.v1", "control characters"),
    ("onex.evt.Platform.x.v1", "producer 'Platform' must be lowercase"),  # never normalised
    ("onex.evt.a.Node-Heartbeat.v1", "event name 'Node-Heartbeat'"),
    ("onex.EVT.a.b.v1", "kind 'EVT'"),
    ("ONEX.evt.a.b.v1", "not 'ONEX'"),
    ("onex.evt.a.b.V1", "version 'V1'"),
    ("onex.evt.a.b", "has 4 segments"),
    ("onex.evt.a.b.c.v1", "has 6 segments"),
    ("dev.evt.a.b.v1", "not 'dev'"),
    ("onex.event.a.b.v1", "kind 'event'"),
    ("onex..a.b.v1", "kind ''"),
    ("onex.evt.1a.b.v1", "producer '1a'"),
    ("onex.evt.a-.b.v1", "producer 'a-'"),
    ("onex.evt.a--b.c.v1", "producer 'a--b'"),
    ("onex.evt.a.b_c.v1", "event name 'b_c'"),
    ("onex.evt.a..v1", "event name ''"),
    ("onex.evt.a.b.v0", "version 'v0'"),
    ("onex.evt.a.b.v01", "version 'v01'"),
    ("onex.evt.a.b.1", "version '1'"),
    ("onex.evt.a.b.v1 ", "version 'v1 '"),
]


@pytest.mark.parametrize(("text", "fragment"), INVALID)
def test_invalid_topics_name_the_bad_part(text: str, fragment: str) -> None:
    with pytest.raises(TopicError) as caught:
        parse_topic(text)
    assert fragment in str(caught.value)
    assert not is_valid_topic(text)


def test_error_quotes_long_topics_cut_and_escaped() -> None:
    with pytest.raises(TopicError) as caught:
        parse_topic("onex.evt.\n" + "a" * 10_000)
    message = str(caught.value)
    assert "\n" not in message
    assert len(message) < 300


@pytest.mark.parametrize("value", [None, 42, b"onex.evt.a.b.v1", ["onex"]])
def test_non_string_topics_are_topic_errors(value: object) -> None:
    with pytest.raises(TopicError, match="must be a string"):
        parse_topic(value)  # type: ignore[arg-type]
    assert not is_valid_topic(value)  # type: ignore[arg-type]
    assert category_of(value) is None  # type: ignore[arg-type]
    with pytest.raises(TopicError, match="must be a string"):
        parse_pattern(value)  # type: ignore[arg-type]


def test_format_topic_validates_each_part() -> None:
    assert format_topic(Kind.CMD, "platform", "request-introspection", 2) == (
        "onex.cmd.platform.request-introspection.v2"
    )
    assert format_topic("evt", "a", "b") == "onex.evt.a.b.v1"
    with pytest.raises(TopicError, match="producer 'Platform'"):
        format_topic(Kind.EVT, "Platform", "x")
    with pytest.raises(TopicError, match="version 'v0'"):
        format_topic(Kind.EVT, "platform", "x", 0)
    with pytest.raises(TopicError, match="kind 'event'"):
        format_topic("event", "platform", "x")


def test_topic_properties() -> None:
    topic = parse_topic("onex.cmd.platform.node-registration-acked.v1")
    assert topic.category is Category.COMMAND
    assert topic.event_type == "platform.node-registration-acked"


kebab = st.from_regex(r"[a-z][a-z0-9]{0,6}(-[a-z0-9]{1,4}){0,3}", fullmatch=True)
kinds = st.sampled_from(list(Kind))
versions = st.integers(min_value=1, max_value=10**9)


@settings(max_examples=300)
@given(kinds, kebab, kebab, versions)
def test_format_and_parse_round_trip(kind: Kind, producer: str, name: str, version: int) -> None:
    text = format_topic(kind, producer, name, version)
    parsed = parse_topic(text)
    assert str(parsed) == text
    assert parsed == Topic(kind, producer, name, version)
    assert category_of(text) == kind.category


@settings(max_examples=300)
@given(st.text(alphabet="onexvtcmdilaps.-_01*AZ ", max_size=40))
def test_parse_either_round_trips_or_raises_topic_error(text: str) -> None:
    try:
        parsed = parse_topic(text)
    except TopicError:
        assert not is_valid_topic(text)
    else:
        assert str(parsed) == text
        assert is_valid_topic(text)


# --------------------------------------------------------------------------- categories and DLQ


@pytest.mark.parametrize(
    ("topic", "category"),
    [
        ("onex.evt.a.b.v1", Category.EVENT),
        ("onex.cmd.a.b.v1", Category.COMMAND),
        ("onex.intent.a.b.v1", Category.INTENT),
        ("onex.snapshot.a.b.v1", None),
        ("onex.dlq.a.b.v1", None),
        ("onex.evt.A.b.v1", None),
        ("dev.eventsource.data.v1", None),
    ],
)
def test_category_of(topic: str, category: Category | None) -> None:
    assert category_of(topic) is category


@pytest.mark.parametrize(
    ("topic", "dlq"),
    [
        ("onex.evt.platform.node-introspection.v1", "onex.dlq.platform.events.v1"),
        ("onex.cmd.billing.place-order.v3", "onex.dlq.billing.commands.v1"),
        ("onex.intent.infra.consul-register.v1", "onex.dlq.infra.intents.v1"),
        ("onex.snapshot.platform.x.v1", "onex.dlq.onex.unroutable.v1"),
        ("onex.dlq.platform.events.v1", "onex.dlq.onex.unroutable.v1"),
        ("not a topic", "onex.dlq.onex.unroutable.v1"),
    ],
)
def test_dlq_topic_for(topic: str, dlq: str) -> None:
    assert dlq_topic_for(topic) == dlq
    assert parse_topic(dlq).kind is Kind.DLQ


# --------------------------------------------------------------------------- patterns

MATCHES = [
    # pattern, topic, matches?
    ("onex.evt.*.node-heartbeat.v1", "onex.evt.platform.node-heartbeat.v1", True),
    ("onex.evt.*.node-heartbeat.v1", "onex.evt.a.b.node-heartbeat.v1", False),  # * is one segment
    ("onex.evt.*.node-heartbeat.v1", "onex.evt..node-heartbeat.v1", False),  # and not empty
    ("onex.*.v1", "onex.evt.a.b.v1", False),
    ("onex.**.v1", "onex.evt.a.b.v1", True),  # ** is one or more
    ("onex.**.v1", "onex.v1", False),  # but not zero
    ("onex.evt.a.b.**", "onex.evt.a.b", False),
    ("onex.**", "onex.cmd.a.b.v2", True),
    ("**", "onex.cmd.a.b.v2", True),
    ("*.cmd.*.topic-catalog-query.*", "onex.cmd.platform.topic-catalog-query.v1", True),
    ("*.cmd.*.topic-catalog-query.*", "onex.evt.platform.topic-catalog-query.v1", False),
    ("onex.evt.a.b.v1", "onex.evt.a.b.v1", True),
    ("onex.evt.a.b.v1", "onex.evt.a.b.v10", False),  # literals are whole segments
    ("onex.evt.a.b.v1", "onex.evt.a-b.v1", False),
    ("onex.evt.a-b.*.v1", "onex.evt.a-b.c.v1", True),  # hyphens are literal
    ("onex.evt.a.b.v1", "ONEX.evt.a.b.v1", False),  # and case matters
]


@pytest.mark.parametrize(("pattern", "topic", "expected"), MATCHES)
def test_pattern_matching(pattern: str, topic: str, expected: bool) -> None:
    assert parse_pattern(pattern).matches(topic) is expected


def test_pattern_exactness_and_text() -> None:
    assert parse_pattern("onex.evt.a.b.v1").is_exact
    assert not parse_pattern("onex.evt.*.b.v1").is_exact
    assert not parse_pattern("onex.**").is_exact
    assert str(parse_pattern("onex.*.a.**")) == "onex.*.a.**"
    assert parse_pattern("onex.*.a.**").segments == ("onex", "*", "a", "**")


@pytest.mark.parametrize(
    ("pattern", "category"),
    [
        ("onex.evt.**", Category.EVENT),
        ("*.cmd.*.x.*", Category.COMMAND),
        ("onex.intent", Category.INTENT),
        ("onex.*.a.b.v1", None),
        ("onex.**", None),
        ("**", None),
        ("**.evt.a.b.v1", None),  # the ** may cover the kind segment
        ("onex.snapshot.**", None),
        ("onex.dlq.*.*.v1", None),
    ],
)
def test_pattern_category(pattern: str, category: Category | None) -> None:
    assert parse_pattern(pattern).category is category


@pytest.mark.parametrize(
    ("pattern", "fragment"),
    [
        ("", "is empty"),
        ("onex..a", "segment 2 is empty"),
        ("onex.evt.", "segment 3 is empty"),
        ("onex.Evt.*", "segment 2 'Evt'"),
        ("onex.e*t.**", "segment 2 'e*t'"),
        ("onex.***", "segment 2 '***'"),
        ("onex.evt.a_b", "segment 3 'a_b'"),
        ("dev.evt.**", "must start with 'onex'"),
        ("onex.event.**", "kind 'event'"),
        ("onex." + "a" * MAX_TOPIC_LENGTH, f"longer than {MAX_TOPIC_LENGTH}"),
    ],
)
def test_bad_patterns_name_the_bad_segment(pattern: str, fragment: str) -> None:
    with pytest.raises(TopicError) as caught:
        parse_pattern(pattern)
    assert fragment in str(caught.value)


@settings(max_examples=200)
@given(kinds, kebab, kebab, versions)
def test_patterns_built_from_a_topic_match_it(
    kind: Kind, producer: str, name: str, version: int
) -> None:
    topic = format_topic(kind, producer, name, version)
    assert parse_pattern(topic).matches(topic)
    assert parse_pattern(f"onex.{kind}.*.{name}.*").matches(topic)
    assert parse_pattern(f"onex.**.v{version}").matches(topic)
    assert not parse_pattern(f"onex.{kind}.*.{name}").matches(topic)
    assert parse_pattern(f"onex.{kind}.**").category == kind.category
