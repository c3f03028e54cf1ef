"""Dead-letter tools: parsing records back, summaries, replay plans, and replay through a bus."""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from onex_adapters.clock import run_virtual
from onex_adapters.codec import EnvelopeCodec, encode_envelope
from onex_adapters.dlq_tools import (
    DeadLetterView,
    NotADeadLetter,
    ReplayFilter,
    alert_level,
    parse_dead_letter,
    parse_time,
    plan_replay,
    replay,
    summarise,
)
from onex_adapters.memory_bus import Faults, InMemoryBroker, InMemoryBus
from onex_adapters.redaction import Redactor
from onex_adapters.runtime.dlq import Attempt, DeadLetter, dead_letter
from onex_core.errors import EffectRejected, EffectUnavailable, TopicError, UsageError
from onex_core.intents import Intent
from onex_core.ports import Record
from tests.adapters.runtime_kit import COMMAND, DLQ, command, make_world

NOW = datetime(2026, 11, 21, 6, 0, tzinfo=UTC)
ORIGINAL = "onex.cmd.test.do-thing.v1"


def letter(
    value: bytes = b'{"n": 1}',
    *,
    key: bytes | None = b"thing-1",
    topic: str = ORIGINAL,
    offset: int = 7,
    partition: int = 2,
    failure_class: str = "effect_rejected",
    error: BaseException | None = None,
    now: datetime = NOW,
    redactor: Redactor | None = None,
    max_value_bytes: int = 64 * 1024,
    **options: Any,
) -> DeadLetter:
    return dead_letter(
        dlq_topic=DLQ,
        record=Record(topic, partition, offset, key, value),
        failure_class=failure_class,
        error=error if error is not None else EffectRejected("ledger refused"),
        reason="ledger refused",
        now=now,
        redactor=redactor or Redactor(),
        max_value_bytes=max_value_bytes,
        **options,
    )


def published(item: DeadLetter, offset: int = 0, partition: int = 0) -> Record:
    """``item`` as a consumer would read it from the DLQ topic."""
    return Record(item.topic, partition, offset, item.key, item.value, item.headers)


def with_document(item: DeadLetter, change: Any) -> Record:
    """``item`` read back after ``change(document)`` edited its JSON."""
    document = json.loads(item.value)
    change(document)
    return Record(item.topic, 0, 0, item.key, json.dumps(document).encode(), item.headers)


# --------------------------------------------------------------------------- parsing


def test_a_record_reads_back_field_by_field() -> None:
    intent = Intent(
        intent_type="ledger.apply",
        target="ledger://things/thing-1",
        payload={},
        intent_id=uuid.UUID(int=5),
        correlation_id=uuid.UUID(int=6),
    )
    attempts = (
        Attempt(1, NOW - timedelta(seconds=3), "EffectUnavailable", "down"),
        Attempt(2, NOW, "EffectRejected", "ledger refused"),
    )
    item = letter(
        correlation_id=uuid.UUID(int=9),
        attempts=attempts,
        max_retries=2,
        intent=intent,
        source="things",
    )
    view = parse_dead_letter(published(item, offset=12, partition=1))
    assert view.where == f"{DLQ}[1]@12"
    assert view.message_id == item.message_id
    assert view.origin == (ORIGINAL, 2, 7)
    assert (view.key, view.value, view.value_encoding) == (b"thing-1", b'{"n": 1}', "utf-8")
    assert (view.truncated, view.value_size, view.value_sha256) == (False, 8, None)
    assert (view.failure_class, view.error_type) == ("effect_rejected", "EffectRejected")
    assert view.failure_reason == "ledger refused"
    assert view.failure_timestamp == NOW
    assert view.correlation_id == uuid.UUID(int=9)
    assert (view.retry_count, view.max_retries) == (1, 2)
    assert view.attempts == attempts
    assert view.intent is not None
    assert (view.intent.intent_id, view.intent.intent_type) == (uuid.UUID(int=5), "ledger.apply")
    assert view.source == "things"
    assert json.loads(json.dumps(view.as_json()))["message_id"] == str(item.message_id)


def test_a_record_not_yet_published_has_no_position() -> None:
    view = parse_dead_letter(letter())
    assert (view.dlq_partition, view.dlq_offset, view.where) == (None, None, DLQ)


