"""The envelope codec: canonical round trips, and every kind of bad record refused by code."""

from __future__ import annotations

import contextlib
import json
import uuid
from datetime import UTC, datetime, timedelta, timezone
from types import MappingProxyType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from onex_adapters.codec import DecodeError, EnvelopeCodec, decode_envelope, encode_envelope
from onex_core.errors import ContentError, UsageError
from onex_core.messages import Envelope

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
