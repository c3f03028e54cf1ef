"""The envelope codec: canonical round trips, and every kind of bad record refused by code."""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import json
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta, timezone
from types import MappingProxyType

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from onex_adapters.codec import DecodeError, EnvelopeCodec, decode_envelope, encode_envelope
from onex_core.errors import ContentError, UsageError
from onex_core.messages import EMPTY_HEADERS, Envelope

TOPIC = "onex.evt.platform.node-heartbeat.v1"


def make_envelope(**changes: object) -> Envelope:
    fields: dict[str, object] = {
        "envelope_id": uuid.UUID("00000000-0000-4000-8000-000000000001"),
        "topic": TOPIC,
        "event_type": "platform.node-heartbeat",
        "payload": {"node_id": "node-1", "uptime": 12.5, "tags": ["a", "b"], "nested": {"x": 1}},
        "correlation_id": uuid.UUID("00000000-0000-4000-8000-000000000002"),
        "entity_id": "node-1",
        "emitted_at": datetime(2026, 11, 21, 5, 0, tzinfo=UTC),
    }
    fields.update(changes)
    return Envelope(**fields)  # type: ignore[arg-type]


def document() -> dict[str, object]:
    return json.loads(encode_envelope(make_envelope()))  # type: ignore[no-any-return]


def test_round_trip_is_exact() -> None:
    envelope = make_envelope(
        causation_id=uuid.UUID("00000000-0000-4000-8000-000000000003"),
        headers={"trace": "t-1"},
        emitted_at=datetime(2026, 11, 21, 7, 0, tzinfo=timezone(timedelta(hours=2))),
    )
    assert decode_envelope(encode_envelope(envelope)) == envelope


def test_encoding_is_canonical_compact_utf8() -> None:
    data = encode_envelope(make_envelope(payload={"name": "Zoë"}))
    assert b" " not in data.replace(b"Zo\xc3\xab", b"")
    assert "Zoë".encode() in data


def test_read_only_mappings_encode_as_objects() -> None:
    envelope = make_envelope(payload=MappingProxyType({"a": 1}))
    assert decode_envelope(encode_envelope(envelope)).payload == {"a": 1}


@pytest.mark.parametrize(
    ("payload", "kind"),
    [
        ({"when": datetime(2026, 1, 1, tzinfo=UTC)}, "datetime"),
        ({"id": uuid.uuid4()}, "UUID"),
        ({"x": float("nan")}, "nan"),
    ],
)
def test_payload_json_cannot_carry_is_a_usage_error(payload: dict[str, object], kind: str) -> None:
    with pytest.raises(UsageError, match="not JSON-serialisable"):
        encode_envelope(make_envelope(payload=payload))


def mutate(**changes: object) -> bytes:
    doc = document()
    for key, value in changes.items():
        if value is ...:
            del doc[key]
        else:
            doc[key] = value
    return json.dumps(doc).encode()


BAD_RECORDS: list[tuple[str, bytes, str, str | None]] = [
    ("too large", b"{" + b" " * (1024 * 1024) + b"}", "too-large", None),
    ("invalid utf-8", b'{"a": "\xff"}', "not-utf8", None),
    ("byte-order mark", "\ufeff{}".encode(), "not-utf8", None),
    ("not json", b"{not json", "not-json", None),
    ("empty", b"", "not-json", None),
    ("a list", b"[1, 2]", "bad-field", ""),
    ("duplicate key", b'{"topic": "a", "topic": "b"}', "duplicate-key", None),
    ("NaN", b'{"x": NaN}', "non-finite", None),
    ("Infinity", b'{"x": -Infinity}', "non-finite", None),
    ("huge integer", b'{"x": ' + b"9" * 5000 + b"}", "bad-number", None),
    ("deep nesting", b'{"x": ' + b"[" * 5000 + b"]" * 5000 + b"}", "too-deep", None),
    ("lone surrogate", b'{"payload": {"a": "\\ud800"}}', "bad-string", "/payload/a"),
    ("missing topic", mutate(topic=...), "missing-field", "/topic"),
    ("topic not a string", mutate(topic=5), "bad-field", "/topic"),
    ("payload not an object", mutate(payload=[1]), "bad-field", "/payload"),
    ("missing envelope id", mutate(envelope_id=...), "missing-field", "/envelope_id"),
    ("malformed uuid", mutate(correlation_id="not-a-uuid"), "bad-field", "/correlation_id"),
    (
        "uuid with underscores",
        mutate(envelope_id="00000000-0000-4000-8000-0000_0000001"),
        "bad-field",
        "/envelope_id",
    ),
    ("naive timestamp", mutate(emitted_at="2026-11-21T05:00:00"), "bad-field", "/emitted_at"),
    ("garbage timestamp", mutate(emitted_at="yesterday"), "bad-field", "/emitted_at"),
    ("newer schema", mutate(schema_version=99), "schema-mismatch", "/schema_version"),
    ("boolean schema", mutate(schema_version=True), "bad-field", "/schema_version"),
    ("headers not strings", mutate(headers={"a": 1}), "bad-field", "/headers"),
    ("unknown field", mutate(extra="x"), "bad-field", ""),
    ("empty entity id", mutate(entity_id=""), "bad-field", None),
]