@pytest.mark.parametrize(
    ("value", "key", "limit", "encoding", "truncated"),
    [
        (b'{"n": 1}', b"thing-1", 1024, "utf-8", False),
        (b'{"n": 1}', None, 1024, "utf-8", False),
        (b"\xff\xfe binary", b"thing-1", 1024, "base64", False),
        (b"x" * 100, b"thing-1", 10, "utf-8", True),
        (b"\xff" * 100, b"\x00\xff-key", 10, "base64", True),
        (b"", b"", 1024, "utf-8", False),
    ],
)
def test_values_and_keys_decode_back_to_the_original_bytes(
    value: bytes, key: bytes | None, limit: int, encoding: str, truncated: bool
) -> None:
    view = parse_dead_letter(published(letter(value, key=key, max_value_bytes=limit)))
    assert view.key == key
    assert (view.value_encoding, view.truncated, view.value_size) == (
        encoding,
        truncated,
        len(value),
    )
    assert view.value == (value[:limit] if truncated else value)
    assert view.value_sha256 == (hashlib.sha256(value).hexdigest() if truncated else None)


@settings(max_examples=200, deadline=None)
@given(
    value=st.binary(max_size=64),
    key=st.none() | st.binary(max_size=16),
    limit=st.integers(min_value=1, max_value=80),
)
def test_round_trip_keeps_the_bytes_or_says_it_cut_them(
    value: bytes, key: bytes | None, limit: int
) -> None:
    view = parse_dead_letter(published(letter(value, key=key, max_value_bytes=limit)))
    assert view.key == key
    assert view.truncated == (len(value) > limit)
    assert view.value == value[:limit]
    assert view.value_size == len(value)


def test_upstream_records_without_onex_additions_are_read() -> None:
    document = {
        "original_topic": ORIGINAL,
        "original_message": {"key": "k", "value": "{}", "offset": 3, "partition": 0},
        "failure_reason": "boom",
        "failure_timestamp": "2026-11-21T06:00:00",  # naive: taken as UTC
        "correlation_id": str(uuid.UUID(int=1)),
        "retry_count": 3,
        "error_type": "InfraUnavailableError",
    }
    view = parse_dead_letter(Record(DLQ, 0, 0, None, json.dumps(document).encode()))
    assert view.failure_class is None
    assert view.failure_timestamp == NOW
    assert (view.attempts, view.intent, view.message_id, view.key) == ((), None, None, b"k")


def test_the_document_key_is_used_when_the_record_is_keyed_otherwise() -> None:
    item = letter(key=b"thing-1")
    record = Record(DLQ, 0, 0, b"some-other-key", item.value, item.headers)
    assert parse_dead_letter(record).key == b"thing-1"


SECRET = "hunter2-canary"


@pytest.mark.parametrize(
    ("change", "problems"),
    [
        (lambda d: d.pop("original_topic"), ["original_topic is missing"]),
        (lambda d: d.pop("original_message"), ["original_message is missing"]),
        (lambda d: d.update(original_message=SECRET), ["original_message is not an object"]),
        (
            lambda d: d["original_message"].update(offset=-1, partition=True),
            ["original_message.offset is not an integer", "original_message.partition"],
        ),
        (lambda d: d.update(failure_timestamp=SECRET), ["failure_timestamp is not an ISO-8601"]),
        (lambda d: d.update(correlation_id=SECRET), ["correlation_id is not a UUID"]),
        (lambda d: d.update(retry_count="3"), ["retry_count is not an integer"]),
        (lambda d: d.update(error_type=""), ["error_type is not a non-empty string"]),
        (lambda d: d.update(failure_class=7), ["failure_class is not a string"]),
        (lambda d: d.update(attempts=[SECRET]), ["attempts[0] is not an object"]),
        (lambda d: d.update(attempts=[{"attempt": 1}]), ["attempts[0].at is missing"]),
        (lambda d: d.update(intent={"intent_id": SECRET}), ["intent.intent_id is not a UUID"]),
        (
            lambda d: d["original_message"].update(value_encoding="base64", value="%%%"),
            ["original_message.value is not valid base64"],
        ),
        (
            lambda d: d["original_message"].update(value_encoding="rot13"),
            ["value_encoding is neither utf-8 nor base64"],
        ),
        (
            lambda d: d["original_message"].update(value_truncated=True),
            ["a truncated value needs value_size and value_sha256"],
        ),
        (
            lambda d: [d.pop("error_type"), d.pop("retry_count")],
            ["retry_count is missing", "error_type is missing"],
        ),
    ],
)
def test_a_malformed_record_names_every_bad_field_and_no_value(
    change: Any, problems: list[str]
) -> None:
    with pytest.raises(NotADeadLetter) as caught:
        parse_dead_letter(with_document(letter(), change))
    message = str(caught.value)
    assert message.startswith(f"{DLQ}[0]@0: not an ONEX dead-letter record: ")
    for problem in problems:
        assert problem in message
    assert SECRET not in message


