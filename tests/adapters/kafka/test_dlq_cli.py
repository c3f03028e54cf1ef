"""``onex dlq show`` and ``onex dlq replay`` against a real broker, and their usage errors."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

import pytest

from onex_adapters.cli import main
from onex_adapters.codec import encode_envelope
from onex_adapters.kafka import KafkaBus, KafkaSettings, Outgoing, TopicSpec, create_topics
from onex_adapters.kafka.broker import free_port
from onex_adapters.kafka.reader import TopicContents, read_topic
from onex_adapters.redaction import Redactor
from onex_adapters.runtime.dlq import DeadLetter, dead_letter
from onex_core.errors import EffectRejected, UsageError
from onex_core.ports import Record
from tests.adapters.runtime_kit import command

Topic = Callable[..., str]
Settings = Callable[..., KafkaSettings]
NOW = datetime(2026, 11, 21, 6, 0, tzinfo=UTC)


def onex(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def letter(
    dlq: str,
    original: str,
    offset: int,
    value: bytes,
    *,
    key: bytes | None = b"thing-1",
    failure_class: str = "effect_rejected",
    now: datetime = NOW,
    max_value_bytes: int = 64 * 1024,
) -> DeadLetter:
    return dead_letter(
        dlq_topic=dlq,
        record=Record(original, 0, offset, key, value),
        failure_class=failure_class,
        error=EffectRejected("ledger refused"),
        reason="ledger refused",
        now=now,
        redactor=Redactor(),
        correlation_id=uuid.UUID(int=offset + 1),
        max_value_bytes=max_value_bytes,
    )


def provision(settings: KafkaSettings, *names: str) -> None:
    specs = [TopicSpec(name, partitions=2) for name in names]
    asyncio.run(create_topics(settings, specs))


def put(settings: KafkaSettings, records: Sequence[DeadLetter | tuple[str, bytes]]) -> None:
    outgoing = [
        Outgoing(r.topic, r.value, r.key, r.headers)
        if isinstance(r, DeadLetter)
        else Outgoing(r[0], r[1], b"junk")
        for r in records
    ]

    async def send() -> None:
        bus = KafkaBus(settings)
        try:
            await bus.publish_many(outgoing)
        finally:
            await bus.close()

    asyncio.run(send())


def read(settings: KafkaSettings, topic: str) -> TopicContents:
    return asyncio.run(read_topic(settings, topic, timeout=30))


# --------------------------------------------------------------------------- usage


DLQ_NAME = "onex.dlq.test.things.v1"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["show", "onex.evt.test.thing-done.v1", "--bootstrap", "b:1"], "not a dead-letter"),
        (["show", DLQ_NAME], "name the cluster with --bootstrap or ONEX_KAFKA_BOOTSTRAP"),
        (["show", "no spaces", "--bootstrap", "b:1"], "may contain only"),
        (["show", DLQ_NAME, "--bootstrap", "b:1", "--limit", "0"], "--limit must be at least 1"),
        (["show", DLQ_NAME, "--bootstrap", "b:1", "--timeout", "0"], "--timeout must be"),
        (["replay", DLQ_NAME, "--bootstrap", "b:1", "--since", "yesterday"], "not a time"),
        (["replay", DLQ_NAME, "--bootstrap", "b:1", "--until", "2026-11-21T05:00"], "time zone"),
        (["replay", DLQ_NAME, "--bootstrap", "b:1", "--correlation-id", "x"], "not a UUID"),
        (["replay", DLQ_NAME, "--bootstrap", "b:1", "--topic", "onex.EVT.**"], "onex.EVT"),
        (["replay", DLQ_NAME, "--bootstrap", "b:1", "--since", "1h", "--until", "2h"], "before"),
    ],
)
def test_usage_errors_exit_2_before_any_connection(
    argv: list[str],
    message: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("ONEX_KAFKA_BOOTSTRAP", raising=False)
    code, out, err = onex(capsys, "dlq", *argv)
    assert (code, out) == (2, "")
    assert message in err
    assert err.startswith(f"onex dlq {argv[0]}: ")


@pytest.mark.parametrize("argv", [["dlq"], ["dlq", "show"], ["dlq", "replay", "--class"]])
def test_an_incomplete_command_line_exits_2(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert onex(capsys, *argv)[0] == 2


def test_a_cluster_that_does_not_answer_fails_with_exit_code_1(
    capsys: pytest.CaptureFixture[str],
) -> None:
    nobody = f"127.0.0.1:{free_port()}"
    code, out, err = onex(capsys, "dlq", "show", DLQ_NAME, "--bootstrap", nobody, "--timeout", "1")
    assert (code, out) == (1, "")
    assert "did not answer within 1 s" in err


def test_the_reader_checks_its_arguments() -> None:
    settings = KafkaSettings("b:1")
    for options in ({"limit": 0}, {"timeout": 0.0}):
        with pytest.raises(UsageError):
            asyncio.run(read_topic(settings, DLQ_NAME, **options))


# --------------------------------------------------------------------------- show


@pytest.mark.kafka
def test_show_reads_the_whole_topic_without_a_group(
    capsys: pytest.CaptureFixture[str], kafka_bootstrap: str, topic: Topic, settings: Settings
) -> None:
    dlq, original = topic("things", "dlq"), topic("do-thing", "cmd")
    config = settings()
    provision(config, dlq)
    letters = [
        letter(dlq, original, 1, b'{"n": 1}', now=NOW),
        letter(dlq, original, 2, b"\xff", failure_class="undecodable", now=NOW - timedelta(1)),
        letter(dlq, original, 3, b"x" * 40, max_value_bytes=8, key=None),
    ]
    put(config, [*letters, (dlq, b"not a dead letter")])

    code, out, err = onex(capsys, "dlq", "show", dlq, "--bootstrap", kafka_bootstrap, "--json")
    assert code == 0
    assert "not an ONEX dead-letter record: the value is not JSON" in err
    report = json.loads(out)
    assert report["ok"] is True
    assert report["stopped"] == "end"
    assert len(report["invalid"]) == 1
    summary = report["summary"]
    assert (summary["records"], summary["messages"], summary["truncated"]) == (3, 3, 1)
    assert summary["by_failure_class"] == {"effect_rejected": 2, "undecodable": 1}
    assert (summary["oldest"], summary["newest"]) == (
        (NOW - timedelta(1)).isoformat(),
        NOW.isoformat(),
    )
    shown = {r["original_offset"]: r for r in report["records"]}
    assert {r["message_id"] for r in shown.values()} == {str(x.message_id) for x in letters}
    assert shown[1]["value"] == '{"n": 1}'
    assert shown[1]["key"] == "thing-1"
    assert (shown[2]["value"], shown[2]["value_encoding"]) == ("/w==", "base64")
    assert (shown[3]["value_truncated"], shown[3]["value_size"], shown[3]["key"]) == (
        True,
        40,
        None,
    )

    code, out, err = onex(capsys, "dlq", "show", dlq, "--bootstrap", kafka_bootstrap)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith(f"{dlq}: 3 dead letters (3 messages), ")
    assert "  failure_class   effect_rejected 2, undecodable 1" in lines
    assert sum(1 for line in lines if f"{original}[0]@" in line) == 3

    code, out, err = onex(
        capsys, "dlq", "show", dlq, "--bootstrap", kafka_bootstrap, "--limit", "2"
    )
    assert code == 0
    assert "stopped after --limit 2 records; there may be more" in err
    assert out.splitlines()[0].startswith(f"{dlq}: 2 dead letters")


@pytest.mark.kafka
def test_show_of_a_missing_topic_fails_and_creates_nothing(
    capsys: pytest.CaptureFixture[str], kafka_bootstrap: str, topic: Topic, settings: Settings
) -> None:
    dlq = topic("missing", "dlq")
    code, out, err = onex(capsys, "dlq", "show", dlq, "--bootstrap", kafka_bootstrap)
    assert (code, out) == (1, "")
    assert f"there is no topic {dlq} on the cluster" in err
    with pytest.raises(EffectRejected):
        read(settings(), dlq)


# --------------------------------------------------------------------------- replay


@pytest.mark.kafka
def test_replay_sends_the_original_bytes_and_key_back_and_refuses_the_rest(
    capsys: pytest.CaptureFixture[str], kafka_bootstrap: str, topic: Topic, settings: Settings
) -> None:
    dlq, original = topic("things", "dlq"), topic("do-thing", "cmd")
    config = settings()
    provision(config, dlq, original)
    value = encode_envelope(command("thing-1", 1))
    good = letter(dlq, original, 1, value, key=b"thing-1")
    again = letter(dlq, original, 1, value, key=b"thing-1", failure_class="effect_exhausted")
    cut = letter(dlq, original, 2, b"x" * 40, max_value_bytes=8)
    put(config, [good, again, cut])

    base = ["dlq", "replay", dlq, "--bootstrap", kafka_bootstrap]
    code, out, err = onex(capsys, *base, "--dry-run")
    assert code == 1  # a record was refused
    assert f"refused {dlq}[" in err
    assert "the value was truncated" in err
    assert out.splitlines()[-1] == (
        "1 would be replayed, 1 refused, 0 filtered out, 1 duplicates (dry run)"
    )
    assert read(config, original).records == ()

    code, out, err = onex(capsys, *base, "--json")
    assert code == 1
    report = json.loads(out)
    assert [r["status"] for r in report["replays"]] == ["sent"]
    assert report["replays"][0]["message_id"] in {str(good.message_id), str(again.message_id)}
    assert len(report["refused"]) == 1
    (sent,) = read(config, original).records
    assert (sent.key, sent.value) == (b"thing-1", value)
    headers = dict(sent.headers)
    assert headers["replay_of"].decode() == report["replays"][0]["message_id"]
    assert headers["correlation_id"] == str(uuid.UUID(int=2)).encode()


@pytest.mark.kafka
def test_replay_filters_by_class_topic_time_and_correlation(
    capsys: pytest.CaptureFixture[str], kafka_bootstrap: str, topic: Topic, settings: Settings
) -> None:
    dlq, first, second = topic("things", "dlq"), topic("first", "cmd"), topic("second", "evt")
    config = settings()
    provision(config, dlq, first, second)
    put(
        config,
        [
            letter(dlq, first, 1, b'{"n": 1}', key=b"a", now=NOW),
            letter(dlq, first, 2, b'{"n": 2}', key=b"b", failure_class="handler_error"),
            letter(dlq, second, 3, b'{"n": 3}', key=b"c", now=NOW - timedelta(days=1)),
        ],
    )
    base = ["dlq", "replay", dlq, "--bootstrap", kafka_bootstrap]
    code, out, err = onex(capsys, *base, "--class", "effect_rejected", "--topic", first)
    assert (code, err) == (0, "")
    assert out.splitlines()[-1] == "1 replayed, 0 refused, 2 filtered out, 0 duplicates"
    assert [r.key for r in read(config, first).records] == [b"a"]

    since = (NOW - timedelta(hours=1)).isoformat()
    code, out, err = onex(capsys, *base, "--since", since, "--dry-run", "--json")
    assert (code, err) == (0, "")
    assert [r["key"] for r in json.loads(out)["replays"]] == ["a", "b"]

    code, out, err = onex(capsys, *base, "--correlation-id", str(uuid.UUID(int=4)))
    assert (code, err) == (0, "")
    assert [r.key for r in read(config, second).records] == [b"c"]
    assert len(read(config, first).records) == 1


def test_replay_reports_every_record_it_did_not_send(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a broker: the reader is replaced, and the bus refuses the second record."""
    from onex_adapters.kafka import dlq_commands

    dlq, original = DLQ_NAME, "onex.cmd.test.do-thing.v1"
    letters = [letter(dlq, original, n, b'{"n": 1}', key=f"k{n}".encode()) for n in range(3)]
    records = tuple(Record(dlq, 0, n, x.key, x.value, x.headers) for n, x in enumerate(letters))

    async def fake_read(settings: KafkaSettings, topic: str, **_: object) -> TopicContents:
        return TopicContents(topic, (0,), records, "end")

    class Refusing:
        def __init__(self, settings: KafkaSettings) -> None:
            self.settings = settings

        async def publish(self, topic: str, value: bytes, **options: object) -> None:
            if options["key"] == b"k1":
                raise EffectRejected("not authorized", backend="kafka")

        async def close(self) -> None:
            return None

    monkeypatch.setattr(dlq_commands, "read_topic", fake_read)
    monkeypatch.setattr(dlq_commands, "KafkaBus", Refusing)
    code, out, err = onex(capsys, "dlq", "replay", dlq, "--bootstrap", "b:1")
    assert code == 1
    assert [line.split()[0] for line in out.splitlines()[:3]] == ["replayed", "FAILED", "not"]
    assert out.splitlines()[-1] == "1 replayed, 0 refused, 0 filtered out, 0 duplicates"
    assert "1 sent before it, 2 not sent; a replay may be run again" in err