@pytest.mark.parametrize(
    ("data", "code", "pointer"),
    [case[1:] for case in BAD_RECORDS],
    ids=[case[0] for case in BAD_RECORDS],
)
def test_bad_records_are_refused_with_a_code(data: bytes, code: str, pointer: str | None) -> None:
    with pytest.raises(DecodeError) as caught:
        decode_envelope(data)
    assert caught.value.code == code
    assert isinstance(caught.value, ContentError)
    if pointer is not None:
        assert caught.value.pointer == pointer


def test_topic_must_match_the_topic_it_arrived_on() -> None:
    data = encode_envelope(make_envelope())
    assert decode_envelope(data, arrived_on=TOPIC).topic == TOPIC
    with pytest.raises(DecodeError) as caught:
        decode_envelope(data, arrived_on="onex.evt.platform.other.v1")
    assert caught.value.code == "topic-mismatch"


def test_messages_never_echo_values() -> None:
    secret = "s3cr3t-canary-value"
    cases = [
        mutate(correlation_id=secret),
        mutate(emitted_at=secret),
        b'{"' + secret.encode() + b'": 1, "' + secret.encode() + b'": 2}',
        b'{"x": ' + b"7" * 5000 + b"}",
    ]
    for data in cases:
        with pytest.raises(DecodeError) as caught:
            decode_envelope(data)
        text = str(caught.value)
        assert secret not in text or "duplicate-key" in caught.value.code
        assert "7777777" not in text


def test_duplicate_key_names_the_key_not_its_values() -> None:
    with pytest.raises(DecodeError, match="'topic' appears twice"):
        decode_envelope(b'{"topic": "a-secret", "topic": "b"}')


def test_limits_are_configurable() -> None:
    data = encode_envelope(make_envelope(payload={"a": {"b": {"c": [1]}}}))
    with pytest.raises(DecodeError) as caught:
        EnvelopeCodec(max_depth=3).decode(data)
    assert caught.value.code == "too-deep"
    with pytest.raises(DecodeError) as caught:
        EnvelopeCodec(max_bytes=10).decode(data)
    assert caught.value.code == "too-large"
    with pytest.raises(UsageError):
        EnvelopeCodec(max_bytes=0)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(payload=st.dictionaries(st.text(), json_values, max_size=6), entity=st.text(min_size=1))
def test_any_json_payload_round_trips(payload: dict[str, object], entity: str) -> None:
    envelope = make_envelope(payload=payload, entity_id=entity[:512])
    assert decode_envelope(encode_envelope(envelope)) == envelope


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=300))
def test_arbitrary_bytes_decode_or_raise_decode_error(data: bytes) -> None:
    with contextlib.suppress(DecodeError):
        decode_envelope(data)


# --------------------------------------------------------------------------- the two ways in