@pytest.mark.parametrize(
    ("value", "headers", "problem"),
    [
        (b"\xff not json", (), "the value is not JSON"),
        (b"[1, 2]", (), "the value is not a JSON object"),
        (b"{}", (), "original_topic is missing"),
        (None, (("message_id", b"nope"),), "header message_id is not a UUID"),
        (None, (("max_retries", b"-1"),), "header max_retries is not an integer"),
        (None, (("source", b"\xff"),), "header source is not UTF-8"),
    ],
)
def test_values_and_headers_that_are_not_dead_letters_are_refused(
    value: bytes | None, headers: tuple[tuple[str, bytes], ...], problem: str
) -> None:
    item = letter()
    record = Record(DLQ, 3, 9, None, item.value if value is None else value, headers)
    with pytest.raises(NotADeadLetter, match=f"^{DLQ}\\[3\\]@9: .*{problem}"):
        parse_dead_letter(record)


# --------------------------------------------------------------------------- summary and alerts


def test_the_summary_counts_ranks_and_spans() -> None:
    views = [
        parse_dead_letter(published(letter(offset=1, now=NOW))),
        parse_dead_letter(published(letter(offset=1, now=NOW, intent=None), offset=1)),
        parse_dead_letter(
            published(
                letter(
                    offset=2,
                    failure_class="undecodable",
                    error=ValueError("bad"),
                    now=NOW - timedelta(hours=1),
                    max_value_bytes=2,
                ),
                offset=2,
            )
        ),
        parse_dead_letter(
            published(letter(topic="onex.evt.test.other.v1", offset=3, now=NOW + timedelta(1)))
        ),
    ]
    summary = summarise(views)
    assert (summary.records, summary.messages, summary.truncated) == (4, 3, 1)
    assert summary.by_failure_class == (("effect_rejected", 3), ("undecodable", 1))
    assert summary.by_error_type == (("EffectRejected", 3), ("ValueError", 1))
    assert summary.by_original_topic == ((ORIGINAL, 3), ("onex.evt.test.other.v1", 1))
    assert (summary.oldest, summary.newest) == (NOW - timedelta(hours=1), NOW + timedelta(1))
    assert summary.as_json()["by_failure_class"] == {"effect_rejected": 3, "undecodable": 1}
    empty = summarise([])
    assert (empty.records, empty.oldest, empty.by_error_type) == (0, None, ())


@pytest.mark.parametrize(
    ("dead_lettered", "polled", "level"),
    [
        (0, 0, "ok"),
        (0, 100, "ok"),
        (1, 100, "ok"),
        (2, 100, "warn"),
        (5, 100, "warn"),
        (6, 100, "critical"),
        (1, 1, "critical"),
    ],
)
def test_alert_levels_follow_the_one_and_five_percent_guidance(
    dead_lettered: int, polled: int, level: str
) -> None:
    assert alert_level(dead_lettered, polled) == level


@pytest.mark.parametrize(
    "call",
    [
        lambda: alert_level(-1, 10),
        lambda: alert_level(1, -10),
        lambda: alert_level(1, 10, warn=0.1, critical=0.05),
    ],
)
def test_alert_levels_refuse_nonsense(call: Any) -> None:
    with pytest.raises(UsageError):
        call()


