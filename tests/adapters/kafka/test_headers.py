"""Envelope metadata as record headers: UTF-8 bytes, standard names, no forged lines."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from onex_adapters.kafka.headers import (
    envelope_headers,
    header,
    header_map,
    partition_key,
)
from onex_core.errors import UsageError
from onex_core.messages import Envelope

ROOT = Envelope(
    envelope_id=UUID(int=7),
    topic="onex.evt.platform.node-introspection.v1",
    event_type="platform.node-introspection",
    payload={"node": "n-1"},
    correlation_id=UUID(int=1),
    entity_id="node-ü-1",
    emitted_at=datetime(2026, 11, 21, tzinfo=UTC),
    schema_version=2,
)


def test_a_root_envelope_gets_the_standard_headers_in_order() -> None:
    assert envelope_headers(ROOT) == (
        ("content_type", b"application/json"),
        ("event_type", b"platform.node-introspection"),
        ("correlation_id", str(UUID(int=1)).encode()),
        ("message_id", str(UUID(int=7)).encode()),
        ("schema_version", b"2"),
    )


def test_a_child_carries_its_causation_and_its_own_headers_last() -> None:
    child = ROOT.child(
        topic="onex.evt.platform.node-registered.v1",
        event_type="platform.node-registered",
        payload={},
        index=0,
        emitted_at=ROOT.emitted_at,
        headers={"trace": "abc", "tenant": "ünï"},
    )
    headers = dict(envelope_headers(child))
    assert headers["causation_id"] == str(ROOT.envelope_id).encode()
    assert headers["correlation_id"] == str(ROOT.correlation_id).encode()
    assert headers["message_id"] == str(child.envelope_id).encode()
    assert [name for name, _ in envelope_headers(child)][-2:] == ["trace", "tenant"]
    assert headers["tenant"] == "ünï".encode()


def test_the_partition_key_is_the_entity_id_in_utf8() -> None:
    assert partition_key(ROOT) == "node-ü-1".encode()


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("x", "line\r\nInjected: yes"),
        ("x", "a\nb"),
        ("x", "nul\x00"),
        ("bad\nname", "v"),
        ("", "v"),
        ("x", "lone \ud800 surrogate"),
        ("\udfff", "v"),
    ],
)
def test_cr_lf_nul_and_non_utf8_are_refused(name: str, value: str) -> None:
    with pytest.raises(UsageError) as caught:
        header(name, value)
    assert "Injected" not in str(caught.value)


def test_an_envelope_header_may_not_shadow_a_standard_one() -> None:
    forged = Envelope(
        envelope_id=UUID(int=8),
        topic=ROOT.topic,
        event_type=ROOT.event_type,
        payload={},
        correlation_id=UUID(int=1),
        entity_id="e",
        emitted_at=ROOT.emitted_at,
        headers={"correlation_id": "someone-else"},
    )
    with pytest.raises(UsageError, match="shadow"):
        envelope_headers(forged)


@settings(max_examples=200)
@given(
    st.dictionaries(
        st.text(
            st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n\x00"),
            min_size=1,
            max_size=10,
        ).filter(
            lambda n: (
                n not in {"content_type", "event_type", "correlation_id", "message_id"}
                and n not in {"causation_id", "schema_version"}
            )
        ),
        st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n\x00")),
        max_size=5,
    )
)
def test_headers_round_trip_as_utf8(custom: dict[str, str]) -> None:
    envelope = Envelope(
        envelope_id=UUID(int=9),
        topic=ROOT.topic,
        event_type=ROOT.event_type,
        payload={},
        correlation_id=UUID(int=1),
        entity_id="e",
        emitted_at=ROOT.emitted_at,
        headers=custom,
    )
    headers = envelope_headers(envelope)
    assert all(isinstance(value, bytes) for _, value in headers)
    decoded = header_map(headers)
    assert {k: decoded[k] for k in custom} == custom