def canonical(**changes: object) -> bytes:
    """The canonical spelling of ``make_envelope()``'s document, with ``changes`` — including
    values an Envelope would refuse, which only a hand-built record can carry."""
    fields: dict[str, object] = {
        "envelope_id": "00000000-0000-4000-8000-000000000001",
        "topic": TOPIC,
        "event_type": "platform.node-heartbeat",
        "payload": {"node_id": "node-1", "uptime": 12.5, "tags": ["a", "b"], "nested": {"x": 1}},
        "correlation_id": "00000000-0000-4000-8000-000000000002",
        "entity_id": "node-1",
        "emitted_at": "2026-11-21T05:00:00Z",
        "causation_id": None,
        "headers": {},
        "schema_version": 1,
    }
    fields.update(changes)
    return msgspec.json.encode(fields)


@pytest.fixture
def careful_calls(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """Records that took the careful way (the standard library) instead of the cheap one."""
    calls: list[bytes] = []
    careful = EnvelopeCodec._decode_carefully

    def spy(self: EnvelopeCodec, data: bytes, arrived_on: str | None) -> Envelope:
        calls.append(data)
        return careful(self, data, arrived_on)

    monkeypatch.setattr(EnvelopeCodec, "_decode_carefully", spy)
    return calls


def test_the_canonical_form_is_the_documented_one() -> None:
    assert encode_envelope(make_envelope()) == canonical()
    stamp = datetime(2026, 11, 21, 7, 0, 0, 120000, tzinfo=timezone(timedelta(hours=2)))
    data = encode_envelope(make_envelope(emitted_at=stamp))
    assert b'"emitted_at":"2026-11-21T07:00:00.120000+02:00"' in data


def test_what_the_encoder_writes_takes_the_cheap_way(careful_calls: list[bytes]) -> None:
    envelopes = [
        make_envelope(),
        make_envelope(
            causation_id=uuid.UUID("00000000-0000-4000-8000-000000000003"),
            headers={"trace": "t-1"},
            payload={"text": 'a "quoted" \\ line\n\x01 Zoë 😀', "n": -0.0, "big": 10**30},
            emitted_at=datetime(2026, 11, 21, 7, 0, tzinfo=timezone(timedelta(hours=-2))),
        ),
    ]
    for envelope in envelopes:
        decoded = decode_envelope(encode_envelope(envelope), arrived_on=TOPIC)
        assert decoded == envelope
        assert decoded.headers == envelope.headers
    assert careful_calls == []
    assert decode_envelope(encode_envelope(make_envelope())).headers is EMPTY_HEADERS


@pytest.mark.parametrize(
    ("variant", "spell"),
    [
        ("indented", lambda doc: json.dumps(doc, indent=2).encode()),
        ("spaced", lambda doc: json.dumps(doc).encode()),
        ("ascii escapes", lambda doc: json.dumps(doc, ensure_ascii=True).encode()),
        (
            "keys sorted",
            lambda doc: json.dumps(doc, sort_keys=True, separators=(",", ":")).encode(),
        ),
        (
            "offset spelled +00:00",
            lambda doc: canonical(payload=doc["payload"], emitted_at="2026-11-21T05:00:00+00:00"),
        ),
        (
            "uuid in capitals",
            lambda doc: canonical(
                payload=doc["payload"], envelope_id="00000000-0000-4000-8000-00000000000A"
            ),
        ),
        (
            "headers left out",
            lambda doc: canonical(payload=doc["payload"]).replace(b',"headers":{}', b""),
        ),
    ],
)
def test_other_spellings_take_the_careful_way_to_the_same_envelope(
    variant: str, spell: Callable[[dict[str, object]], bytes], careful_calls: list[bytes]
) -> None:
    doc = document()
    doc["payload"] = {"name": "Zoë", "x": 1e16, "list": [1, 2.5, None, True]}
    data = spell(doc)
    expected = decode_envelope(canonical(payload=doc["payload"]))
    if variant == "uuid in capitals":
        expected = dataclasses.replace(
            expected, envelope_id=uuid.UUID("00000000-0000-4000-8000-00000000000a")
        )
    assert careful_calls == []
    assert decode_envelope(data) == expected
    assert careful_calls == [data]


CANONICAL_BUT_BAD: list[tuple[str, bytes, str, str | None]] = [
    (
        "duplicate key in the payload",
        canonical().replace(b'"payload":{', b'"payload":{"node_id":"other",'),
        "duplicate-key",
        None,
    ),
    (
        "duplicate field",
        canonical().replace(b'"entity_id":"node-1"', b'"entity_id":"node-0","entity_id":"node-1"'),
        "duplicate-key",
        None,
    ),
    ("unknown field", canonical(extra=1), "bad-field", ""),
    ("empty entity id", canonical(entity_id=""), "bad-field", None),
    ("overlong entity id", canonical(entity_id="e" * 513), "bad-field", None),
    ("empty event type", canonical(event_type=""), "bad-field", None),
    ("naive timestamp", canonical(emitted_at="2026-11-21T05:00:00"), "bad-field", "/emitted_at"),
    ("newer schema", canonical(schema_version=2), "schema-mismatch", "/schema_version"),
    ("schema version 0", canonical(schema_version=0), "bad-field", "/schema_version"),
    (
        "overflowing float",
        canonical(payload={"x": 1}).replace(b'"x":1', b'"x":1e400'),
        "non-finite",
        None,
    ),
    ("too deep", canonical(payload={"x": [[[[]]]]}), "too-deep", "/payload/x/0/0/0"),
]


@pytest.mark.parametrize(
    ("data", "code", "pointer"),
    [case[1:] for case in CANONICAL_BUT_BAD],
    ids=[case[0] for case in CANONICAL_BUT_BAD],
)
def test_compact_records_the_cheap_way_must_not_take_are_refused_by_code(
    data: bytes, code: str, pointer: str | None
) -> None:
    with pytest.raises(DecodeError) as caught:
        EnvelopeCodec(max_depth=5).decode(data)
    assert caught.value.code == code
    if pointer is not None:
        assert caught.value.pointer == pointer


@pytest.mark.parametrize("depth", [3, 4, 64])
def test_nesting_is_refused_exactly_beyond_max_depth(depth: int) -> None:
    # The envelope is level 1 and its payload level 2; this payload reaches level ``depth``.
    payload: dict[str, object] = {"x": 1}
    for _ in range(depth - 2):
        payload = {"x": payload}
    data = encode_envelope(make_envelope(payload=payload))
    assert EnvelopeCodec(max_depth=depth).decode(data).payload == payload
    with pytest.raises(DecodeError) as caught:
        EnvelopeCodec(max_depth=depth - 1).decode(data)
    assert caught.value.code == "too-deep"


entity_ids = st.text(max_size=3) | st.just("e" * 512) | st.just("e" * 513)


@settings(max_examples=100, deadline=None)
@given(
    entity=entity_ids,
    event_type=st.sampled_from(["", "platform.node-heartbeat"]),
    stamp=st.sampled_from(["2026-11-21T05:00:00Z", "2026-11-21T05:00:00"]),
)
def test_the_cheap_way_refuses_exactly_what_an_envelope_refuses(
    entity: str, event_type: str, stamp: str
) -> None:
    try:
        expected: Envelope | None = Envelope(
            envelope_id=uuid.UUID("00000000-0000-4000-8000-000000000001"),
            topic=TOPIC,
            event_type=event_type,
            payload={},
            correlation_id=uuid.UUID("00000000-0000-4000-8000-000000000002"),
            entity_id=entity,
            emitted_at=datetime.fromisoformat(stamp),
        )
    except ContentError:
        expected = None
    data = canonical(payload={}, entity_id=entity, event_type=event_type, emitted_at=stamp)
    if expected is None:
        with pytest.raises(DecodeError):
            decode_envelope(data)
    else:
        assert decode_envelope(data) == expected


@settings(max_examples=100, deadline=None)
@given(payload=st.dictionaries(st.text(), json_values, max_size=6))
def test_any_spelling_of_a_payload_decodes_to_the_same_envelope(payload: dict[str, object]) -> None:
    canonical_data = encode_envelope(make_envelope(payload=payload))
    doc = json.loads(canonical_data)
    for other in (
        json.dumps(doc).encode(),
        json.dumps(doc, ensure_ascii=True, separators=(",", ":")).encode(),
    ):
        assert decode_envelope(other) == decode_envelope(canonical_data)


# --------------------------------------------------------------------------- what encodes


class Colour(enum.Enum):
    RED = "red"


class Level(enum.IntEnum):
    HIGH = 3


class Name(enum.StrEnum):
    ADA = "ada"


class Text(str):
    pass


class Ratio(float):
    pass


@pytest.mark.parametrize(
    ("payload", "decoded"),
    [
        ({"t": (1, 2)}, {"t": [1, 2]}),
        ({"m": MappingProxyType({"a": MappingProxyType({"b": 1})})}, {"m": {"a": {"b": 1}}}),
        (
            {1: "int", 2.5: "float", False: "bool", None: "none"},
            {"1": "int", "2.5": "float", "false": "bool", "null": "none"},
        ),
        ({"x": [Level.HIGH, Name.ADA, Text("t"), Ratio(0.5)]}, {"x": [3, "ada", "t", 0.5]}),
        ({Text("k"): {Name.ADA: 1}}, {"k": {"ada": 1}}),
    ],
)
def test_payloads_encode_as_the_standard_library_would(
    payload: dict[object, object], decoded: dict[str, object]
) -> None:
    envelope = make_envelope(payload=payload)
    data = encode_envelope(envelope)
    assert json.loads(data)["payload"] == json.loads(json.dumps(payload, default=lambda m: dict(m)))
    assert decode_envelope(data).payload == decoded


@pytest.mark.parametrize(
    "payload",
    [
        {"x": float("inf")},
        {"x": [1, {"y": -float("inf")}]},
        {"x": {1, 2}},
        {"x": b"bytes"},
        {"x": Colour.RED},
        {"x": uuid.uuid4()},
        {"x": [datetime(2026, 1, 1, tzinfo=UTC)]},
        {"x": object()},
        {(1, 2): "tuple key"},
        {1: "a", "1": "b"},
        {"x": "\ud800"},
    ],
    ids=repr,
)
def test_payloads_json_cannot_carry_are_refused(payload: dict[object, object]) -> None:
    with pytest.raises(UsageError, match="not JSON-serialisable"):
        encode_envelope(make_envelope(payload=payload))


def test_a_payload_that_contains_itself_is_refused() -> None:
    looped: dict[str, object] = {}
    looped["self"] = looped
    with pytest.raises(UsageError):
        encode_envelope(make_envelope(payload=looped))


def test_headers_must_be_json_too() -> None:
    with pytest.raises(UsageError):
        encode_envelope(make_envelope(headers={"at": datetime(2026, 1, 1, tzinfo=UTC)}))


def test_an_offset_rfc_3339_cannot_write_survives_the_round_trip() -> None:
    stamp = datetime(2026, 11, 21, 5, 0, tzinfo=timezone(timedelta(seconds=30)))
    data = encode_envelope(make_envelope(emitted_at=stamp))
    assert b'"2026-11-21T05:00:00+00:00:30"' in data
    decoded = decode_envelope(data)
    assert decoded.emitted_at == stamp
    assert decoded.emitted_at.utcoffset() == timedelta(seconds=30)


def test_decoding_works_in_any_thread_and_in_several_at_once() -> None:
    # The cheap way re-encodes into a buffer of its thread's own, made on the thread's first
    # record.
    good = [encode_envelope(make_envelope(payload={"i": i, "pad": "x" * i})) for i in range(40)]
    bad = canonical().replace(b'"payload":{', b'"payload":{"node_id":"other",')
    errors: list[str] = []

    def decode_many(offset: int) -> None:
        for round_ in range(50):
            data = good[(offset + round_) % len(good)]
            if decode_envelope(data).payload["i"] != (offset + round_) % len(good):
                errors.append("wrong envelope")
            with contextlib.suppress(DecodeError):
                decode_envelope(bad)
                errors.append("duplicate accepted")

    with ThreadPoolExecutor(4) as pool:
        for done in [pool.submit(decode_many, n) for n in range(4)]:
            done.result()  # re-raises whatever a thread raised
    assert errors == []