# --------------------------------------------------------------------------- times and filters


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30s", NOW - timedelta(seconds=30)),
        ("90m", NOW - timedelta(minutes=90)),
        ("2h", NOW - timedelta(hours=2)),
        ("7d", NOW - timedelta(days=7)),
        ("2026-11-21T05:00:00Z", datetime(2026, 11, 21, 5, tzinfo=UTC)),
        ("2026-11-21T06:00:00+01:00", datetime(2026, 11, 21, 5, tzinfo=UTC)),
    ],
)
def test_times_are_iso_with_a_zone_or_a_duration_before_now(text: str, expected: datetime) -> None:
    assert parse_time(text, now=NOW) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [("2026-11-21T05:00:00", "no time zone"), ("yesterday", "not a time"), ("2w", "not a time")],
)
def test_times_that_are_ambiguous_or_malformed_are_refused(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_time(text, now=NOW)


def _view(**options: Any) -> DeadLetterView:
    return parse_dead_letter(published(letter(**options)))


@pytest.mark.parametrize(
    ("where", "matching"),
    [
        (ReplayFilter(), {"a", "b", "c"}),
        (ReplayFilter(failure_classes=frozenset({"undecodable"})), {"b"}),
        (ReplayFilter(original_topics=("onex.evt.**",)), {"c"}),
        (ReplayFilter(original_topics=(ORIGINAL, "onex.evt.test.*.v1")), {"a", "b", "c"}),
        (ReplayFilter(correlation_ids=frozenset({uuid.UUID(int=2)})), {"b"}),
        (ReplayFilter(since=NOW), {"a", "c"}),
        (ReplayFilter(until=NOW), {"b"}),
        (ReplayFilter(since=NOW, until=NOW + timedelta(hours=1)), {"a"}),
        (ReplayFilter(failure_classes=frozenset({"undecodable"}), since=NOW), set()),
    ],
)
def test_filters_select_by_class_topic_correlation_and_time(
    where: ReplayFilter, matching: set[str]
) -> None:
    views = {
        "a": _view(offset=1, correlation_id=uuid.UUID(int=1)),
        "b": _view(
            offset=2,
            failure_class="undecodable",
            now=NOW - timedelta(minutes=1),
            correlation_id=uuid.UUID(int=2),
        ),
        "c": _view(
            offset=3, topic="onex.evt.test.other.v1", now=NOW + timedelta(hours=1), key=None
        ),
    }
    assert {name for name, view in views.items() if where.matches(view)} == matching


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"since": datetime(2026, 1, 1)}, UsageError),
        ({"since": NOW, "until": NOW}, UsageError),
        ({"original_topics": ("onex.EVT.**",)}, TopicError),
    ],
)
def test_filters_refuse_naive_times_empty_spans_and_bad_patterns(
    options: dict[str, Any], error: type[Exception]
) -> None:
    with pytest.raises(error):
        ReplayFilter(**options)


# --------------------------------------------------------------------------- plans


def test_a_plan_sends_the_original_bytes_and_key_to_the_original_topic() -> None:
    item = letter(b'{"n": 1}', key=b"thing-1", correlation_id=uuid.UUID(int=3))
    plan = plan_replay([parse_dead_letter(published(item, offset=4))])
    assert (plan.refused, plan.filtered, plan.duplicates) == ((), 0, 0)
    (sent,) = plan.replays
    assert (sent.topic, sent.key, sent.value) == (ORIGINAL, b"thing-1", b'{"n": 1}')
    assert sent.headers == (
        ("replay_of", str(item.message_id).encode()),
        ("replayed_from", f"{DLQ}[0]@4".encode()),
        ("correlation_id", str(uuid.UUID(int=3)).encode()),
    )


def test_a_plan_sends_each_original_message_once_and_counts_the_rest() -> None:
    first = _view(offset=1)
    again = parse_dead_letter(published(letter(offset=1), offset=5))  # the same message
    other = _view(offset=2, failure_class="handler_error")
    plan = plan_replay(
        [first, again, other, _view(offset=3, failure_class="undecodable")],
        ReplayFilter(failure_classes=frozenset({"effect_rejected", "handler_error"})),
    )
    assert [r.view for r in plan.replays] == [first, other]
    assert (plan.filtered, plan.duplicates, plan.refused) == (1, 1, ())


@pytest.mark.parametrize(
    ("options", "allow", "reason"),
    [
        ({"value": b"x" * 50, "max_value_bytes": 10}, {}, "only its first 10 of 50 bytes"),
        (
            {"value": b"x" * 50, "max_value_bytes": 10},
            {"allow_base64": True, "allow_redacted": True},
            "cannot be rebuilt",
        ),
        ({"topic": "onex.dlq.test.things.v1"}, {}, "is a dead-letter topic"),
        ({"topic": "onex.snapshot.test.things.v1"}, {}, "is a snapshot topic"),
        ({"topic": "orders"}, {}, "not an ONEX topic"),
        ({"value": b"\xff\xfe"}, {}, "not UTF-8"),
        ({"value": b'{"password": "***"}'}, {}, "a secret may have been redacted"),
        ({"key": b"***"}, {}, "a secret may have been redacted"),
    ],
)
def test_a_plan_refuses_what_cannot_or_should_not_go_back(
    options: dict[str, Any], allow: dict[str, bool], reason: str
) -> None:
    plan = plan_replay(
        [_view(**options)],
        allow_base64=allow.get("allow_base64", False),
        allow_redacted=allow.get("allow_redacted", False),
    )
    assert plan.replays == ()
    (refusal,) = plan.refused
    assert reason in refusal.reason


def test_secrets_the_writer_redacted_block_a_replay_unless_allowed() -> None:
    redactor = Redactor()
    redactor.register("s3cr3t-value")
    view = _view(value=b'{"token": "s3cr3t-value"}', redactor=redactor)
    assert view.value == b'{"token": "***"}'
    assert plan_replay([view]).replays == ()
    assert len(plan_replay([view], allow_redacted=True).replays) == 1


def test_non_utf8_values_go_back_byte_for_byte_when_allowed() -> None:
    view = _view(value=b"\xff\xfe\x00", key=b"\x80k")
    (sent,) = plan_replay([view], allow_base64=True).replays
    assert (sent.value, sent.key) == (b"\xff\xfe\x00", b"\x80k")


# --------------------------------------------------------------------------- replay


def test_replay_publishes_through_any_bus_and_stops_at_the_first_failure() -> None:
    async def scenario() -> None:
        broker = InMemoryBroker(partitions=2)
        views = [_view(offset=n, key=f"thing-{n}".encode()) for n in range(3)]
        views.append(_view(offset=9, topic="onex.evt.test.broken.v1"))
        plan = plan_replay(views)
        bus = InMemoryBus(broker, faults=Faults(failing_topics={"onex.evt.test.broken.v1": -1}))
        report = await replay(plan, bus)
        assert not report.ok
        assert [r.view.original_offset for r in report.sent] == [0, 1, 2]
        assert report.failed is plan.replays[3]
        assert isinstance(report.error, EffectUnavailable)
        records = broker.records(ORIGINAL)
        assert sorted(r.key or b"" for r in records) == [b"thing-0", b"thing-1", b"thing-2"]
        assert {r.value for r in records} == {b'{"n": 1}'}
        assert all(dict(r.headers)["replay_of"] for r in records)

        healed = await replay(plan.replays[3:], InMemoryBus(broker))
        assert healed.ok
        assert len(healed.sent) == 1

    run_virtual(scenario())


def test_a_dead_lettered_message_replayed_after_the_fix_succeeds_once() -> None:
    async def scenario() -> None:
        world = make_world()
        world.ledger.faults.fail_always(permanent=True, reason="ledger is read-only")
        await world.send(command("thing-1", 1), command("thing-2", 2))
        await world.host.run_until_idle()
        assert world.ledger.applied == []
        dlq = [parse_dead_letter(r) for r in world.broker.records(DLQ)]
        assert {(v.failure_class, v.original_topic) for v in dlq} == {("effect_rejected", COMMAND)}
        assert len(dlq) == 2

        world.ledger.faults.heal()
        plan = plan_replay(dlq, ReplayFilter(correlation_ids=frozenset({dlq[0].correlation_id})))
        assert (len(plan.replays), plan.filtered) == (1, 1)
        report = await replay(plan, InMemoryBus(world.broker))
        assert report.ok
        await world.host.run_until_idle()
        replayed = dlq[0].key
        assert replayed is not None
        entity = replayed.decode()
        assert world.ledger.applied == [(entity, int(entity[-1]))]

        # A second replay of the same record is harmless: the intent is already done.
        assert (await replay(plan, InMemoryBus(world.broker))).ok
        await world.host.run_until_idle()
        assert world.ledger.applied == [(entity, int(entity[-1]))]
        assert world.host.stats.effects_skipped == 1
        assert len(world.broker.records(DLQ)) == 2  # nothing new was dead-lettered

    run_virtual(scenario())


def test_replaying_the_original_bytes_decodes_to_the_same_envelope() -> None:
    envelope = command("thing-7", 7)
    value = encode_envelope(envelope)
    view = _view(value=value, key=b"thing-7")
    (sent,) = plan_replay([view]).replays
    assert (sent.value, sent.key) == (value, b"thing-7")
    decoded = EnvelopeCodec().decode(sent.value, arrived_on=sent.topic)
    assert decoded.envelope_id == envelope.envelope_id
